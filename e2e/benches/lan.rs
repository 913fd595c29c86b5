//! Gate-to-gate propagation over a venue LAN that is not loopback (issue
//! 14 part 4): two real `gate-node run` processes and the real cloud, in a
//! private network namespace, the gates reaching each other over a link
//! with real packet loss (nftables, 5% each way), 50 ms one-way delay (in
//! the proxies) and, in a second phase, a link that goes dark and comes
//! back. See [`e2e::lan`] for how the link is made and why not `netem`.
//!
//! Figures: admission at one gate → the scan held by the other (so that
//! gate answers "already inside", which the bench checks), p50/p95/p99/max,
//! with the cloud cut off so only the LAN can carry it;
//! and after every heal, the time until both gates hold the same scans.
//! `cargo build --release --bins && cargo bench -p e2e --bench lan`.
//! Without `--bench` (scripts/run-doc-commands): a few hops and one flap.

use e2e::lan::{Link, enter_private_network};
use e2e::node::{Node, Timings};
use e2e::venue::{Venue, assert_decision};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Lossy-link samples, flaps, and scans at each gate while a flap is dark.
fn sizes() -> (usize, usize, usize) {
    if std::env::args().any(|a| a == "--bench") {
        (200, 5, 6)
    } else {
        (6, 1, 2)
    }
}

const LOSS_PERMILLE: u32 = 50;
const DELAY: Duration = Duration::from_millis(50);
const DARK: Duration = Duration::from_secs(3);

/// A deterministic spread of pauses (0 to 999 ms): samples cover idle and
/// warm connections alike.
fn pause(i: usize) -> Duration {
    Duration::from_millis((i as u64 * 7_919 + 13) % 1_000)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn summary(samples: &[Duration]) -> serde_json::Value {
    let mut s = samples.to_vec();
    s.sort();
    let at = |q: f64| {
        s.get(((s.len() as f64 - 1.0) * q).round() as usize)
            .map(|d| ms(*d))
    };
    serde_json::json!({
        "n": s.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
        "max_ms": s.last().map(|d| ms(*d)),
    })
}

async fn holds(node: &Node, id: &str) -> bool {
    node.scan_ids().await.iter().any(|s| s == id)
}

/// Admits `text` at `from`; returns its scan id.
async fn admit(from: &Node, text: &str) -> String {
    let r = from.scan(text).await;
    assert_decision(&r, "admit", None, "a fresh ticket");
    r["scan_id"].as_str().expect("scan id").to_owned()
}

fn main() {
    enter_private_network();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    let (samples, flaps, dark_scans) = sizes();
    let v = Venue::open(2, Timings::defaults(), false).await;
    let before = v.nodes[0].manifest_version().await;
    let mut tickets = Vec::new();
    let needed = samples + flaps * dark_scans * 2 + 2;
    let mut sales = 0;
    while tickets.len() < needed {
        tickets.extend(v.cloud.sell(&v.event, 50).await);
        sales += 1;
    }
    v.manifests_reach(before + sales).await;
    // The cloud is cut off for the whole run: only the LAN can explain a
    // scan reaching the other gate.
    v.cloud_proxy.cut();
    let ports: Vec<u16> = v.nodes.iter().map(|n| n.proxy.addr.port()).collect();
    let link = Link::lossy(&ports, LOSS_PERMILLE);
    for n in &v.nodes {
        n.proxy.set_delay(DELAY);
    }
    let mut tickets = tickets.into_iter().map(|(_, text)| text);

    // Lossy link: each admission, alternately at A and B, until the other
    // gate holds it and answers "already inside".
    let mut hop = Vec::new();
    for i in 0..samples {
        tokio::time::sleep(pause(i)).await;
        let (from, to) = (&v.nodes[i % 2], &v.nodes[1 - i % 2]);
        let text = tickets.next().expect("enough tickets");
        let start = Instant::now();
        let id = admit(from, &text).await;
        while !holds(to, &id).await {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "propagation over the lossy link"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        hop.push(start.elapsed());
        assert_decision(
            &to.scan(&text).await,
            "reject",
            Some("already_inside"),
            "admitted at the other gate",
        );
    }

    // Flaps: the link goes dark for DARK while both gates admit people,
    // comes back (still lossy), and both gates must converge.
    let mut converge = Vec::new();
    for _ in 0..flaps {
        link.down();
        let gap = DARK / (dark_scans as u32 + 1);
        for _ in 0..dark_scans {
            tokio::time::sleep(gap).await;
            for n in &v.nodes {
                admit(n, &tickets.next().expect("enough tickets")).await;
            }
        }
        tokio::time::sleep(gap).await;
        link.up();
        let healed = Instant::now();
        loop {
            let a: BTreeSet<String> = v.nodes[0].scan_ids().await.into_iter().collect();
            let b: BTreeSet<String> = v.nodes[1].scan_ids().await.into_iter().collect();
            if a == b {
                break;
            }
            assert!(
                healed.elapsed() < Duration::from_secs(120),
                "convergence after a heal"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        converge.push(healed.elapsed());
    }

    println!(
        "e2e-bench {}",
        serde_json::json!({
            "link": {"loss_each_way": format!("{}%", LOSS_PERMILLE as f64 / 10.0),
                     "one_way_delay_ms": DELAY.as_millis(), "dark_s": DARK.as_secs()},
            "sync": "defaults (peer timeout 1 s, anti-entropy 5 s)",
            "already_inside_at_other_gate": summary(&hop),
            "target_p99_ms": 1000,
            "convergence_after_heal": summary(&converge),
        })
    );
}
