//! The web console, served by this binary with every asset embedded (no
//! CDN, one file deploys): the buyer's shop (events, sign-in, checkout,
//! "my tickets" with a scannable QR, transfer, resale) and the organizer's
//! console (events and tiers, the live doors view, sales, orders, devices,
//! admin).
//!
//! The pages are a static shell plus plain JavaScript modules that call
//! the same REST API as every client: no data is rendered into a page on
//! the server, so a page can show nothing the API would not give its
//! caller. Security model (also in `docs/console.md`):
//! - XSS: a strict Content-Security-Policy on every page (scripts from
//!   this origin only, plus Stripe.js when card payments are on; no inline
//!   script or style attribute, no `eval`), and the scripts build the DOM
//!   with `textContent`, never `innerHTML` with data.
//! - CSRF: there is no ambient credential. The access and refresh tokens
//!   live in the tab's `sessionStorage` and go out as `Authorization:
//!   Bearer`; a cross-site form or image request carries no token.
//! - No secret is in a page: `/console/config` holds only the Stripe
//!   publishable key.

pub mod config;
pub mod doors;
pub mod fleet;

use crate::auth::extract::Organizer;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Json;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path as RawPath, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The page shell (the same for every view; the fragment picks the view).
const INDEX_HTML: &str = include_str!("../../web/src/index.html");

/// Embedded assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/src/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/src/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/src/ui.js"),
    ),
    (
        "shop.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/src/shop.js"),
    ),
    (
        "organizer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/src/organizer.js"),
    ),
    (
        "doors.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/src/doors.js"),
    ),
    (
        "staff.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/src/staff.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/src/app.css"),
    ),
    (
        "uplot.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/uplot-1.6.32.iife.min.js"),
    ),
    (
        "uplot.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/uplot-1.6.32.min.css"),
    ),
];

/// The pages and their assets (not part of the OpenAPI document).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/console", get(page))
        .route("/assets/{name}", get(asset))
}

/// The JSON operations the pages need beyond the rest of the API.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(console_config))
        .routes(routes!(qr_svg))
        .routes(routes!(doors::doors))
        .routes(routes!(doors::doors_stream))
}

/// The Content-Security-Policy of the pages.
pub fn csp(state: &AppState) -> String {
    let c = &state.config.console;
    let stripe = if c.stripe_publishable_key.is_empty() {
        None
    } else {
        config::origin(&c.stripe_js_url)
    };
    let api = config::origin(&state.config.payments.stripe_api_base);
    let extra = |o: &Option<String>| o.as_ref().map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'{s}; style-src 'self'; img-src 'self' blob: data:; \
         connect-src 'self'{s}{a}; frame-src{f}; font-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
        s = extra(&stripe),
        a = if stripe.is_some() {
            extra(&api)
        } else {
            String::new()
        },
        f = stripe
            .as_ref()
            .map(|o| format!(" {o}"))
            .unwrap_or_else(|| " 'none'".into()),
    )
}

fn secured(state: &AppState, mut r: Response) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp(state)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn page(State(state): State<AppState>) -> Response {
    let r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response();
    secured(&state, r)
}

async fn asset(State(state): State<AppState>, RawPath(name): RawPath<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, bytes)) => secured(
            &state,
            (
                [
                    (header::CONTENT_TYPE, *ctype),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *bytes,
            )
                .into_response(),
        ),
        None => ApiError::NotFound("no such asset".into()).into_response(),
    }
}

/// What the pages need to know (nothing secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleSettings {
    /// Stripe publishable key (`pk_...`), absent when card payments are off.
    pub stripe_publishable_key: Option<String>,
    /// Where Stripe.js is loaded from, absent when card payments are off.
    pub stripe_js_url: Option<String>,
    /// A gate whose last sync is older than this shows offline (ms).
    pub device_offline_after_ms: u64,
}

/// The console's public settings.
#[utoipa::path(get, path = "/console/config", tag = "console",
    responses((status = 200, body = ConsoleSettings)))]
async fn console_config(State(state): State<AppState>) -> Json<ConsoleSettings> {
    let c = &state.config.console;
    let card = !c.stripe_publishable_key.is_empty() && state.stripe.is_some();
    Json(ConsoleSettings {
        stripe_publishable_key: card.then(|| c.stripe_publishable_key.clone()),
        stripe_js_url: card.then(|| c.stripe_js_url.clone()),
        device_offline_after_ms: c.device_offline_after_ms,
    })
}

/// Text to draw as a QR code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QrRequest {
    /// 1 to 512 characters (an enrollment code, a URL).
    #[schema(min_length = 1, max_length = 512)]
    pub text: String,
}

/// Draws `text` as a QR code (organizers and admins: the enrollment code
/// a gate or the scanner app reads from the screen).
#[utoipa::path(post, path = "/console/qr", tag = "console", security(("bearer" = [])), request_body = QrRequest,
    responses((status = 200, content_type = "image/svg+xml", description = "an SVG document"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn qr_svg(_: Organizer, Json(req): Json<QrRequest>) -> ApiResult<Response> {
    let n = req.text.chars().count();
    if !(1..=512).contains(&n) {
        return Err(ApiError::Validation(
            "text must be 1 to 512 characters".into(),
        ));
    }
    let svg = crate::tickets::qr::svg(&req.text)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        svg,
    )
        .into_response())
}
