//! The doors view and the gate fleet over real HTTP: what gates report in
//! the optional `X-Gate-Status` header of their check-in sync (old gates
//! without it keep working, a malformed one never fails a sync), admissions
//! and rejections per tier, gate and reason, the SSE stream, and who may
//! see it. Also the console's pages: CSP, assets, settings and QR drawing.

use crate::both;
use crate::common::*;
use crate::devices::{enroll, record, sell};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sync_protocol::checkin::Summary;
use sync_protocol::{Outcome, Reason, SyncMessage};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn sync(
    app: &TestApp,
    token: &str,
    eid: &str,
    records: Vec<sync_protocol::ScanRecord>,
    status: Option<&str>,
) -> StatusCode {
    let body = SyncMessage {
        event_id: eid.parse().unwrap(),
        have: Summary::default(),
        records,
    }
    .encode();
    let mut req = app
        .client
        .post(app.url(&format!("/sync/events/{eid}/checkins")))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body);
    if let Some(s) = status {
        req = req.header("x-gate-status", s);
    }
    req.send().await.expect("sync").status()
}

async fn doors(app: &TestApp, token: &str, eid: &str) -> Value {
    let (st, v) = app.get(&format!("/events/{eid}/doors"), token).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

async fn gates_report_their_state_and_the_doors_view_counts_scans(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let tickets = sell(&app, &org, &eid, 3).await;
    let gate = enroll(&app, &org, &eid).await;

    let v = doors(&app, &org.access, &eid).await;
    assert_eq!(
        (
            v["tickets"].as_i64(),
            v["checked_in"].as_u64(),
            v["remaining"].as_i64()
        ),
        (Some(3), Some(0), Some(3)),
        "{v}"
    );
    assert_eq!(
        v["fleet"][0]["online"], false,
        "a gate that never synced is not online: {v}"
    );
    assert!(v["fleet"][0]["software"].is_null());

    // An old gate: no header at all. The sync works and the gate shows online.
    let t = now_ms();
    let mut admitted = record(gate.node_id, 1, &eid, &tickets[0].0, t - 1_000);
    admitted.gate = "North 2".into();
    assert_eq!(
        sync(&app, &gate.token, &eid, vec![admitted.clone()], None).await,
        StatusCode::OK
    );
    let v = doors(&app, &org.access, &eid).await;
    let d = &v["fleet"][0];
    assert_eq!(
        d["online"], true,
        "a gate syncing without the header is online: {v}"
    );
    assert!(
        d["scans_waiting"].is_null() && d["software"].is_null(),
        "unknown fields stay unknown: {d}"
    );
    assert_eq!(
        (
            v["checked_in"].as_u64(),
            v["inside_now"].as_u64(),
            v["remaining"].as_i64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(v["per_tier"][0]["checked_in"], 1, "per tier: {v}");
    assert_eq!(v["per_gate"][0]["gate"], "North 2");
    assert_eq!(
        v["per_minute"].as_array().unwrap().len(),
        60,
        "the last hour by minute"
    );
    assert_eq!(
        v["per_minute"][59]["admitted"], 1,
        "this minute's admission: {}",
        v["per_minute"]
    );
    assert_eq!(v["latest_scans"][0]["ticket_id"], tickets[0].0.as_str());

    // A new gate reports; a rejected scan counts by reason.
    let mut rejected = record(gate.node_id, 2, &eid, &tickets[1].0, t);
    rejected.outcome = Outcome::Reject(Reason::Revoked);
    rejected.sign(&sync_protocol::SecretKey::from_seed([7; 32]));
    let (_, event) = app.get(&format!("/events/{eid}"), &org.access).await;
    let held = event["manifest_version"].as_i64().unwrap();
    let status = format!(
        r#"{{"scans_waiting":4,"manifest_version":{held},"clock":"cloud","clock_trusted":true,"software":"0.2.0"}}"#
    );
    assert_eq!(
        sync(&app, &gate.token, &eid, vec![rejected], Some(&status)).await,
        StatusCode::OK
    );
    let v = doors(&app, &org.access, &eid).await;
    let d = &v["fleet"][0];
    assert_eq!(
        (
            d["scans_waiting"].as_i64(),
            d["manifest_version"].as_i64(),
            d["clock"].as_str(),
            d["clock_trusted"].as_bool(),
            d["software"].as_str()
        ),
        (
            Some(4),
            Some(held),
            Some("cloud"),
            Some(true),
            Some("0.2.0")
        ),
        "the gate's report: {d}"
    );
    assert!(
        d["manifest_made_at"].is_string(),
        "the age of the manifest it holds: {d}"
    );
    assert_eq!(d["manifest_current"], true, "{d}");
    assert_eq!(
        v["rejected_by_reason"],
        json!([{"reason": "revoked", "count": 1}])
    );
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["latest_scans"][0]["decision"], "reject", "newest first");

    // A malformed header never fails the sync, and forgets nothing it cannot read.
    assert_eq!(
        sync(&app, &gate.token, &eid, vec![], Some("{not json")).await,
        StatusCode::OK
    );
    let d = doors(&app, &org.access, &eid).await["fleet"][0].clone();
    assert!(d["software"].is_null() && d["online"] == true, "{d}");

    // Who may look: the organizer and admins; others are refused as the API refuses.
    let buyer = app.register("buyer@example.com").await;
    let (st, v) = app
        .get(&format!("/events/{eid}/doors"), &buyer.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .get(&format!("/events/{eid}/doors/stream"), &buyer.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .call(Method::GET, &format!("/events/{eid}/doors"), None, None)
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "missing_token");
    let admin = app.admin().await;
    doors(&app, &admin.access, &eid).await;

    // The stream sends the view at once.
    let mut resp = app
        .client
        .get(app.url(&format!("/events/{eid}/doors/stream")))
        .bearer_auth(&org.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
            .await
            .expect("the first doors event within 10 s")
            .unwrap()
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.starts_with("event: doors\ndata: {"),
        "an SSE `doors` event: {text}"
    );
    let data: Value =
        serde_json::from_str(text.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(data["checked_in"], 1, "{data}");
}
both!(gates_report_their_state_and_the_doors_view_counts_scans);

async fn pages_are_served_with_a_strict_csp_and_no_secret(app: TestApp) {
    for path in ["/", "/console"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("/assets/app.js") && !html.contains("<script>"),
            "no inline script in the shell"
        );
    }
    let r = app
        .client
        .get(app.url("/assets/uplot.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.headers()["content-type"].to_str().unwrap()),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );
    let (st, v) = app
        .call(Method::GET, "/assets/../Cargo.toml", None, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = app.call(Method::GET, "/console/config", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["stripe_publishable_key"].is_null(),
        "no card payments without Stripe: {v}"
    );
    assert!(!v.to_string().contains("sk_"), "never a secret key");

    let org = app.organizer("org@example.com").await;
    let r = app
        .client
        .post(app.url("/console/qr"))
        .bearer_auth(&org.access)
        .json(&json!({"text": "ABCD-EFGH"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().contains("<svg"));
    let buyer = app.register("buyer@example.com").await;
    let (st, v) = app
        .post("/console/qr", Some(&buyer.access), json!({"text": "x"}))
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post("/console/qr", Some(&org.access), json!({"text": ""}))
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = app
        .post(
            "/console/qr",
            Some(&org.access),
            json!({"text": "x".repeat(513)}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
both!(pages_are_served_with_a_strict_csp_and_no_secret);

async fn the_openapi_document_has_the_console_operations_and_their_answers(app: TestApp) {
    let (st, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let paths = &doc["paths"];
    for (path, method, codes) in [
        ("/public/events", "get", &["200", "400", "422"][..]),
        ("/public/events/{id}", "get", &["200", "400", "404"][..]),
        ("/users", "get", &["200", "400", "401", "403", "422"][..]),
        (
            "/events/{id}/orders",
            "get",
            &["200", "400", "401", "403", "404", "422"][..],
        ),
        (
            "/events/{id}/doors",
            "get",
            &["200", "400", "401", "403", "404"][..],
        ),
        (
            "/events/{id}/doors/stream",
            "get",
            &["200", "400", "401", "403", "404"][..],
        ),
        (
            "/orders/{id}/payments/{payment_id}/card",
            "post",
            &[
                "200", "400", "401", "403", "404", "409", "413", "415", "422", "503",
            ][..],
        ),
        ("/console/config", "get", &["200"][..]),
        (
            "/console/qr",
            "post",
            &["200", "400", "401", "403", "413", "415", "422"][..],
        ),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        for c in codes {
            assert!(
                op["responses"][*c].is_object(),
                "{method} {path} documents {c}: {}",
                op["responses"]
            );
        }
    }
    assert!(
        paths["/public/events"]["get"]["security"].is_null(),
        "the public list needs no token"
    );
    assert!(
        paths["/events/{id}/doors/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"].is_object(),
        "the stream is documented as text/event-stream"
    );
}
both!(the_openapi_document_has_the_console_operations_and_their_answers);
