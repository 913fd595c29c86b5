//! The OpenAPI 3.1 document (generated from the handlers' annotations) and
//! an interactive docs page that works offline: the Scalar bundle is
//! vendored in `assets/` and served by this binary.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use std::sync::Arc;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Document-level metadata.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gatehouse cloud API", description = "Identity, events and analytics, ticketing, orders and payments, transfers and resale, devices, check-in. Every non-2xx answer is `{\"error\": {\"code\", \"message\"}}`."),
    modifiers(&BearerAuth),
    tags(
        (name = "identity", description = "Accounts, tokens, roles"),
        (name = "events", description = "Events, tiers, lifecycle, box office"),
        (name = "analytics", description = "Stats, funnel, reports"),
        (name = "tickets", description = "Tickets, credentials, QR codes"),
        (name = "orders", description = "Orders: inventory holds, lifecycle, refunds"),
        (name = "payments", description = "Stripe, manual and free payments; the Stripe webhook"),
        (name = "market", description = "Transfers, resale listings, sales policies, sellers' ledger"),
        (name = "devices", description = "Gate device enrollment, listing, revocation"),
        (name = "device sync", description = "Manifests and check-in sync for enrolled devices (device token)"),
        (name = "check-in", description = "Ticket validation, online check-in, scans and door stats"),
        (name = "operations", description = "Health and metrics"),
        (name = "console", description = "What the web console needs beyond the rest of the API"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("64 hex digits from `POST /devices/enroll`"))
                    .build(),
            ),
        );
    }
}

const SCALAR_JS: &[u8] = include_bytes!("../../assets/scalar-api-reference-1.72.1.js");

const DOCS_HTML: &str = r#"<!doctype html>
<html>
<head>
  <title>Gatehouse cloud API</title>
  <meta charset="utf-8"/>
  <meta name="viewport" content="width=device-width, initial-scale=1"/>
</head>
<body>
  <script id="api-reference" data-url="/openapi.json" data-configuration='{"withDefaultFonts": false, "hideClientButton": true}'></script>
  <script src="/docs/scalar.js"></script>
</body>
</html>
"#;

/// `/openapi.json`, `/docs` and the docs page's script.
pub fn routes<S: Clone + Send + Sync + 'static>(doc: OpenApi) -> Router<S> {
    let json = Arc::new(
        doc.to_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
    );
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.as_str().to_owned(),
                    )
                }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .route(
            "/docs/scalar.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    SCALAR_JS,
                )
                    .into_response()
            }),
        )
}
