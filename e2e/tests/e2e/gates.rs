//! Gates with and without the cloud, and partitioned from each other.

use crate::{SETTLE, Venue, assert_decision, scan_ids};
use e2e::node::Timings;
use e2e::wait_until;

/// Enroll three gates, sell, sync, admit at A, refuse at B, lose the cloud
/// (killed), keep deciding and gossiping, bring it back: the cloud ends
/// with every scan exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gates_keep_deciding_without_the_cloud_and_it_ends_with_every_scan_once() {
    let mut v = Venue::open(3, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 2).await;
    v.manifests_reach(2).await;

    let a = v.nodes[0].scan(&tickets[0].1).await;
    assert_decision(&a, "admit", None, "a sold ticket is admitted at A");
    let sid = a["scan_id"].as_str().unwrap().to_string();
    wait_until(SETTLE, "B holding A's admission", || async {
        v.nodes[1].scan_ids().await.contains(&sid)
    })
    .await;
    let b = v.nodes[1].scan(&tickets[0].1).await;
    assert_decision(&b, "reject", Some("already_inside"), "B saw A's admission");

    // The cloud dies: nodes keep deciding and gossiping on the LAN.
    v.cloud.kill();
    let b2 = v.nodes[1].scan(&tickets[1].1).await;
    assert_decision(&b2, "admit", None, "admission needs no cloud");
    let sid2 = b2["scan_id"].as_str().unwrap().to_string();
    wait_until(
        SETTLE,
        "C holding B's admission without the cloud",
        || async { v.nodes[2].scan_ids().await.contains(&sid2) },
    )
    .await;
    let c = v.nodes[2].scan(&tickets[1].1).await;
    assert_decision(
        &c,
        "reject",
        Some("already_inside"),
        "C saw B's admission over the LAN",
    );
    wait_until(SETTLE, "nodes noticing the cloud is gone", || async {
        v.nodes[0].status().await["cloud"]["last_error"].is_string()
    })
    .await;

    // The cloud comes back on the same database (a new port).
    v.cloud.restart().await;
    v.cloud_proxy.point_at(v.cloud.addr);
    let all = v.node_scans().await;
    assert_eq!(all.len(), 4, "two admissions and two refusals: {all:?}");
    v.cloud_holds_exactly(&all).await;
    for (i, n) in v.nodes.iter().enumerate() {
        wait_until(
            SETTLE,
            &format!("gate {i} having nothing pending"),
            || async { n.status().await["pending"]["pending"] == 0 },
        )
        .await;
    }
}

/// Two gates cut off from each other and from the cloud both admit one
/// ticket; after healing, both gates and the cloud hold both scans and
/// flag the double admission.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_double_admission_is_kept_and_flagged_everywhere() {
    let v = Venue::open(2, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 1).await;
    v.manifests_reach(2).await;

    for n in &v.nodes {
        n.proxy.cut();
    }
    v.cloud_proxy.cut();
    let a = v.nodes[0].scan(&tickets[0].1).await;
    let b = v.nodes[1].scan(&tickets[0].1).await;
    assert_decision(&a, "admit", None, "A cannot see B");
    assert_decision(&b, "admit", None, "B cannot see A: both admit");
    let both: std::collections::BTreeSet<String> = [&a, &b]
        .iter()
        .map(|r| r["scan_id"].as_str().unwrap().to_string())
        .collect();

    for n in &v.nodes {
        n.proxy.heal();
    }
    v.cloud_proxy.heal();
    for (i, n) in v.nodes.iter().enumerate() {
        wait_until(
            SETTLE,
            &format!("gate {i} holding both admissions and flagging them"),
            || async {
                let held: std::collections::BTreeSet<String> =
                    n.scan_ids().await.into_iter().collect();
                both.is_subset(&held)
                    && n.status().await["double_admissions"]
                        .as_array()
                        .is_some_and(|d| d.len() == 1)
            },
        )
        .await;
    }
    v.cloud_holds_exactly(&both).await;
    let stats = v.cloud.stats(&v.event).await;
    assert_eq!(
        stats["double_admissions"].as_array().map(Vec::len),
        Some(1),
        "{stats}"
    );
    assert_eq!(
        (stats["admitted"].as_u64(), stats["inside_now"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    let held = scan_ids(&v.cloud.scans(&v.event).await);
    assert_eq!(held.len(), 2, "nothing lost, nothing doubled: {held:?}");
}

/// A push lost while the link to B was down is not left to the next
/// anti-entropy round (a minute here): A keeps trying B on a short
/// backoff, so B holds the admission seconds after the link heals and
/// answers "already inside".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_lost_to_a_dark_link_reaches_the_peer_soon_after_it_heals() {
    let timings = Timings {
        cloud_interval_ms: 60_000,
        cloud_backoff_max_ms: 60_000,
        anti_entropy_ms: 60_000,
        peer_timeout_ms: 500,
    };
    let v = Venue::open(2, timings, false).await;
    let tickets = v.cloud.sell(&v.event, 1).await;
    v.manifests_reach(2).await;
    // Wait for the first anti-entropy round (at start) to be over, and
    // leave the cloud out: only the LAN can carry the scan.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    v.cloud_proxy.cut();
    let (a, b) = (&v.nodes[0], &v.nodes[1]);

    b.proxy.cut();
    let r = a.scan(&tickets[0].1).await;
    assert_decision(&r, "admit", None, "admission needs no peer");
    let sid = r["scan_id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(
        !b.scan_ids().await.contains(&sid),
        "B cannot have it while its link is down"
    );
    b.proxy.heal();
    let took = wait_until(SETTLE, "B holding A's admission", || async {
        b.scan_ids().await.contains(&sid)
    })
    .await;
    assert!(
        took < std::time::Duration::from_secs(10),
        "the catch-up retry, not the 60 s anti-entropy round, delivered it (took {took:?})"
    );
    let again = b.scan(&tickets[0].1).await;
    assert_decision(
        &again,
        "reject",
        Some("already_inside"),
        "B knows A admitted it",
    );
}
