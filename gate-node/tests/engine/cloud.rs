//! The node against a fake cloud that speaks the device API: enrollment,
//! manifest deltas (and the full-manifest fallback), batched check-in sync
//! both ways, cloud time, and backoff while the cloud is unreachable.

use crate::fake_cloud::{CLOUD_TIME_MS, CODE, Cloud};
use crate::harness::{Node, Proxy, cli, wait_until, write_config};
use gate_node::fixture::EventFixture;
use std::sync::atomic::Ordering;
use std::time::Duration;
use sync_protocol::{Direction, Hlc, Outcome, ScanId, ScanRecord};

fn enroll(dir: &std::path::Path, cloud_url: &str) {
    write_config(
        dir,
        &[],
        "cloud_interval_ms = 200\ncloud_backoff_max_ms = 1000",
    );
    let out = cli(
        dir,
        &[
            "enroll",
            "--cloud",
            cloud_url,
            "--code",
            CODE,
            "--name",
            "pi-north-2",
        ],
    );
    assert!(out.status.success(), "enrollment succeeds: {out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("enrolled as node") && said.contains("manifest version 1"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_gate_syncs_manifest_and_checkins_with_the_cloud_in_batches() {
    let f = EventFixture::new(61, 100);
    let cloud = Cloud::new(f.clone());
    let addr = cloud.serve().await;
    let dir = tempfile::tempdir().unwrap();

    let bad = cli(
        dir.path(),
        &[
            "enroll",
            "--cloud",
            &format!("http://{addr}"),
            "--code",
            "WRONG",
        ],
    );
    assert!(!bad.status.success(), "an unknown code is refused");
    enroll(dir.path(), &format!("http://{addr}"));
    let node = Node::start(dir.path());

    for i in 0..25 {
        let r = node.scan(&f.credential(f.ticket(i))).await;
        assert_eq!(r["decision"], "admit");
    }
    wait_until(Duration::from_secs(10), "25 scans at the cloud", || async {
        cloud.log.lock().unwrap().len() == 25
    })
    .await;
    wait_until(Duration::from_secs(5), "nothing pending", || async {
        node.status().await["pending"]["pending"] == 0
    })
    .await;
    let requests = cloud.counts.checkin_requests.load(Ordering::SeqCst);
    eprintln!("25 scans reached the cloud in {requests} check-in requests");
    let status = node.status().await;
    assert_eq!(
        status["time"]["authority"], "cloud",
        "the cloud's clock anchors the node"
    );
    assert!(status["time"]["ms"].as_u64().unwrap() >= CLOUD_TIME_MS);

    // A refund in the cloud reaches the gate as a delta.
    cloud.refund(f.ticket(30));
    wait_until(Duration::from_secs(10), "manifest version 2", || async {
        node.status().await["manifest"]["version"] == 2
    })
    .await;
    assert!(
        cloud.counts.deltas.load(Ordering::SeqCst) >= 1,
        "it came as a delta"
    );
    assert_eq!(
        node.scan(&f.credential(f.ticket(30))).await["reason"],
        "revoked"
    );

    // Pruned history: the cloud answers 409 and the node takes a full manifest.
    let fulls = cloud.counts.full_manifests.load(Ordering::SeqCst);
    cloud.change_without_delta(vec![f.entry(500)]);
    wait_until(Duration::from_secs(10), "manifest version 3", || async {
        node.status().await["manifest"]["version"] == 3
    })
    .await;
    assert!(cloud.counts.full_manifests.load(Ordering::SeqCst) > fulls);

    // A scan by another device reaches the gate through the cloud.
    // Signed by a device of the fixture's roster, as every record must be.
    let mut elsewhere = ScanRecord {
        id: ScanId {
            node: f.node_id(7),
            seq: 1,
        },
        event_id: f.event_id,
        ticket_id: f.ticket(40),
        generation: 0,
        direction: Direction::Entry,
        hlc: Hlc::new(CLOUD_TIME_MS - 1_000, 0),
        zone: None,
        outcome: Outcome::Admit,
        gate: "Scanner app".into(),
        operator: "Ana".into(),
        signature: Default::default(),
    };
    elsewhere.sign(&f.device_key(7));
    cloud.record_elsewhere(elsewhere);
    wait_until(
        Duration::from_secs(10),
        "the other device's scan at the gate",
        || async { node.holds(&format!("{}:1", f.node_id(7))).await },
    )
    .await;
    assert_eq!(
        node.scan(&f.credential(f.ticket(40))).await["reason"],
        "already_inside"
    );
    // 25 admissions, the revoked and the already_inside scans, the other device's.
    wait_until(
        Duration::from_secs(10),
        "every scan at the cloud exactly once",
        || async { cloud.log.lock().unwrap().len() == 28 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cloud_unreachable_the_gate_admits_backs_off_and_delivers_later() {
    let f = EventFixture::new(62, 20);
    let cloud = Cloud::new(f.clone());
    let addr = cloud.serve().await;
    let proxy = Proxy::start().await;
    proxy.point_at(addr);
    let dir = tempfile::tempdir().unwrap();
    enroll(dir.path(), &proxy.url());
    proxy.cut();
    let node = Node::start(dir.path());
    for i in 0..5 {
        assert_eq!(
            node.scan(&f.credential(f.ticket(i))).await["decision"],
            "admit"
        );
    }
    wait_until(Duration::from_secs(10), "failed cloud attempts", || async {
        node.status().await["cloud"]["consecutive_failures"].as_u64() >= Some(2)
    })
    .await;
    let status = node.status().await;
    assert_eq!(
        status["pending"]["pending"], 5,
        "scans wait for the cloud: {status}"
    );
    assert!(
        status["cloud"]["next_delay_ms"].as_u64().unwrap() > 200,
        "it backs off"
    );
    proxy.heal();
    wait_until(
        Duration::from_secs(10),
        "delivery after healing",
        || async { node.status().await["pending"]["pending"] == 0 },
    )
    .await;
    assert_eq!(cloud.log.lock().unwrap().len(), 5);
    assert_eq!(
        cloud.counts.max_batch.load(Ordering::SeqCst),
        5,
        "the backlog went up as one batch, not one request per scan"
    );
}
