//! Organizer webhooks on real receivers: signatures checked by the
//! Standard Webhooks reference verifier (forged, re-timed and stale
//! deliveries fail), secret rotation, replay with the same id, 410 disables
//! the endpoint, 5xx with Retry-After is retried, 3xx, timeouts and closed
//! connections fail after the configured attempts, SSRF refused.

use super::peers::WebhookSink;
use super::{fast, on_both};
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use std::time::Duration;

async fn endpoint(app: &TestApp, org: &Session, url: &str, types: Value) -> (String, String) {
    let (st, v) = app
        .post(
            "/notifications/webhook-endpoints",
            Some(&org.access),
            json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    (
        id(&v),
        v["secret"].as_str().expect("the secret, once").to_string(),
    )
}

async fn ping(app: &TestApp, org: &Session, endpoint: &str) -> String {
    let (st, v) = app
        .post(
            "/notifications/webhook",
            Some(&org.access),
            json!({"endpoint_id": endpoint, "type": "test.ping", "data": {"hello": "gate"}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    v["ids"][0].as_str().unwrap().to_string()
}

async fn final_status(app: &TestApp, token: &str, nid: &str) -> Value {
    for _ in 0..400 {
        let (st, v) = app
            .get(&format!("/notifications/{nid}/status"), token)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if matches!(v["status"].as_str(), Some("delivered" | "failed")) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{nid} never finished");
}

fn header(r: &super::peers::Received, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn signed_events_reach_the_organizer(backend: Backend) {
    let sink = WebhookSink::start().await;
    let app = TestApp::spawn(backend, fast).await;
    let (org, eid, buyer) = setup(&app).await;
    let (ep, secret) = endpoint(
        &app,
        &org,
        &sink.url("ok"),
        json!([
            "order.paid",
            "ticket.issued",
            "ticket.transferred",
            "ticket.checked_in"
        ]),
    )
    .await;
    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;
    let got = sink.wait_for("ok", 2).await;
    let verifier = Webhook::new(&secret).unwrap();
    let mut types = Vec::new();
    for r in &got {
        verifier
            .verify(r.body.as_bytes(), &r.headers)
            .expect("the reference verifier accepts a genuine delivery");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        types.push(body["type"].as_str().unwrap().to_string());
        if body["type"] == "order.paid" {
            assert_eq!(body["data"]["order"]["id"], oid.as_str(), "{body}");
        } else {
            assert_eq!(body["data"]["ticket_id"], tid.as_str(), "{body}");
        }
    }
    types.sort();
    assert_eq!(types, ["order.paid", "ticket.issued"]);

    // Forged and replayed deliveries fail the reference verifier.
    let r = &got[0];
    let tampered = r.body.replace("order", "0rder");
    assert!(
        verifier.verify(tampered.as_bytes(), &r.headers).is_err(),
        "a changed body fails"
    );
    let mut retimed = r.headers.clone();
    let fresh = (time::OffsetDateTime::now_utc().unix_timestamp() + 1).to_string();
    retimed.insert("webhook-timestamp", fresh.parse().unwrap());
    assert!(
        verifier.verify(r.body.as_bytes(), &retimed).is_err(),
        "a replay with a new timestamp fails"
    );
    let stale = time::OffsetDateTime::now_utc().unix_timestamp() - 600;
    let key = cloud::notifications::webhook::decode_secret(&secret).unwrap();
    let wid = header(r, "webhook-id");
    let mut old = r.headers.clone();
    old.insert("webhook-timestamp", stale.to_string().parse().unwrap());
    old.insert(
        "webhook-signature",
        cloud::notifications::webhook::sign(&key, &wid, stale, &r.body)
            .parse()
            .unwrap(),
    );
    assert!(
        verifier.verify(r.body.as_bytes(), &old).is_err(),
        "a delivery replayed 10 minutes later fails"
    );
    let other = Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(
        other.verify(r.body.as_bytes(), &r.headers).is_err(),
        "another secret fails"
    );

    // Rotation: both secrets sign for the overlap.
    let (st, rot) = app
        .post(
            &format!("/notifications/webhook-endpoints/{ep}/rotate-secret"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{rot}");
    assert_eq!(rot["live_secrets"], 2, "{rot}");
    let new_secret = rot["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let friend = app.register("friend@example.com").await;
    let (st, v) = app
        .post(
            &format!("/tickets/{tid}/transfer"),
            Some(&buyer.access),
            json!({"to_user_id": friend.user_id}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got = sink.wait_for("ok", 3).await;
    let r = got
        .iter()
        .find(|r| r.body.contains("ticket.transferred"))
        .expect("ticket.transferred");
    assert_eq!(
        header(r, "webhook-signature").split(' ').count(),
        2,
        "two signatures during a rotation"
    );
    Webhook::new(&new_secret)
        .unwrap()
        .verify(r.body.as_bytes(), &r.headers)
        .expect("the new secret verifies");
    verifier
        .verify(r.body.as_bytes(), &r.headers)
        .expect("the old secret still verifies");

    // A check-in at the door (online, by the organizer) reaches the endpoint.
    let (st, v) = app
        .post(
            "/checkin/check-in",
            Some(&org.access),
            json!({"ticket_id": tid, "gate": "North 2"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let got = sink.wait_for("ok", 4).await;
    let r = got
        .iter()
        .find(|r| r.body.contains("ticket.checked_in"))
        .expect("ticket.checked_in");
    Webhook::new(&new_secret)
        .unwrap()
        .verify(r.body.as_bytes(), &r.headers)
        .unwrap();
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (
            body["data"]["count"].as_u64(),
            body["data"]["scans"][0]["ticket_id"].as_str()
        ),
        (Some(1), Some(tid.as_str())),
        "{body}"
    );
    assert_eq!(body["data"]["scans"][0]["gate"], "North 2");

    // Deliveries list and replay (same webhook-id).
    let mut list = Vec::new();
    for _ in 0..100 {
        let (st, v) = app
            .get(
                &format!("/notifications/webhook-endpoints/{ep}/deliveries"),
                &org.access,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        list = v.as_array().unwrap().clone();
        if list.iter().all(|d| d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(list.len(), 4, "{list:?}");
    assert!(list.iter().all(|d| d["status"] == "delivered"), "{list:?}");
    let first = list[0]["id"].as_str().unwrap();
    let (st, v) = app
        .post(
            &format!("/notifications/{first}/resend"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got = sink.wait_for("ok", 5).await;
    let ids: Vec<String> = got.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(
        ids.iter().filter(|i| *i == first).count(),
        2,
        "the replay carries the same webhook-id: {ids:?}"
    );

    // Another organizer sees none of it.
    let stranger = app.organizer("stranger@example.com").await;
    let (st, mine) = app
        .get(
            &format!("/notifications/webhook-endpoints/{ep}"),
            &org.access,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{mine}");
    assert!(
        !mine.to_string().contains("whsec_"),
        "the secret is shown only on creation and rotation: {mine}"
    );
    let (st, v) = app
        .get(
            &format!("/notifications/webhook-endpoints/{ep}"),
            &stranger.access,
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .post(
            &format!("/notifications/{first}/resend"),
            Some(&stranger.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .post(
            "/notifications/webhook",
            Some(&stranger.access),
            json!({"endpoint_id": ep, "type": "test.ping", "data": {}}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
}
on_both!(signed_events_reach_the_organizer);

async fn misbehaving_receivers(backend: Backend) {
    let sink = WebhookSink::start().await;
    let app = TestApp::spawn(backend, fast).await;
    let org = app.organizer("org@example.com").await;
    let all = json!(["*"]);

    // 410 Gone: failed at once, endpoint disabled.
    let (gone, _) = endpoint(&app, &org, &sink.url("gone"), all.clone()).await;
    let s = final_status(&app, &org.access, &ping(&app, &org, &gone).await).await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["attempts"].as_u64(),
            s["last_status_code"].as_u64()
        ),
        (Some("failed"), Some(1), Some(410)),
        "{s}"
    );
    let (_, e) = app
        .get(
            &format!("/notifications/webhook-endpoints/{gone}"),
            &org.access,
        )
        .await;
    assert_eq!(e["enabled"], false, "410 disables the endpoint: {e}");
    let s = final_status(&app, &org.access, &ping(&app, &org, &gone).await).await;
    assert!(
        s["last_error"].as_str().unwrap().contains("disabled"),
        "{s}"
    );
    assert_eq!(
        sink.received("gone").len(),
        1,
        "a disabled endpoint is not called"
    );

    // 503 with Retry-After: 1 twice, then delivered; the waits are honoured.
    let (flaky, _) = endpoint(&app, &org, &sink.url("flaky"), all.clone()).await;
    let s = final_status(&app, &org.access, &ping(&app, &org, &flaky).await).await;
    assert_eq!(
        (s["status"].as_str(), s["attempts"].as_u64()),
        (Some("delivered"), Some(3)),
        "{s}"
    );
    let log: Vec<&str> = s["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(log, ["retry", "retry", "delivered"]);
    let calls = sink.received("flaky");
    for w in calls.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(950),
            "Retry-After: 1 is honoured ({:?})",
            w[1].at - w[0].at
        );
        assert_eq!(
            header(&w[0], "webhook-id"),
            header(&w[1], "webhook-id"),
            "the id is stable across retries"
        );
    }

    // 3xx, 5xx, a timeout and a closed connection: failed after 3 attempts.
    let closed = format!("http://{}/x", sink.close_addr);
    for (url, says) in [
        (sink.url("redirect"), "redirect"),
        (sink.url("error"), "500"),
        (sink.url("slow"), "timed out"),
        (closed, ""),
    ] {
        let (ep, _) = endpoint(&app, &org, &url, all.clone()).await;
        let s = final_status(&app, &org.access, &ping(&app, &org, &ep).await).await;
        assert_eq!(
            (s["status"].as_str(), s["attempts"].as_u64()),
            (Some("failed"), Some(3)),
            "{url}: {s}"
        );
        assert!(
            s["last_error"].as_str().unwrap().contains(says),
            "{url}: {s}"
        );
        let (st, r) = app
            .post(
                &format!("/notifications/{}/resend", s["id"].as_str().unwrap()),
                Some(&org.access),
                json!({}),
            )
            .await;
        assert_eq!(
            (st, r["status"].as_str(), r["attempts"].as_u64()),
            (StatusCode::OK, Some("queued"), Some(0)),
            "failed is replayable: {r}"
        );
    }
}
on_both!(misbehaving_receivers);

async fn internal_targets_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend, |c| {
        fast(c);
        c.notifications.webhooks.allow_networks.clear();
    })
    .await;
    let org = app.organizer("org@example.com").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "ftp://example.com/",
        "http://user:pw@example.com/",
    ] {
        let (st, v) = app
            .post(
                "/notifications/webhook-endpoints",
                Some(&org.access),
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        assert_error(
            st,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    let (st, v) = app
        .post(
            "/notifications/webhook-endpoints",
            Some(&org.access),
            json!({"url": "https://hooks.example.com/x", "event_types": ["order.shipped"]}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let buyer = app.register("buyer@example.com").await;
    let (st, v) = app
        .post(
            "/notifications/webhook-endpoints",
            Some(&buyer.access),
            json!({"url": "https://hooks.example.com/x", "event_types": ["*"]}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
}
on_both!(internal_targets_are_refused);

async fn gate_syncs_become_batched_checkin_webhooks(backend: Backend) {
    use crate::devices::{device_call, enroll, record, sell};
    use sync_protocol::SyncMessage;
    use sync_protocol::checkin::Summary;
    let sink = WebhookSink::start().await;
    let app = TestApp::spawn(backend, fast).await;
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let (_, secret) = endpoint(&app, &org, &sink.url("ok"), json!(["ticket.checked_in"])).await;
    let tickets = sell(&app, &org, &eid, 1).await;
    let gate = enroll(&app, &org, &eid).await;
    // The gate's own records (signed by its key: the cloud refuses records
    // of devices its roster does not list).
    let relayed = gate.node_id;
    let n = 1_200u64;
    let records: Vec<_> = (1..=n)
        .map(|seq| record(relayed, seq, &eid, &tickets[0].0, 1_000 + seq))
        .collect();
    let body = SyncMessage {
        event_id: eid.parse().unwrap(),
        have: Summary::default(),
        records,
    }
    .encode();
    let (st, reply, _) = device_call(
        &app,
        Some(&gate.token),
        &format!("/sync/events/{eid}/checkins"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&reply));
    let got = sink.wait_for("ok", 3).await;
    let verifier = Webhook::new(&secret).unwrap();
    let mut total = 0;
    for r in &got {
        verifier.verify(r.body.as_bytes(), &r.headers).unwrap();
        let b: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(b["type"], "ticket.checked_in");
        let k = b["data"]["scans"].as_array().unwrap().len();
        assert!(k <= 500, "at most 500 scans per delivery, got {k}");
        total += k;
    }
    assert_eq!(
        (got.len(), total),
        (3, n as usize),
        "1200 scans of one sync: three deliveries, not 1200"
    );
    // A retried sync adds nothing new and sends nothing.
    let (st, _, _) = device_call(
        &app,
        Some(&gate.token),
        &format!("/sync/events/{eid}/checkins"),
        Some(body),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.received("ok").len(),
        3,
        "a replayed batch is not announced again"
    );
}
on_both!(gate_syncs_become_batched_checkin_webhooks);
