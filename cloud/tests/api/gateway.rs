//! Gateway concerns: rate limits, CORS, body limits, malformed input, request
//! ids, health, metrics, OpenAPI and docs, configuration output.

use crate::both;
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn ticket_and_global_rate_limits(app: TestApp) {
    let admin = app.admin().await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/tickets", &admin.access).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "tickets: 2 per minute"
    );
    let mut last = StatusCode::OK;
    for _ in 0..10 {
        last = app.get("/users/me", &admin.access).await.0;
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "the global limit (8/min) applies to every route"
    );
    let (st, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(st, StatusCode::OK, "probes are never rate limited");
}
both!(ticket_and_global_rate_limits, |c| {
    c.rate_limit.tickets_per_minute = 2;
    c.rate_limit.global_per_minute = 8;
});

async fn cors_allows_only_configured_origins(app: TestApp) {
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/events"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://app.gatehouse.test").await.unwrap();
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://app.gatehouse.test"
    );
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(
        evil.headers().get("access-control-allow-origin").is_none(),
        "unlisted origins get no CORS grant"
    );
    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://app.gatehouse.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://app.gatehouse.test"
    );
}
both!(cors_allows_only_configured_origins);

async fn malformed_and_oversized_bodies_are_4xx_in_the_error_shape(app: TestApp) {
    let send = |body: String, content_type: Option<&'static str>| {
        let mut req = app.client.post(app.url("/auth/register")).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let cases = [
        (send("{\"email\": ".into(), Some("application/json")), StatusCode::BAD_REQUEST, "invalid_json"),
        (send("[1, 2]".into(), Some("application/json")), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (send(json!({"email": 5, "password": "x", "display_name": "y"}).to_string(), Some("application/json")), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (send(json!({"email": "a@b.co", "password": "password1", "display_name": "y", "admin": true}).to_string(), Some("application/json")), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (send("email=a".into(), None), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (send(format!("{{\"email\": \"{}\"}}", "a".repeat(8192)), Some("application/json")), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ];
    for (fut, status, code) in cases {
        let resp = fut.await.unwrap();
        let st = resp.status();
        let v: serde_json::Value = resp.json().await.expect("every error is JSON");
        assert_error(st, &v, status, code);
    }
    let (st, v) = app.call(Method::GET, "/no/such/route", None, None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app.call(Method::DELETE, "/auth/login", None, None).await;
    assert_error(st, &v, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // Nothing was written by any of those.
    let (st, _) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "a@b.co", "password": "password1"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
both!(
    malformed_and_oversized_bodies_are_4xx_in_the_error_shape,
    |c| {
        c.server.body_limit_bytes = 4096;
    }
);

async fn slow_requests_time_out_with_408(app: TestApp) {
    // An argon2id verification takes tens of milliseconds: longer than the limit.
    let (st, v) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "a@b.co", "password": "password1"}),
        )
        .await;
    assert_error(st, &v, StatusCode::REQUEST_TIMEOUT, "timeout");
}
both!(slow_requests_time_out_with_408, |c| {
    c.server.request_timeout_ms = 10;
});

async fn health_metrics_request_ids_and_docs(app: TestApp) {
    let (st, v) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let want = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(v["database"], want);
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(
        resp.headers()
            .get("x-request-id")
            .is_some_and(|id| id.len() >= 32),
        "a request id is assigned"
    );
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"],
        "trace-me-42",
        "a caller's request id is propagated"
    );

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");

    let (st, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/users/me",
        "/users/{id}/role",
        "/events",
        "/events/{id}",
        "/events/admin/{admin_id}",
        "/events/{id}/status",
        "/events/{id}/ticket-sale",
        "/events/{id}/stats",
        "/events/{id}/analytics",
        "/events/{id}/reports",
        "/events/reports/{id}",
        "/tickets",
        "/tickets/{id}",
        "/tickets/{id}/qr",
        "/tickets/{id}/status",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI documents {path}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let html = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("/docs/scalar.js") && !html.contains("https://"),
        "the docs page loads nothing from outside"
    );
    let js = app
        .client
        .get(app.url("/docs/scalar.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.bytes().await.unwrap().len() > 100_000);
}
both!(health_metrics_request_ids_and_docs);

/// The document states the bounds the server enforces, and the server
/// enforces what the document states (found by scripts/api-fuzz: four
/// lists documented no `limit` bounds, `GET /notifications` clamped
/// `limit=2147483648` to 100 instead of refusing it, a well-formed scan
/// cursor naming no scan was a 400, the webhook's signature header was not
/// checked when Stripe is not configured).
async fn the_document_states_what_the_server_enforces(app: TestApp) {
    let admin = app.admin().await;
    let (_, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    let mut listed = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(params) = item["get"]["parameters"].as_array() else {
            continue;
        };
        for p in params {
            if p["in"] == "query" && p["name"] == "limit" {
                let s = &p["schema"];
                assert_eq!(
                    (s["minimum"].as_u64(), s["maximum"].as_u64()),
                    (Some(1), Some(100)),
                    "GET {path}: limit documents 1 to 100: {p}"
                );
                listed.push(path.clone());
            }
        }
    }
    for path in ["/events", "/tickets", "/market/listings", "/notifications"] {
        assert!(listed.iter().any(|p| p == path), "{path} takes a limit");
        for bad in ["0", "101", "2147483648"] {
            let (st, v) = app.get(&format!("{path}?limit={bad}"), &admin.access).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "GET {path}?limit={bad}: {v}");
        }
        let (st, v) = app.get(&format!("{path}?limit=100"), &admin.access).await;
        assert!(st.is_success(), "GET {path}?limit=100: {st} {v}");
    }
    let hook = &doc["paths"]["/payments/webhook"]["post"]["parameters"][0];
    assert_eq!(
        (hook["name"].as_str(), hook["required"].as_bool()),
        (Some("Stripe-Signature"), Some(true))
    );
    let zone = doc["paths"]["/checkin/tickets/{id}/validate"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "zone")
        .unwrap();
    assert_eq!(zone["schema"]["maximum"].as_u64(), Some(31), "{zone}");
    let key = &doc["paths"]["/orders"]["post"]["parameters"][0];
    assert_eq!(key["name"], "Idempotency-Key");
    assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$", "{key}");

    // A scan cursor: malformed is 400, well-formed but unknown is 422.
    let list = format!("/checkin/user/{}/check-ins", admin.user_id);
    let (st, v) = app.get(&format!("{list}?cursor=nope"), &admin.access).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_query");
    let unknown = "00000000-0000-0000-0000-000000000000:0";
    let (st, v) = app
        .get(&format!("{list}?cursor={unknown}"), &admin.access)
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
both!(the_document_states_what_the_server_enforces);

#[test]
fn cloud_config_prints_effective_configuration_with_secrets_redacted() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud"))
        .arg("config")
        .env(
            "CLOUD_AUTH__JWT_SECRET",
            "do-not-print-this-secret-0123456789",
        )
        .env("CLOUD_DATABASE__URL", "postgres://app:hunter2@db/gatehouse")
        .env("CLOUD_RATE_LIMIT__AUTH_PER_MINUTE", "7")
        .output()
        .expect("run cloud config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("auth_per_minute = 7"),
        "env overrides defaults: {text}"
    );
    assert!(
        !text.contains("do-not-print") && !text.contains("hunter2"),
        "secrets are redacted: {text}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_cloud"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8(help.stdout).unwrap().contains("config"));
}

/// The cloud takes the gate's limits (issue 17): a half-sent request head is
/// dropped after `server.header_timeout_ms` instead of being held open, and
/// past `server.max_connections` a stranger gets `503 busy` while this host
/// (a local health probe) still gets answers from the reserve.
async fn half_sent_heads_are_dropped_and_a_full_server_still_answers_its_probe(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.addr;
    let half = |from: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
        let mut s = socket.connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: cloud\r\n")
            .await
            .unwrap();
        s
    };
    let read_all = |mut s: tokio::net::TcpStream| async move {
        let mut got = Vec::new();
        let r =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut got)).await;
        (r.is_ok(), String::from_utf8_lossy(&got).into_owned())
    };
    // Two strangers fill the pool (max_connections = 2).
    let a = half([127, 0, 0, 2]).await;
    let b = half([127, 0, 0, 3]).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (closed, answer) = read_all(half([127, 0, 0, 4]).await).await;
    assert!(closed, "a third stranger is turned away at once");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"busy""#), "{answer}");
    let (st, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(st, StatusCode::OK, "this host is answered from the reserve");
    // The strangers' half-sent heads are dropped after the header timeout.
    let (closed, answer) = read_all(a).await;
    assert!(
        closed && answer.is_empty(),
        "dropped without an answer: {answer}"
    );
    let (closed, _) = read_all(b).await;
    assert!(closed);
}
both!(
    half_sent_heads_are_dropped_and_a_full_server_still_answers_its_probe,
    |c| {
        c.server.header_timeout_ms = 500;
        c.server.max_connections = 2;
    }
);
