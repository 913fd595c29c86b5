//! Rotation of event signing keys: adding a key to a live event (it signs
//! from then on, the old one keeps admitting), retiring the old one (its
//! tickets re-signed at the next generation, its retirement reaching the
//! gates with their sync), and who may do either.

use crate::both;
use crate::common::*;
use crate::devices::{device_call, enroll, sell};
use crate::tickets::{now, ring_from_keys};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::manifest::ManifestState;
use sync_protocol::{
    CheckinLog, Credential, EventId, GatePolicy, KeyCertificate, KeyRetirement, KeyRing, Manifest,
    Outcome, Reason, decide,
};

async fn keys(app: &TestApp, who: &Session, eid: &str) -> Value {
    let (st, v) = app.get(&format!("/events/{eid}/keys"), &who.access).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

fn key_of(credential: &str) -> String {
    Credential::from_qr_text(credential)
        .unwrap()
        .key_id
        .to_string()
}

fn outcome(ring: &KeyRing, manifest: &ManifestState, event: EventId, qr: &str) -> Outcome {
    let log = CheckinLog::new(event);
    decide(qr, ring, manifest, &log, &GatePolicy::entry(event), now()).outcome
}

async fn a_new_key_signs_the_old_admits_until_retired_and_its_tickets_are_reissued(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let event: EventId = eid.parse().unwrap();
    let old = sell(&app, &org, &eid, 2).await;
    let before = keys(&app, &org, &eid).await;
    let k1 = before["keys"][0]["key_id"].as_str().unwrap().to_string();
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    assert_eq!(before["keys"][0]["current"], true);
    assert_eq!(key_of(&old[0].1), k1, "tickets are signed by the event key");

    // Routine rotation: a second key, now the current one.
    let (st, rotated) = app
        .post(&format!("/events/{eid}/keys"), Some(&org.access), json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rotated}");
    let list = rotated["keys"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{rotated}");
    let k2 = list[1]["key_id"].as_str().unwrap().to_string();
    assert_ne!(k1, k2);
    assert_eq!(
        (list[0]["current"].as_bool(), list[1]["current"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(
        rotated["key_certificates"].as_array().unwrap().len(),
        2,
        "both keys are in service, so gates get both certificates"
    );
    let new = sell(&app, &org, &eid, 1).await;
    assert_eq!(
        key_of(&new[0].1),
        k2,
        "new credentials are signed by the new key"
    );

    // A gate syncing now: the manifest is signed by the new key and
    // carries both certificates; old and new tickets admit.
    let dev = enroll(&app, &org, &eid).await;
    let root_only = {
        let mut k = rotated.clone();
        k["key_certificates"] = json!([]);
        ring_from_keys(&k)
    };
    let path = format!("/sync/events/{eid}/manifest");
    let (st, bytes, h) = device_call(&app, Some(&dev.token), &path, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h.get("x-key-retirements").is_none(), "nothing retired yet");
    let m = Manifest::open(&bytes, &root_only, &event)
        .expect("the manifest carries the certificates a gate needs");
    assert_eq!(m.signer.to_string(), k2, "the current key signs manifests");
    let mut gate_ring = root_only.clone();
    for c in &m.certs {
        gate_ring.insert(c.clone()).unwrap();
    }
    let mut manifest = ManifestState::empty(event);
    manifest.replace(m).unwrap();
    for qr in [&old[0].1, &old[1].1, &new[0].1] {
        assert_eq!(outcome(&gate_ring, &manifest, event, qr), Outcome::Admit);
    }

    // The current key cannot be retired, nor an unknown one.
    let retire = |k: &str| format!("/events/{eid}/keys/{k}/retire");
    let (st, v) = app.post(&retire(&k2), Some(&org.access), json!({})).await;
    assert_error(st, &v, StatusCode::CONFLICT, "invalid_state");
    let (st, v) = app
        .post(&retire("00112233445566ff"), Some(&org.access), json!({}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    // Retiring the old key re-issues the two tickets it signed.
    let (st, done) = app.post(&retire(&k1), Some(&org.access), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(done["reissued"], 2, "{done}");
    assert_eq!(done["signed_by"], k2.as_str());
    let (st, v) = app.post(&retire(&k1), Some(&org.access), json!({})).await;
    assert_error(st, &v, StatusCode::CONFLICT, "gone");
    let (_, t) = app
        .get(&format!("/tickets/{}", old[0].0), &org.access)
        .await;
    let fresh = t["credential"].as_str().unwrap().to_string();
    assert_ne!(fresh, old[0].1, "the buyer's ticket shows a new QR");
    assert_eq!(key_of(&fresh), k2);
    assert_eq!(t["generation"], 1, "re-issue is the next generation");
    let (_, t) = app
        .get(&format!("/tickets/{}", new[0].0), &org.access)
        .await;
    assert_eq!(
        t["credential"].as_str(),
        Some(new[0].1.as_str()),
        "untouched"
    );

    // The gate learns the retirement with its next delta.
    let after = keys(&app, &org, &eid).await;
    assert_eq!(after["key_certificates"].as_array().unwrap().len(), 1);
    assert_eq!(after["key_retirements"].as_array().unwrap().len(), 1);
    assert!(after["keys"][0]["retired_at"].is_i64(), "{after}");
    let since = manifest.version();
    let (st, bytes, h) = device_call(
        &app,
        Some(&dev.token),
        &format!("{path}/delta?since={since}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "re-issue is a new manifest version");
    let header = h["x-key-retirements"].to_str().unwrap();
    let r = KeyRetirement::decode(&hex::decode(header).unwrap()).unwrap();
    assert_eq!(r.key_id.to_string(), k1);
    gate_ring.retire(r).expect("the root signed it");
    let d = sync_protocol::ManifestDelta::open(&bytes, &gate_ring, &event).unwrap();
    assert_eq!(d.entries.len(), 2, "the two re-issued tickets");
    manifest.apply(d).unwrap();
    assert_eq!(
        outcome(&gate_ring, &manifest, event, &old[0].1),
        Outcome::Reject(Reason::KeyNotValid),
        "the old QR, signed by the retired key, is refused"
    );
    assert_eq!(
        outcome(&gate_ring, &manifest, event, &fresh),
        Outcome::Admit
    );
    assert_eq!(
        outcome(&gate_ring, &manifest, event, &new[0].1),
        Outcome::Admit
    );
    // A gate that never learned the retirement still refuses the old QR:
    // the manifest moved its ticket to the next generation.
    let mut old_gate = root_only.clone();
    for c in before["key_certificates"].as_array().unwrap() {
        old_gate
            .insert(KeyCertificate::decode(&hex::decode(c.as_str().unwrap()).unwrap()).unwrap())
            .unwrap();
    }
    for c in &m_certs(&after) {
        old_gate.insert(c.clone()).unwrap();
    }
    assert_eq!(
        outcome(&old_gate, &manifest, event, &old[0].1),
        Outcome::Reject(Reason::Superseded)
    );
    // Current: the 204 still names the retirement.
    let (st, _, h) = device_call(
        &app,
        Some(&dev.token),
        &format!("{path}/delta?since={}", manifest.version()),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(h["x-key-retirements"].to_str().unwrap(), header);
}
both!(a_new_key_signs_the_old_admits_until_retired_and_its_tickets_are_reissued);

fn m_certs(keys: &Value) -> Vec<KeyCertificate> {
    keys["key_certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| KeyCertificate::decode(&hex::decode(c.as_str().unwrap()).unwrap()).unwrap())
        .collect()
}

async fn only_the_organizer_or_an_admin_rotates_and_retires(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let other = app.organizer("other@example.com").await;
    let buyer = app.register("buyer@example.com").await;
    let admin = app.admin().await;
    let eid = id(&app.active_event(&org).await);
    let draft = id(&app.create_event(&org).await);
    let rotate = |e: &str| format!("/events/{e}/keys");
    let k1 = keys(&app, &org, &eid).await["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let retire = format!("/events/{eid}/keys/{k1}/retire");

    let (st, v) = app.post(&rotate(&eid), None, json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    for who in [&other, &buyer] {
        let (st, v) = app.post(&rotate(&eid), Some(&who.access), json!({})).await;
        assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
        let (st, v) = app.post(&retire, Some(&who.access), json!({})).await;
        assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
        let (st, v) = app
            .post(&rotate(&draft), Some(&who.access), json!({}))
            .await;
        assert_eq!(
            st,
            StatusCode::NOT_FOUND,
            "someone else's draft does not exist: {v}"
        );
    }
    assert_eq!(
        keys(&app, &org, &eid).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing changed"
    );

    // The only key in service cannot be retired; an admin may rotate.
    let (st, v) = app.post(&retire, Some(&org.access), json!({})).await;
    assert_error(st, &v, StatusCode::CONFLICT, "invalid_state");
    let (st, v) = app
        .post(&rotate(&eid), Some(&admin.access), json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = app.post(&retire, Some(&admin.access), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["reissued"], 0, "no ticket was sold");
}
both!(only_the_organizer_or_an_admin_rotates_and_retires);
