//! The cloud's changes reaching connected gates: a refund revokes, a new
//! sale admits. The time each took is printed (`e2e-measure` lines); the
//! figures in `docs/benchmarks.md` come from `benches/latency.rs` with the shipped
//! sync periods.

use crate::{SETTLE, Venue, assert_decision};
use e2e::node::Timings;
use e2e::wait_until;
use std::time::Instant;

/// Refund in the cloud → delta → the gate rejects the old credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_in_the_cloud_revokes_the_credential_at_the_gates() {
    let v = Venue::open(2, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 1).await;
    v.manifests_reach(2).await;
    let dry = v.nodes[0].cli(&["check", "--text", &tickets[0].1, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("check --json");
    assert_decision(&report, "admit", None, "valid before the refund (dry run)");

    let start = Instant::now();
    v.cloud.refund(&tickets[0].0).await;
    v.manifests_reach(3).await;
    println!(
        "e2e-measure {{\"refund_to_revoked_ms\": {}}}",
        start.elapsed().as_millis()
    );
    for n in &v.nodes {
        let r = n.scan(&tickets[0].1).await;
        assert_decision(&r, "reject", Some("revoked"), "the refund reached the gate");
    }
}

/// A gate that refuses unlisted tickets admits one sold after it synced
/// as soon as the next delta arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ticket_sold_after_the_gates_synced_is_admitted_at_a_connected_gate() {
    let v = Venue::open(2, Timings::fast(), true).await;
    let early = v.cloud.sell(&v.event, 1).await;
    v.manifests_reach(2).await;
    wait_until(SETTLE, "gate A synced with the cloud", || async {
        v.nodes[0].status().await["cloud"]["last_sync_ms"].is_u64()
    })
    .await;
    assert_decision(
        &v.nodes[0].scan(&early[0].1).await,
        "admit",
        None,
        "listed ticket",
    );

    let start = Instant::now();
    let sold = v.cloud.sell(&v.event, 1).await;
    v.manifests_reach(3).await;
    let took = start.elapsed();
    println!(
        "e2e-measure {{\"sale_to_admissible_ms\": {}}}",
        took.as_millis()
    );
    let r = v.nodes[1].scan(&sold[0].1).await;
    assert_decision(&r, "admit", None, "the new sale is listed at the gate");
}
