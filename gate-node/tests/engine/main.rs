//! The gate node's integration tests (one binary, as the conventions ask):
//! the engine on real processes (two or three `gate-node run` processes on
//! loopback with the cloud absent, each behind a proxy the tests cut to
//! partition them; the scenarios below), hostile input, the CLI, the cloud
//! sync against a fake cloud, the daemon's scan sources, and the vision
//! slice on real files ([`vision`]).

mod bad_input;
mod cli;
mod cloud;
mod fake_cloud;
mod harness;
mod local_api;
mod mdns;
mod sources;
mod systemd;
mod vision;

use gate_node::fixture::EventFixture;
use harness::{Cluster, Node, wait_until};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_a_admits_and_gates_b_and_c_refuse_as_already_inside_within_a_second() {
    let f = EventFixture::new(31, 50);
    let c = Cluster::start(&f, 3).await;
    let text = f.credential(f.ticket(7));
    let at_a = c.nodes[0].scan(&text).await;
    assert_eq!(
        at_a["decision"], "admit",
        "a valid ticket is admitted at A: {at_a}"
    );
    assert_eq!(at_a["reason"], serde_json::Value::Null);
    let scan_id = at_a["scan_id"].as_str().unwrap().to_owned();
    for node in &c.nodes[1..] {
        let took = wait_until(
            Duration::from_secs(1),
            "A's admission at the other gates",
            || node.holds(&scan_id),
        )
        .await;
        eprintln!("propagated to {} in {took:?}", node.addr);
        let again = node.scan(&text).await;
        assert_eq!(
            again["decision"], "reject",
            "the same ticket is refused elsewhere"
        );
        assert_eq!(again["reason"], "already_inside");
    }
    // Each node's clock is trusted here, so the peers' X-Gatehouse-Time
    // answers anchor the others' clocks.
    wait_until(
        Duration::from_secs(5),
        "time anchored by a peer",
        || async { c.nodes[1].status().await["time"]["authority"] == "peer" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_gates_both_admit_and_after_healing_both_hold_both_and_flag_it() {
    let f = EventFixture::new(32, 50);
    let c = Cluster::start(&f, 2).await;
    for p in &c.proxies {
        p.cut();
    }
    let text = f.credential(f.ticket(3));
    let a = c.nodes[0].scan(&text).await;
    let b = c.nodes[1].scan(&text).await;
    assert_eq!(
        (a["decision"].as_str(), b["decision"].as_str()),
        (Some("admit"), Some("admit")),
        "gates that cannot see each other both admit (offline-first)"
    );
    for p in &c.proxies {
        p.heal();
    }
    let ids = [
        a["scan_id"].as_str().unwrap(),
        b["scan_id"].as_str().unwrap(),
    ];
    for node in &c.nodes {
        wait_until(
            Duration::from_secs(10),
            "both scans on both nodes after healing",
            || async {
                let recent = node.recent().await;
                ids.iter()
                    .all(|id| recent.iter().any(|r| r["scan_id"] == *id))
            },
        )
        .await;
        let status = node.status().await;
        let flagged = status["double_admissions"].as_array().unwrap();
        assert_eq!(
            flagged.len(),
            1,
            "the double admission is flagged on {}: {status}",
            node.addr
        );
        assert_eq!(flagged[0]["ticket_id"], f.ticket(3).to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_scanning_keeps_every_acknowledged_scan() {
    let f = EventFixture::new(33, 400);
    let c = Cluster::start(&f, 2).await;
    let mut cluster = c;
    let a = cluster.nodes.remove(0);
    let dir = a.dir.clone();
    let url = a.url("/scan");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut scanners = tokio::task::JoinSet::new();
    for lane in 0..4u32 {
        let (acked, url, texts) = (
            acked.clone(),
            url.clone(),
            (0..100)
                .map(|i| f.credential(f.ticket(lane * 100 + i)))
                .collect::<Vec<_>>(),
        );
        scanners.spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            for text in texts {
                let Ok(resp) = http
                    .post(&url)
                    .json(&serde_json::json!({"text": text}))
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(v) = resp.json::<serde_json::Value>().await else {
                    return;
                };
                if v["decision"] == "admit" {
                    acked
                        .lock()
                        .unwrap()
                        .push((text, v["scan_id"].as_str().unwrap().to_owned()));
                }
            }
        });
    }
    wait_until(
        Duration::from_secs(30),
        "some acknowledged scans",
        || async { acked.lock().unwrap().len() >= 40 },
    )
    .await;
    a.kill9();
    while scanners.join_next().await.is_some() {}
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);
    let a = Node::start(&dir);
    let recent = a.recent().await;
    for (_, id) in &acked {
        assert!(
            recent.iter().any(|r| r["scan_id"] == *id),
            "acknowledged scan {id} survived kill -9"
        );
    }
    for (text, _) in acked.iter().take(20) {
        let again = a.scan(text).await;
        assert_eq!(
            again["reason"], "already_inside",
            "the restarted gate remembers the admission"
        );
    }
    let status = a.status().await;
    let own: Vec<u64> = recent
        .iter()
        .filter(|r| r["node_id"] == status["node_id"])
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = own.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        own.len(),
        "no sequence number was reused after the crash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_delta_makes_the_gate_refuse_the_old_credential() {
    let mut f = EventFixture::new(34, 20);
    let c = Cluster::start(&f, 1).await;
    let node = &c.nodes[0];
    let t = f.ticket(5);
    let delta = f.revoke(t);
    let path = node.dir.join("revoke.delta");
    std::fs::write(&path, delta).unwrap();
    let out = harness::cli(&node.dir, &["import", "--delta", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "the delta applies on top of version 1: {out:?}"
    );
    let status = node.status().await;
    assert_eq!(status["manifest"]["version"], 2);
    let refused = node.scan(&f.credential(t)).await;
    assert_eq!(
        refused["reason"], "revoked",
        "a refunded ticket is refused: {refused}"
    );
    let other = node.scan(&f.credential(f.ticket(6))).await;
    assert_eq!(other["decision"], "admit", "other tickets are unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_the_daemon_down_cleanly_and_the_scans_stay() {
    let f = EventFixture::new(35, 5);
    let mut c = Cluster::start(&f, 2).await;
    let node = c.nodes.remove(0);
    let admitted = node.scan(&f.credential(f.ticket(1))).await;
    let scan_id = admitted["scan_id"].as_str().unwrap().to_owned();
    // The peer has pushed and anti-entropy connections open to this node.
    wait_until(Duration::from_secs(5), "the push at the peer", || {
        c.nodes[0].holds(&scan_id)
    })
    .await;
    let dir = node.dir.clone();
    let status = node.terminate();
    assert!(status.success(), "a graceful shutdown exits 0: {status:?}");
    let node = Node::start(&dir);
    assert!(
        node.holds(&scan_id).await,
        "the scan is still there after restart"
    );
}
