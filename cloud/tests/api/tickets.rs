//! Tickets: issue, read, list, lifecycle, audit trail, QR codes, and
//! credentials that the gate's decision function admits.

use crate::both;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::manifest::ManifestState;
use sync_protocol::{
    CheckinLog, EventId, GatePolicy, KeyCertificate, KeyRetirement, KeyRing, Outcome, PublicKey,
    TimeReading, decide,
};

pub async fn key_ring(app: &TestApp, org: &Session, eid: &str) -> KeyRing {
    let (st, keys) = app.get(&format!("/events/{eid}/keys"), &org.access).await;
    assert_eq!(st, StatusCode::OK, "{keys}");
    ring_from_keys(&keys)
}

/// The ring a gate would hold after syncing, from a `GET /events/{id}/keys`
/// answer: the organizer's root, every certificate and every retirement.
pub fn ring_from_keys(keys: &Value) -> KeyRing {
    let root: [u8; 32] = hex::decode(keys["root_public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut ring = KeyRing::new(PublicKey::from_bytes(&root).unwrap());
    for c in keys["key_certificates"].as_array().unwrap() {
        let cert = KeyCertificate::decode(&hex::decode(c.as_str().unwrap()).unwrap()).unwrap();
        ring.insert(cert)
            .expect("the event key is certified by the organizer's root");
    }
    for r in keys["key_retirements"].as_array().unwrap() {
        ring.retire(KeyRetirement::decode(&hex::decode(r.as_str().unwrap()).unwrap()).unwrap())
            .expect("retirement signed by the root");
    }
    ring
}

pub fn now() -> TimeReading {
    TimeReading {
        unix_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        trusted: true,
    }
}

async fn issue_read_list_and_change_tickets(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let holder = app.register("holder@example.com").await;

    let (st, t) = app
        .post(
            "/tickets",
            Some(&org.access),
            json!({"event_id": eid, "tier": 2, "owner_id": holder.user_id}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(
        (
            t["status"].as_str(),
            t["tier"].as_u64(),
            t["zone_mask"].as_u64()
        ),
        (Some("issued"), Some(2), Some(3))
    );
    assert_eq!(
        t["holder_name"], "holder",
        "defaults to the owner's display name"
    );
    let tid = t["id"].as_str().unwrap().to_string();

    let (st, r) = app
        .post(
            "/tickets",
            Some(&org.access),
            json!({"event_id": eid, "tier": 1, "holder_name": "Guest", "status": "reserved"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(r["credential"].is_null(), "a reservation has no credential");
    let rid = r["id"].as_str().unwrap().to_string();
    let (st, v) = app.get(&format!("/tickets/{rid}/qr"), &org.access).await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
    let (st, issued) = app
        .patch(
            &format!("/tickets/{rid}/status"),
            &org.access,
            json!({"status": "issued"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{issued}");
    assert!(issued["credential"].as_str().unwrap().starts_with("TK1:"));

    // Filters and pagination.
    let (_, all) = app
        .get(&format!("/tickets?event_id={eid}&limit=1"), &org.access)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let cursor = all["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(
            &format!("/tickets?event_id={eid}&limit=1&cursor={cursor}"),
            &org.access,
        )
        .await;
    assert_ne!(rest["items"][0]["id"], all["items"][0]["id"]);
    let (_, owned) = app
        .get(
            &format!("/tickets?owner_id={}", holder.user_id),
            &org.access,
        )
        .await;
    assert_eq!(owned["items"].as_array().unwrap().len(), 1);
    let (st, v) = app.get("/tickets?status=lost", &org.access).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_query");

    // Lifecycle: cancel, then no way back.
    let (st, c) = app
        .patch(
            &format!("/tickets/{tid}/status"),
            &org.access,
            json!({"status": "cancelled", "reason": "duplicate"}),
        )
        .await;
    assert_eq!(
        (st, c["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (st, v) = app
        .patch(
            &format!("/tickets/{tid}/status"),
            &org.access,
            json!({"status": "issued"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");
    let (st, v) = app
        .patch(
            &format!("/tickets/{tid}/status"),
            &org.access,
            json!({"status": "transferred"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (_, cancelled) = app
        .get(
            &format!("/tickets?status=cancelled&event_id={eid}"),
            &org.access,
        )
        .await;
    assert_eq!(cancelled["items"].as_array().unwrap().len(), 1);
    let (st, v) = app
        .get(&format!("/tickets/{tid}/qr?format=png"), &holder.access)
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");

    let (st, h) = app
        .get(&format!("/tickets/{tid}/history"), &holder.access)
        .await;
    assert_eq!(st, StatusCode::OK);
    let steps: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["issued", "cancelled"],
        "the audit trail keeps every step"
    );
    assert_eq!(h[1]["reason"], "duplicate");
    assert_eq!(h[1]["actor_id"].as_str(), Some(org.user_id.as_str()));

    // VIP holds 2: the cancelled one freed its seat.
    let (_, e) = app.get(&format!("/events/{eid}"), &org.access).await;
    assert_eq!(e["tiers"][1]["available"], 2);
}
both!(issue_read_list_and_change_tickets);

async fn ticket_input_errors_are_4xx(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let missing = uuid::Uuid::now_v7();
    let cases: [(Value, StatusCode, &str); 5] = [
        (
            json!({"event_id": missing, "tier": 1, "holder_name": "X"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"event_id": eid, "tier": 7, "holder_name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "tier": 1, "owner_id": missing}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "tier": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "tier": "one", "holder_name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let (st, v) = app.post("/tickets", Some(&org.access), body).await;
        assert_error(st, &v, status, code);
    }
    for path in [
        format!("/tickets/{missing}"),
        format!("/tickets/{missing}/qr"),
        format!("/tickets/{missing}/history"),
    ] {
        let (st, v) = app.get(&path, &org.access).await;
        assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    }
    // Sold out: VIP has two seats.
    for _ in 0..2 {
        let (st, _) = app
            .post(
                "/tickets",
                Some(&org.access),
                json!({"event_id": eid, "tier": 2, "holder_name": "V"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let (st, v) = app
        .post(
            "/tickets",
            Some(&org.access),
            json!({"event_id": eid, "tier": 2, "holder_name": "V"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "sold_out");
    let (_, list) = app
        .get(&format!("/tickets?event_id={eid}"), &org.access)
        .await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "a refused sale writes nothing"
    );
}
both!(ticket_input_errors_are_4xx);

async fn qr_codes_and_credentials_admitted_at_the_gate(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let owner = app.register("owner@example.com").await;
    let (_, t) = app
        .post(
            "/tickets",
            Some(&org.access),
            json!({"event_id": eid, "tier": 1, "owner_id": owner.user_id}),
        )
        .await;
    let tid = t["id"].as_str().unwrap();
    let credential = t["credential"].as_str().unwrap();

    let ring = key_ring(&app, &org, &eid).await;
    let event: EventId = eid.parse().unwrap();
    let manifest = ManifestState::empty(event);
    let log = CheckinLog::new(event);
    let d = decide(
        credential,
        &ring,
        &manifest,
        &log,
        &GatePolicy::entry(event),
        now(),
    );
    assert_eq!(
        d.outcome,
        Outcome::Admit,
        "a freshly issued credential is admitted: {d:?}"
    );
    assert_eq!(d.ticket_id.map(|t| t.to_string()).as_deref(), Some(tid));
    let other_event = EventId::from_bytes([9; 16]);
    let d = decide(
        credential,
        &ring,
        &manifest,
        &log,
        &GatePolicy::entry(other_event),
        now(),
    );
    assert!(!d.outcome.is_admit(), "not at another event's gate");

    for who in [&owner, &org] {
        let resp = app
            .client
            .get(app.url(&format!("/tickets/{tid}/qr")))
            .bearer_auth(&who.access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "image/png");
        let png = resp.bytes().await.unwrap();
        let img = image::load_from_memory(&png).expect("a decodable PNG");
        assert!(
            img.width() >= 320 && img.width() == img.height(),
            "{}x{}",
            img.width(),
            img.height()
        );
    }
    let resp = app
        .client
        .get(app.url(&format!("/tickets/{tid}/qr?format=svg")))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert!(resp.text().await.unwrap().contains("<svg"));
    let (st, v) = app
        .get(&format!("/tickets/{tid}/qr?format=gif"), &owner.access)
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_query");
}
both!(qr_codes_and_credentials_admitted_at_the_gate);
