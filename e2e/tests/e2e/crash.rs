//! A gate killed with SIGKILL in the middle of scanning and syncing.

use crate::{SETTLE, Venue};
use e2e::node::Timings;
use e2e::wait_until;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn seq_of(scan_id: &str) -> u64 {
    scan_id
        .rsplit_once(':')
        .and_then(|(_, s)| s.parse().ok())
        .expect("scan id NODE:SEQ")
}

/// kill -9 while scans stream in and sync runs: after the restart every
/// acknowledged scan is still there, sequence numbers are never reused, and
/// the cloud gets every scan exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_killed_mid_scan_loses_no_acknowledged_scan() {
    let mut v = Venue::open(2, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 40).await;
    v.manifests_reach(2).await;
    let addr = v.nodes[0].addr.expect("A runs");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();

    let (acked2, texts) = (acked.clone(), tickets.clone());
    let scanner = tokio::spawn(async move {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        for (_, text) in texts {
            let sent = http
                .post(format!("http://{addr}/scan"))
                .json(&json!({ "text": text }))
                .send()
                .await;
            let Ok(resp) = sent else { return };
            let Ok(report) = resp.json::<serde_json::Value>().await else {
                return;
            };
            if let Some(id) = report["scan_id"].as_str() {
                acked2.lock().unwrap().push(id.to_string());
            }
        }
    });
    wait_until(SETTLE, "15 acknowledged scans at A", || async {
        acked.lock().unwrap().len() >= 15
    })
    .await;
    v.nodes[0].kill9();
    let _ = tokio::time::timeout(Duration::from_secs(10), scanner).await;
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 15 && acked.len() < 40,
        "killed mid-stream: {}",
        acked.len()
    );

    v.nodes[0].start();
    let held: BTreeSet<String> = v.nodes[0].scan_ids().await.into_iter().collect();
    for id in &acked {
        assert!(held.contains(id), "acknowledged scan {id} survived kill -9");
    }
    let top = held.iter().map(|s| seq_of(s)).max().unwrap_or(0);
    let after = v.nodes[0].scan(&tickets[39].1).await;
    assert!(
        seq_of(after["scan_id"].as_str().unwrap()) == top + 1,
        "sequence numbers continue after the crash, never reused: {after}"
    );

    let all = v.node_scans().await;
    v.cloud_holds_exactly(&all).await;
    let node_a = acked[0].rsplit_once(':').unwrap().0.to_string();
    let seqs: Vec<u64> = crate::scan_ids(&v.cloud.scans(&v.event).await)
        .iter()
        .filter(|s| s.starts_with(&node_a))
        .map(|s| seq_of(s))
        .collect();
    let expect: BTreeSet<u64> = (1..=top + 1).collect();
    assert_eq!(
        seqs.iter().copied().collect::<BTreeSet<u64>>(),
        expect,
        "the cloud holds A's scans 1..={} without gaps",
        top + 1
    );
    assert_eq!(seqs.len(), expect.len(), "each once");
}
