//! The manifest log, through the store: every door-relevant ticket change
//! bumps the version; the signed full manifest and signed deltas open with
//! the sync-protocol verifier and agree with each other.

use crate::both;
use crate::common::*;
use crate::tickets::{key_ring, now};
use cloud::crypto::KeyVault;
use cloud::crypto::signing::event_signer;
use cloud::store::StoreError;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::manifest::{EntryStatus, ManifestState};
use sync_protocol::{
    CheckinLog, EventId, GatePolicy, Manifest, ManifestDelta, ManifestView, Outcome, Reason,
    TicketId, decide,
};

async fn signed_manifests_and_deltas_follow_ticket_changes(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let event: EventId = eid.parse().unwrap();
    let ring = key_ring(&app, &org, &eid).await;
    let store = cloud::store::connect(&app.database_url, 2)
        .await
        .expect("store");
    let vault = KeyVault::new([0; 32]);
    let signer = event_signer(store.as_ref(), &vault, event)
        .await
        .expect("signer");
    let at = now().unix_secs;

    // Version 1: a sale of two tickets.
    let (_, sale) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            json!({"tier": 1, "quantity": 2, "holder_name": "Jensen", "payment_method": "cash"}),
        )
        .await;
    let a = sale["tickets"][0]["id"].as_str().unwrap().to_string();
    let b = sale["tickets"][1]["id"].as_str().unwrap().to_string();
    let v1 = store.manifest_snapshot(event).await.unwrap();
    // Version 1 opened the door (the event went active); 2 is the sale.
    assert_eq!((v1.version, v1.entries.len()), (2, 2));
    let v1_bytes = v1.sign_full(&signer, at).unwrap();
    let mut node = ManifestState::empty(event);
    node.replace(Manifest::open(&v1_bytes, &ring, &event).expect("full manifest verifies"))
        .unwrap();

    // Reservations do not reach the door; cancel (v3) and a comp ticket (v4) do.
    app.post(
        "/tickets",
        Some(&org.access),
        json!({"event_id": eid, "tier": 1, "holder_name": "Held", "status": "reserved"}),
    )
    .await;
    let (st, _) = app
        .patch(
            &format!("/tickets/{a}/status"),
            &org.access,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, c) = app
        .post(
            "/tickets",
            Some(&org.access),
            json!({"event_id": eid, "tier": 2, "holder_name": "Comp"}),
        )
        .await;
    let c = c["id"].as_str().unwrap().to_string();

    let (delta, base) = store.manifest_changes_since(event, 2).await.unwrap();
    assert_eq!(
        (delta.version, delta.entries.len()),
        (4, 2),
        "two tickets changed after v2"
    );
    let delta_bytes = delta.sign_delta(2, &base, &signer, at).unwrap();
    let mut node_ring = ring.clone();
    for cert in &signer.certs {
        node_ring.insert(cert.clone()).unwrap();
    }
    node.apply(ManifestDelta::open(&delta_bytes, &node_ring, &event).expect("delta verifies"))
        .expect("delta chains onto v1");

    let (version, full) = store.signed_manifest(event, &signer, at).await.unwrap();
    assert_eq!(version, 4);
    let full = Manifest::open(&full, &ring, &event).unwrap();
    assert_eq!((full.version, node.version()), (4, 4));
    assert_eq!(
        &full.digest,
        node.digest(),
        "delta chain and full manifest agree on the digest"
    );
    assert_eq!(full.entries.len(), 3);
    let status = |id: &str| {
        node.entry(&id.parse::<TicketId>().unwrap())
            .map(|e| e.status)
    };
    assert_eq!(
        (status(&a), status(&b), status(&c)),
        (
            Some(EntryStatus::Revoked),
            Some(EntryStatus::Valid),
            Some(EntryStatus::Valid)
        )
    );

    // The revoked credential is refused at the gate, the other admitted.
    let (_, ta) = app.get(&format!("/tickets/{a}"), &org.access).await;
    let (_, tb) = app.get(&format!("/tickets/{b}"), &org.access).await;
    let log = CheckinLog::new(event);
    let gate = GatePolicy::entry(event);
    let d = decide(
        ta["credential"].as_str().unwrap(),
        &ring,
        &node,
        &log,
        &gate,
        now(),
    );
    assert_eq!(d.outcome, Outcome::Reject(Reason::Revoked));
    let d = decide(
        tb["credential"].as_str().unwrap(),
        &ring,
        &node,
        &log,
        &gate,
        now(),
    );
    assert_eq!(d.outcome, Outcome::Admit);

    // A delta from the future does not exist; one from genesis is the whole log.
    assert!(matches!(
        store.manifest_changes_since(event, 5).await,
        Err(StoreError::NotFound(_))
    ));
    let (current, base3) = store.manifest_changes_since(event, 4).await.unwrap();
    assert_eq!(
        (current.version, current.entries.len(), base3),
        (4, 0, current.digest),
        "from the current version nothing changed and the base is the current digest"
    );
    let (from0, base0) = store.manifest_changes_since(event, 0).await.unwrap();
    let mut fresh = ManifestState::empty(event);
    fresh
        .apply(
            ManifestDelta::open(
                &from0.sign_delta(0, &base0, &signer, at).unwrap(),
                &node_ring,
                &event,
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(fresh.digest(), node.digest());
    store.close().await;
}
both!(signed_manifests_and_deltas_follow_ticket_changes);
