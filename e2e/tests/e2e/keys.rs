//! Event key rotation at a real gate: a ticket signed by a new key admits
//! once the gate synced; after the old key is retired the gate refuses the
//! old QR with `key_not_valid` and admits the re-issued one; only the
//! organizer may rotate.

use crate::{Venue, assert_decision};
use e2e::node::Timings;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_key_admits_and_a_retired_key_is_refused_at_a_synced_gate() {
    let v = Venue::open(1, Timings::fast(), false).await;
    let old = v.cloud.sell(&v.event, 2).await;
    v.manifests_reach(2).await;
    let gate = &v.nodes[0];

    let (customer, _) = v.cloud.customer("fan@keys.test").await;
    let (st, body) = v
        .cloud
        .call_as(
            &customer,
            Method::POST,
            &format!("/events/{}/keys", v.event),
            None,
        )
        .await;
    assert_eq!(
        st, 403,
        "a customer may not rotate the event's keys: {body}"
    );

    let (st, keys) = v
        .cloud
        .call(Method::POST, &format!("/events/{}/keys", v.event), None)
        .await;
    assert_eq!(st, 201, "{keys}");
    let old_key = keys["keys"][0]["key_id"].as_str().unwrap().to_string();
    let new = v.cloud.sell(&v.event, 1).await;
    v.manifests_reach(3).await;
    let d = gate.scan(&new[0].1).await;
    assert_decision(
        &d,
        "admit",
        None,
        "signed by the new key, learned with the delta",
    );
    let d = gate.scan(&old[0].1).await;
    assert_decision(&d, "admit", None, "the old key still admits until retired");

    let (st, done) = v
        .cloud
        .call(
            Method::POST,
            &format!("/events/{}/keys/{old_key}/retire", v.event),
            None,
        )
        .await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["reissued"], 2, "{done}");
    v.manifests_reach(4).await;
    gate.wait_check(&old[1].1, "reject", Some("key_not_valid"))
        .await;
    let d = gate.scan(&old[1].1).await;
    assert_decision(
        &d,
        "reject",
        Some("key_not_valid"),
        "the retired key's QR is refused",
    );
    let (st, t) = v
        .cloud
        .call(Method::GET, &format!("/tickets/{}", old[1].0), None)
        .await;
    assert_eq!(st, 200, "{t}");
    let fresh = t["credential"].as_str().unwrap();
    let d = gate.scan(fresh).await;
    assert_decision(&d, "admit", None, "the re-issued QR admits");
}
