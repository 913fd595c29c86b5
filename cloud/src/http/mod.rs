//! The gateway: assembles every domain module's router, and wraps them in
//! the cross-cutting layers (request ids, tracing, CORS, metrics, timeouts,
//! rate limits, body limits) and the JSON 404/405 fallbacks.

pub mod extract;
pub mod health;
pub mod openapi;
pub mod openapi_complete;
pub mod ratelimit;
pub mod shared_limit;
pub mod unread;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ratelimit::{ClientKey, Limiter};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The limiters in use (kept so idle clients can be purged).
#[derive(Debug, Default, Clone)]
pub struct Limiters(pub Vec<Limiter>);

/// The whole application router.
pub fn app(state: AppState) -> (Router, Limiters) {
    let rl = &state.config.rate_limit;
    let key = ClientKey {
        trust_forwarded: state.config.server.trust_forwarded_for,
    };
    let mut limiters = Limiters::default();
    let shared = state.shared_limits.clone();
    let limiter = move |name: &'static str, per_minute: u32| match &shared {
        Some(store) => Limiter::shared(store.clone(), name, per_minute),
        None => Limiter::new(per_minute),
    };
    let mut limited = |router: OpenApiRouter<AppState>, name: &'static str, per_minute: u32| {
        if rl.enabled {
            let l = limiter(name, per_minute);
            let router = router.layer(middleware::from_fn_with_state(l.clone(), ratelimit::limit));
            limiters.0.push(l);
            router
        } else {
            router
        }
    };
    // Logins are limited by their failures (see `auth::guard`), refresh and
    // logout by their own bucket: a token holder is not a password guesser.
    let api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(limited(
            crate::auth::registration_router(),
            "auth",
            rl.auth_per_minute,
        ))
        .merge(crate::auth::login_router())
        .merge(limited(
            crate::auth::session_router(),
            "refresh",
            rl.refresh_per_minute,
        ))
        .merge(crate::users::router())
        .merge(crate::events::router())
        .merge(limited(commerce_routes(), "tickets", rl.tickets_per_minute))
        .merge(crate::devices::router())
        .merge(crate::devices::enroll_router(&state))
        .merge(crate::checkin::router())
        .merge(crate::wallets::router())
        .merge(crate::chain::http::router())
        .merge(crate::notifications::router())
        .merge(crate::console::router());
    let (api, doc) = api.split_for_parts();
    let (health, health_doc) = health::router().split_for_parts();
    let (webhook, webhook_doc) = crate::payments::webhook_router().split_for_parts();
    // Device sync is authenticated per device, not limited per address:
    // a venue's gates share one NAT address.
    let (device_sync, sync_doc) = crate::device_sync::router(&state).split_for_parts();
    use openapi_complete::{Gateway, complete};
    let mut doc = doc;
    complete(&mut doc, Gateway { rate_limited: true });
    for mut part in [health_doc, webhook_doc, sync_doc] {
        complete(
            &mut part,
            Gateway {
                rate_limited: false,
            },
        );
        doc.merge(part);
    }

    let mut router = api.merge(openapi::routes(doc));
    if rl.enabled {
        let global = limiter("global", rl.global_per_minute);
        router = router.layer(middleware::from_fn_with_state(
            global.clone(),
            ratelimit::limit,
        ));
        limiters.0.push(global);
    }
    let timeout = Duration::from_millis(state.config.server.request_timeout_ms);
    let router = router
        .merge(health)
        .merge(device_sync)
        .merge(webhook)
        .merge(crate::console::pages())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.server.body_limit_bytes))
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn(health::track))
        .layer(middleware::from_fn_with_state(key, ratelimit::client_ip))
        .layer(middleware::from_fn(unread::announce_close))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), request_id = %id)
                }).on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Millis))
                  .on_failure(log_failure))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(cors(&state.config.server.cors_allowed_origins)),
        )
        .with_state(state);
    (router, limiters)
}

/// Tickets, orders, payments and the market: one rate-limit bucket.
fn commerce_routes() -> OpenApiRouter<AppState> {
    crate::tickets::router()
        .merge(crate::orders::router())
        .merge(crate::payments::router())
        .merge(crate::market::router())
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            REQUEST_ID,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600))
}

/// Server errors are ERRORs, except 503: an expected answer (Stripe not
/// configured, the database away for a moment) that the client is told to
/// retry, and nothing an operator must wake up for.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let ms = latency.as_millis();
    match class {
        ServerErrorsFailureClass::StatusCode(s)
            if s == axum::http::StatusCode::SERVICE_UNAVAILABLE =>
        {
            tracing::warn!(status = s.as_u16(), latency_ms = %ms, "service unavailable")
        }
        other => tracing::error!(classification = %other, latency_ms = %ms, "response failed"),
    }
}

/// Answers 408 in the API's shape when a request runs too long.
async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}
