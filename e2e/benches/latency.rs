//! End-to-end figures with the shipped sync periods (cloud sync every 5 s):
//! sale → admissible at a gate that requires listing, refund → revoked, and
//! gate-to-gate propagation with the real cloud present. It takes minutes of
//! wall time, so it is a bench binary rather than a test:
//! `cargo build --release --bins && cargo bench -p e2e --bench latency`.
//! It prints one `e2e-bench` JSON line; the targets are read off it.

use e2e::node::Timings;
use e2e::percentiles;
use e2e::venue::{Venue, assert_decision};
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;
const PROPAGATIONS: usize = 100;

/// `(rounds, propagations)`. Without `--bench` (what `cargo bench` passes;
/// `cargo test --benches` and scripts/run-doc-commands do not): one round
/// and a few hops, a check that the bench works, not a figure.
fn sizes() -> (usize, usize) {
    if std::env::args().any(|a| a == "--bench") {
        (ROUNDS, PROPAGATIONS)
    } else {
        (1, 5)
    }
}

fn summary(samples: &[Duration]) -> serde_json::Value {
    let (p50, p95, max) = percentiles(samples);
    serde_json::json!({"n": samples.len(), "p50_ms": p50.round(), "p95_ms": p95.round(), "max_ms": max.round()})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let (rounds, propagations) = sizes();
    let v = Venue::open(2, Timings::defaults(), true).await;
    let (a, b) = (&v.nodes[0], &v.nodes[1]);
    let mut sale = Vec::new();
    let mut refund = Vec::new();
    for i in 0..rounds {
        // Each wait below ends right after a sync; spread the next change
        // over the sync period so the samples cover its whole phase.
        let phase = |k: u64| Duration::from_millis(k * 5_000 / rounds as u64 % 5_000);
        tokio::time::sleep(phase(i as u64)).await;
        let held = a.manifest_version().await;
        let start = Instant::now();
        let t = v.cloud.sell(&v.event, 1).await;
        e2e::wait_until(Duration::from_secs(60), "the sale at gate A", || async {
            a.manifest_version().await > held
        })
        .await;
        sale.push(start.elapsed());
        assert_decision(&a.scan(&t[0].1).await, "admit", None, "sold and listed");

        tokio::time::sleep(phase(i as u64 + rounds as u64 / 2)).await;
        let held = a.manifest_version().await;
        let start = Instant::now();
        v.cloud.refund(&t[0].0).await;
        e2e::wait_until(Duration::from_secs(60), "the refund at gate A", || async {
            a.manifest_version().await > held
        })
        .await;
        refund.push(start.elapsed());
        let again = a.cli(&["check", "--text", &t[0].1, "--json"]);
        let r: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_decision(&r, "reject", Some("revoked"), "refunded");
    }

    let before = a.manifest_version().await;
    let tickets = v.cloud.sell(&v.event, 50).await;
    let more = v.cloud.sell(&v.event, 50).await;
    v.manifests_reach(before + 2).await;
    let mut hop = Vec::new();
    for (_, text) in tickets.iter().chain(more.iter()).take(propagations) {
        let start = Instant::now();
        let r = a.scan(text).await;
        let id = r["scan_id"].as_str().unwrap().to_string();
        loop {
            if b.scan_ids().await.contains(&id) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "propagation to B"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        hop.push(start.elapsed());
    }
    println!(
        "e2e-bench {}",
        serde_json::json!({
            "sync": "defaults (cloud 5 s, anti-entropy 5 s)",
            "sale_to_admissible": summary(&sale),
            "refund_to_revoked": summary(&refund),
            "gate_to_gate_with_cloud": summary(&hop),
        })
    );
}
