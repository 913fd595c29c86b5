//! A gate syncing through the balancer while the box office sells through
//! it too: every poll may reach another replica, and the gate still sees
//! one manifest. The version it is told never goes backwards, every delta
//! verifies and chains onto what the gate holds, and at the end the gate
//! holds exactly the full manifest.

use super::{Cluster, served_by};
use crate::common::{TestApp, id};
use crate::devices::{device_call, enroll};
use crate::tickets::key_ring;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use sync_protocol::manifest::ManifestState;
use sync_protocol::{EventId, KeyRing, Manifest, ManifestDelta};

fn version(h: &reqwest::header::HeaderMap) -> u64 {
    h["x-manifest-version"].to_str().unwrap().parse().unwrap()
}

async fn full(app: &TestApp, token: &str, eid: &str, ring: &KeyRing) -> Manifest {
    let (st, bytes, _) = device_call(
        app,
        Some(token),
        &format!("/sync/events/{eid}/manifest"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    Manifest::open(&bytes, ring, &eid.parse::<EventId>().unwrap())
        .expect("the full manifest verifies")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_syncing_through_the_balancer_sees_one_consistent_manifest() {
    let cluster = Cluster::start(3, &[]).await;
    let app = &cluster.app;
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let event: EventId = eid.parse().unwrap();
    let ring = key_ring(app, &org, &eid).await;
    let gate = enroll(app, &org, &eid).await;
    let mut node = ManifestState::empty(event);
    node.replace(full(app, &gate.token, &eid, &ring).await)
        .unwrap();

    let selling = Arc::new(AtomicBool::new(true));
    let mut sellers = tokio::task::JoinSet::new();
    for s in 0..3 {
        let (api, token, eid) = (app.api(), org.access.clone(), eid.clone());
        sellers.spawn(async move {
            for n in 0..10 {
                let body = json!({"tier": 1, "quantity": 1 + (s + n) % 2, "holder_name": "Jensen", "payment_method": "cash"});
                let (st, _, v) = api.post(&format!("/events/{eid}/ticket-sale"), &token, &[], body).await;
                assert_eq!(st, StatusCode::CREATED, "{v}");
            }
        });
    }
    let done = selling.clone();
    let all_sold = tokio::spawn(async move {
        sellers.join_all().await;
        done.store(false, Ordering::SeqCst);
    });

    let mut told = node.version();
    let mut deltas = 0;
    let mut replicas = BTreeSet::new();
    loop {
        let last_round = !selling.load(Ordering::SeqCst);
        let path = format!("/sync/events/{eid}/manifest/delta?since={}", node.version());
        let (st, bytes, h) = device_call(app, Some(&gate.token), &path, None).await;
        replicas.insert(served_by(&h));
        let now = version(&h);
        assert!(
            now >= told,
            "the manifest version went back from {told} to {now}"
        );
        told = now;
        match st {
            StatusCode::NO_CONTENT => assert_eq!(now, node.version(), "204 means current"),
            StatusCode::OK => {
                let delta = ManifestDelta::open(&bytes, &ring, &event).expect("the delta verifies");
                node.apply(delta)
                    .expect("the delta chains onto what the gate holds");
                assert_eq!(
                    node.version(),
                    now,
                    "the delta brings the gate to the version announced"
                );
                deltas += 1;
            }
            other => panic!("sync answered {other}: {}", String::from_utf8_lossy(&bytes)),
        }
        if last_round {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    all_sold.await.unwrap();
    assert_eq!(
        replicas.len(),
        3,
        "the gate's polls reached every replica: {replicas:?}"
    );
    assert!(
        deltas > 1,
        "the gate followed the sale in several deltas: {deltas}"
    );
    let truth = full(app, &gate.token, &eid, &ring).await;
    assert_eq!(truth.version, node.version(), "the gate is current");
    assert_eq!(
        truth.entries.len(),
        node.len(),
        "the gate holds every ticket"
    );
    assert_eq!(node.len(), 45, "3 sellers × 10 sales of 1 or 2 tickets");
}
