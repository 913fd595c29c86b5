//! Device enrollment and device authentication: codes, proof of possession,
//! spent and expired codes, tokens, revocation. Also the helpers the sync
//! and check-in tests share.

use crate::both;
use crate::common::*;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sync_protocol::{
    Direction, EventId, Hlc, KeyCertificate, NodeId, Outcome, ScanId, ScanRecord, TicketId,
};

/// An enrolled device.
pub struct Enrolled {
    pub node_id: NodeId,
    pub token: String,
    pub body: Value,
}

pub async fn new_code(
    app: &TestApp,
    org: &Session,
    eid: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({"event_id": eid, "gate": "North 2", "direction": "entry"});
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(x.clone());
    }
    app.post("/devices/enrollment-codes", Some(&org.access), body)
        .await
}

pub async fn code(app: &TestApp, org: &Session, eid: &str) -> String {
    let (st, v) = new_code(app, org, eid, json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "enrollment code: {v}");
    v["code"].as_str().unwrap().to_string()
}

/// The enrollment request a device with `seed` sends for `code`.
pub fn enroll_body(seed: [u8; 32], code: &str, signed: &str) -> Value {
    let key = SigningKey::from_bytes(&seed);
    let proof = key.sign(&sync_protocol::device_api::enrollment_message(signed));
    json!({
        "code": code,
        "name": "pi-north-2",
        "device_public_key": hex::encode(key.verifying_key().to_bytes()),
        "proof": hex::encode(proof.to_bytes()),
    })
}

pub async fn enroll(app: &TestApp, org: &Session, eid: &str) -> Enrolled {
    let code = code(app, org, eid).await;
    let (st, v) = app
        .post("/devices/enroll", None, enroll_body([7; 32], &code, &code))
        .await;
    assert_eq!(st, StatusCode::CREATED, "enrollment: {v}");
    Enrolled {
        node_id: v["node_id"].as_str().unwrap().parse().unwrap(),
        token: v["device_token"].as_str().unwrap().to_string(),
        body: v,
    }
}

/// A device call with a binary body (or a GET without one).
pub async fn device_call(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, Vec<u8>, HeaderMap) {
    let mut req = match &body {
        Some(_) => app.client.post(app.url(path)),
        None => app.client.get(app.url(path)),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/octet-stream")
            .body(b);
    }
    let resp = req.send().await.expect("request");
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, resp.bytes().await.unwrap().to_vec(), headers)
}

pub fn error_code(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or("").to_string()
}

/// A scan record as a gate makes it, signed with the key every test device
/// enrolls with (seed `[7; 32]`, see [`enroll`]).
pub fn record(node: NodeId, seq: u64, event: &str, ticket: &str, hlc_ms: u64) -> ScanRecord {
    let mut r = unsigned(node, seq, event, ticket, hlc_ms);
    r.sign(&sync_protocol::SecretKey::from_seed([7; 32]));
    r
}

/// A scan record without a signature.
pub fn unsigned(node: NodeId, seq: u64, event: &str, ticket: &str, hlc_ms: u64) -> ScanRecord {
    ScanRecord {
        id: ScanId { node, seq },
        event_id: event.parse::<EventId>().unwrap(),
        ticket_id: ticket.parse::<TicketId>().unwrap(),
        generation: 0,
        direction: Direction::Entry,
        hlc: Hlc::new(hlc_ms, 0),
        zone: None,
        outcome: Outcome::Admit,
        gate: "North 2".into(),
        operator: String::new(),
        signature: Default::default(),
    }
}

/// Box-office sale of `n` tickets: `(id, credential)` each.
pub async fn sell(app: &TestApp, org: &Session, eid: &str, n: u32) -> Vec<(String, String)> {
    let (st, sale) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            json!({"tier": 1, "quantity": n, "holder_name": "Jensen", "payment_method": "cash"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "sale: {sale}");
    sale["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["credential"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn enrollment_hands_out_keys_policy_and_a_token(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = new_code(
        &app,
        &org,
        &eid,
        json!({"zone": 1, "direction": "exit", "require_listed": true, "grace_secs": 30}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let code = v["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 14, "XXXX-XXXX-XXXX: {code}");

    let resp = app
        .client
        .post(app.url("/devices/enroll"))
        .json(&enroll_body([3; 32], &code, &code))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(
        resp.headers().contains_key("x-gatehouse-time"),
        "every device answer carries the cloud's clock"
    );
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["event_id"], eid.as_str());
    assert_eq!(e["device_token"].as_str().unwrap().len(), 64);
    assert_eq!(e["gossip_key"].as_str().unwrap().len(), 64);
    assert_eq!(e["gate"], "North 2");
    assert_eq!(
        e["policy"],
        json!({"event_id": eid, "zone": 1, "direction": "exit", "grace_secs": 30,
               "require_listed": true, "default_reentry": false})
    );
    let root: [u8; 32] = hex::decode(e["root_public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let root = sync_protocol::PublicKey::from_bytes(&root).unwrap();
    let cert = hex::decode(e["key_certificates"][0].as_str().unwrap()).unwrap();
    KeyCertificate::decode(&cert)
        .unwrap()
        .verify(&root)
        .expect("the event key is certified by the root the device will trust");

    // A second device of the event is the roster's next version, with the
    // next gossip key (keys rotate with every roster version, issue #17).
    let other = enroll(&app, &org, &eid).await;
    assert_ne!(other.body["gossip_key"], e["gossip_key"]);
    assert_eq!(
        other.body["gossip_key_version"].as_u64(),
        e["gossip_key_version"].as_u64().map(|v| v + 1)
    );
    assert_ne!(
        other.body["node_id"], e["node_id"],
        "every device is its own node"
    );
}

async fn enrollment_refuses_bad_used_and_expired_codes_and_bad_proofs(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let code = code(&app, &org, &eid).await;

    let (st, v) = app
        .post(
            "/devices/enroll",
            None,
            enroll_body([1; 32], "ABCD-EFGH-JKMN", "ABCD-EFGH-JKMN"),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .post(
            "/devices/enroll",
            None,
            enroll_body([1; 32], &code, "ANOTHER-CODE"),
        )
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_proof");
    let mut bad_key = enroll_body([1; 32], &code, &code);
    bad_key["device_public_key"] = json!("zz");
    let (st, v) = app.post("/devices/enroll", None, bad_key).await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (st, v) = app
        .post("/devices/enroll", None, enroll_body([1; 32], &code, &code))
        .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "a failed proof does not spend the code: {v}"
    );
    let (st, v) = app
        .post("/devices/enroll", None, enroll_body([2; 32], &code, &code))
        .await;
    assert_error(st, &v, StatusCode::GONE, "enrollment_code_spent");

    let expiring = self::code(&app, &org, &eid).await;
    cloud::store::connect(&app.database_url, 1).await.unwrap();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    sqlx::query("UPDATE enrollment_codes SET expires_at = 0 WHERE used_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();
    let (st, v) = app
        .post(
            "/devices/enroll",
            None,
            enroll_body([4; 32], &expiring, &expiring),
        )
        .await;
    assert_error(st, &v, StatusCode::GONE, "enrollment_code_spent");

    // Codes only from the event's organizer or an admin.
    let rival = app.organizer("rival@example.com").await;
    let (st, v) = new_code(&app, &rival, &eid, json!({})).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let customer = app.register("c@example.com").await;
    let (st, v) = new_code(&app, &customer, &eid, json!({})).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = new_code(&app, &org, &eid, json!({"zone": 40})).await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let admin = app.admin().await;
    let (st, _) = new_code(&app, &admin, &eid, json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "admins may enroll gates anywhere");
}

async fn device_tokens_are_checked_per_event_and_revocation_is_immediate(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other_eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dev = enroll(&app, &org, &eid).await;
    let manifest = format!("/sync/events/{eid}/manifest");

    let (st, body, headers) = device_call(&app, None, &manifest, None).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    assert!(
        headers.contains_key("x-gatehouse-time"),
        "errors carry the time too"
    );
    let (st, body, _) = device_call(&app, Some(&"ab".repeat(32)), &manifest, None).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    let (st, body, _) = device_call(&app, Some(&org.access), &manifest, None).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "a user's JWT is not a device token"
    );
    let (st, body, _) = device_call(
        &app,
        Some(&dev.token),
        &format!("/sync/events/{other_eid}/manifest"),
        None,
    )
    .await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "wrong_event")
    );
    let (st, _, _) = device_call(&app, Some(&dev.token), &manifest, None).await;
    assert_eq!(st, StatusCode::OK);

    let rival = app.organizer("rival@example.com").await;
    let revoke = format!("/devices/{}/revoke", dev.node_id);
    let (st, v) = app.post(&revoke, Some(&rival.access), json!({})).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app.post(&revoke, Some(&org.access), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["revoked"], true);
    let (st, body, _) = device_call(&app, Some(&dev.token), &manifest, None).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "device_revoked"),
        "a revoked token stops working at the next call"
    );

    let (st, list) = app
        .get(&format!("/devices?event_id={eid}"), &org.access)
        .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let d = &list.as_array().unwrap()[0];
    assert_eq!(d["id"], dev.node_id.to_string());
    assert_eq!(
        (d["revoked"].as_bool(), d["gate"].as_str()),
        (Some(true), Some("North 2"))
    );
    assert!(
        d["last_seen_at"].is_string(),
        "the authenticated call was seen: {d}"
    );
    let (st, v) = app
        .get(&format!("/devices?event_id={eid}"), &rival.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
}

both!(enrollment_hands_out_keys_policy_and_a_token);
both!(enrollment_refuses_bad_used_and_expired_codes_and_bad_proofs);
both!(device_tokens_are_checked_per_event_and_revocation_is_immediate);

async fn the_openapi_document_lists_device_sync_and_checkin_endpoints(app: TestApp) {
    let (st, doc) = app
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let paths = &doc["paths"];
    for p in [
        "/devices/enrollment-codes",
        "/devices/enroll",
        "/devices",
        "/devices/{id}/revoke",
        "/sync/events/{event_id}/manifest",
        "/sync/events/{event_id}/manifest/delta",
        "/checkin/tickets",
        "/checkin/tickets/{id}",
        "/checkin/tickets/{id}/validate",
        "/checkin/check-in",
        "/checkin/check-in/{id}",
        "/checkin/user/{user_id}/check-ins",
        "/checkin/event/{event_id}/check-ins",
        "/checkin/event/{event_id}/stats",
    ] {
        assert!(paths[p].is_object(), "{p} is documented");
    }
    let push = &paths["/sync/events/{event_id}/checkins"]["post"];
    assert!(
        push["requestBody"]["content"]["application/octet-stream"].is_object(),
        "the sync body is binary: {push}"
    );
    assert!(doc["components"]["securitySchemes"]["device_token"].is_object());
}

both!(the_openapi_document_lists_device_sync_and_checkin_endpoints);
