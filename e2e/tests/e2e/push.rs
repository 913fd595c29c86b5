//! The cloud's push channel with real processes: news committed through one
//! cloud replica reaches a gate connected to another long before the gate's
//! poll would bring it, scans reach the cloud without waiting for the poll,
//! and a gate whose push stream is cut keeps getting news by polling and
//! reconnects. Behaviour only: the deadlines are far above any latency and
//! below the poll period; the figures come from `benches/push.rs`.

use crate::{SETTLE, Venue, assert_decision};
use e2e::node::{Node, Timings};
use e2e::wait_until;
use std::time::Duration;

/// Far below the 60 s poll of [`Timings::push_only`]: news that arrives
/// within it came by push.
const BY_PUSH: Duration = Duration::from_secs(20);

async fn push_connected(node: &Node) {
    wait_until(SETTLE, "the gate's push stream open", || async {
        node.push_status().await["connected"] == true
    })
    .await;
}

async fn manifest_within(node: &Node, deadline: Duration, v: u64, what: &str) {
    wait_until(deadline, what, || async {
        node.manifest_version().await >= v
    })
    .await;
}

/// Replica A sells and refunds, then revokes gate B; gate A, connected to
/// replica B only and polling every 60 s, learns each at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_through_replica_a_reaches_a_gate_on_replica_b_by_push() {
    let v = Venue::open_replicated(2, Timings::push_only(), false).await;
    let (gate, other) = (&v.nodes[0], &v.nodes[1]);
    manifest_within(gate, SETTLE, 1, "gate A's first pull").await;
    push_connected(gate).await;

    let sold = v.cloud.sell(&v.event, 1).await;
    manifest_within(gate, BY_PUSH, 2, "the sale at gate A by push").await;
    let admitted = gate.scan(&sold[0].1).await;
    assert_decision(&admitted, "admit", None, "sold through replica A");

    v.cloud.refund(&sold[0].0).await;
    manifest_within(gate, BY_PUSH, 3, "the refund at gate A by push").await;
    let again = gate.cli(&["check", "--text", &sold[0].1, "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&again.stdout).expect("check --json");
    assert_decision(&r, "reject", Some("revoked"), "refunded through replica A");

    // The admission went up soon after the scan, not at the next poll.
    let scan_id = admitted["scan_id"].as_str().expect("scan id").to_string();
    wait_until(BY_PUSH, "the scan in the cloud", || async {
        let scans = v.cloud.scans(&v.event).await;
        crate::scan_ids(&scans).contains(&scan_id)
    })
    .await;

    let other_id = other.status().await["node_id"]
        .as_str()
        .expect("node id")
        .to_string();
    v.cloud.revoke_device(&other_id).await;
    wait_until(
        BY_PUSH,
        "gate B's revocation in gate A's roster",
        || async { gate.status().await["roster"]["revoked"].as_u64() >= Some(1) },
    )
    .await;
}

/// The proxy drops the push stream and refuses it again; the sale still
/// arrives by the poll while the stream is down; once the proxy lets it
/// through, the gate opens a new stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_whose_push_stream_drops_falls_back_to_polling_and_reconnects() {
    let timings = Timings {
        cloud_interval_ms: 1_000,
        cloud_backoff_max_ms: 1_000,
        anti_entropy_ms: 500,
        peer_timeout_ms: 500,
    };
    let v = Venue::open(1, timings, false).await;
    let gate = &v.nodes[0];
    push_connected(gate).await;
    let connects = gate.push_status().await["connects"].as_u64().unwrap_or(0);

    v.cloud_proxy.block("/push");
    wait_until(SETTLE, "the push stream down", || async {
        gate.push_status().await["connected"] == false
    })
    .await;
    v.cloud.sell(&v.event, 1).await;
    manifest_within(gate, SETTLE, 2, "the sale by the poll").await;
    assert_eq!(
        gate.push_status().await["connected"],
        false,
        "the sale came while the push stream was refused, so by the poll"
    );

    v.cloud_proxy.unblock();
    wait_until(SETTLE, "a new push stream", || async {
        let p = gate.push_status().await;
        p["connected"] == true && p["connects"].as_u64() > Some(connects)
    })
    .await;
    v.cloud.sell(&v.event, 1).await;
    manifest_within(gate, SETTLE, 3, "the next sale").await;
}
