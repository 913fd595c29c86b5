//! Cloud-to-gate and gate-to-cloud latency with the push channel, on real
//! processes with the shipped periods (cloud poll 5 s, so anything under it
//! is the push's doing):
//!
//! - commit → gate: from the REST call that commits a sale, a refund or a
//!   device revocation until the gate's `/status` shows the new manifest
//!   version (or the revocation in its roster);
//! - scan → cloud: from `POST /scan` at the gate until the cloud's check-in
//!   list holds the scan.
//!
//! Two set-ups: one cloud on SQLite, and two cloud replicas on one
//! PostgreSQL database with the gate connected to replica B while every
//! change is made through replica A. Command (PostgreSQL on 127.0.0.1:5432):
//! `cargo build --release --bins && cargo bench -p e2e --bench push`.
//! It prints one `e2e-bench` JSON line.

use e2e::node::{Node, Timings};
use e2e::percentiles;
use e2e::proxy::Proxy;
use e2e::venue::Venue;
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;
const REVOCATIONS: usize = 10;
const DEADLINE: Duration = Duration::from_secs(60);

fn summary(samples: &[Duration]) -> serde_json::Value {
    let (p50, p95, max) = percentiles(samples);
    serde_json::json!({"n": samples.len(), "p50_ms": p50.round(), "p95_ms": p95.round(), "max_ms": max.round()})
}

/// Spreads the commits over the cloud's 100 ms poll phase.
async fn spread(i: usize) {
    tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 250 + 50)).await;
}

async fn manifest_after(gate: &Node, held: u64) {
    e2e::wait_until(DEADLINE, "the change at the gate", || async {
        gate.manifest_version().await > held
    })
    .await;
}

async fn revoked_count(gate: &Node) -> u64 {
    gate.status().await["roster"]["revoked"]
        .as_u64()
        .unwrap_or(0)
}

/// Enrolls `n` devices that never run (only to be revoked).
async fn spare_devices(v: &Venue, dir: &std::path::Path, n: usize) -> Vec<String> {
    for i in 0..n {
        let code = v.cloud.enrollment_code(&v.event, "Spare", false).await;
        let d = dir.join(format!("spare-{i}"));
        std::fs::create_dir_all(&d).expect("spare dir");
        let _ = Node::enroll(
            &d,
            Proxy::start().await,
            &v.cloud_proxy.url(),
            &code,
            &[],
            Timings::defaults(),
        );
    }
    v.cloud
        .devices(&v.event)
        .await
        .into_iter()
        .filter(|(_, name)| name.starts_with("spare-"))
        .map(|(id, _)| id)
        .collect()
}

async fn measure(v: &Venue) -> serde_json::Value {
    let gate = &v.nodes[0];
    e2e::wait_until(DEADLINE, "the push stream open", || async {
        gate.push_status().await["connected"] == true
    })
    .await;
    let (mut sale, mut refund, mut revocation, mut upload) = (vec![], vec![], vec![], vec![]);
    // Without `--bench` (what `cargo bench` passes; `cargo test --benches`
    // and scripts/run-doc-commands do not): two rounds, a check that the
    // bench works, not a figure.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        ROUNDS
    } else {
        2
    };
    for i in 0..rounds {
        spread(i).await;
        let held = gate.manifest_version().await;
        let start = Instant::now();
        let t = v.cloud.sell(&v.event, 1).await;
        manifest_after(gate, held).await;
        sale.push(start.elapsed());

        spread(i + 3).await;
        let start = Instant::now();
        let r = gate.scan(&t[0].1).await;
        let id = r["scan_id"].as_str().expect("scan id").to_string();
        e2e::wait_until(DEADLINE, "the scan in the cloud", || async {
            e2e::venue::scan_ids(&v.cloud.scans(&v.event).await).contains(&id)
        })
        .await;
        upload.push(start.elapsed());

        spread(i + 7).await;
        let held = gate.manifest_version().await;
        let start = Instant::now();
        v.cloud.refund(&t[0].0).await;
        manifest_after(gate, held).await;
        refund.push(start.elapsed());
    }
    let spares = tempfile::tempdir().expect("tempdir");
    let ids = spare_devices(v, spares.path(), REVOCATIONS).await;
    // The enrollments are roster news too: let the gate take them first.
    let listed = v.cloud.devices(&v.event).await.len() as u64;
    e2e::wait_until(
        DEADLINE,
        "the spare devices in the gate's roster",
        || async { gate.status().await["roster"]["devices"].as_u64() >= Some(listed) },
    )
    .await;
    for (i, id) in ids.iter().enumerate() {
        spread(i).await;
        let held = revoked_count(gate).await;
        let start = Instant::now();
        v.cloud.revoke_device(id).await;
        e2e::wait_until(DEADLINE, "the revocation at the gate", || async {
            revoked_count(gate).await > held
        })
        .await;
        revocation.push(start.elapsed());
    }
    serde_json::json!({
        "sale_to_gate": summary(&sale),
        "refund_to_gate": summary(&refund),
        "revocation_to_gate": summary(&revocation),
        "scan_to_cloud": summary(&upload),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let sqlite = {
        let v = Venue::open(1, Timings::defaults(), true).await;
        measure(&v).await
    };
    let replicas = {
        let v = Venue::open_replicated(1, Timings::defaults(), true).await;
        measure(&v).await
    };
    println!(
        "e2e-bench {}",
        serde_json::json!({
            "sync": "defaults (cloud poll 5 s, push on, upload 100 ms after a scan; cloud push poll 100 ms)",
            "sqlite_one_cloud": sqlite,
            "postgres_two_replicas_gate_on_b_changes_on_a": replicas,
        })
    );
}
