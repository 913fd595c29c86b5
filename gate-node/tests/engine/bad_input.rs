//! Hostile input against a running node: garbage scan texts, forged and
//! gapped deltas, forged and hostile sync envelopes. Each is refused with a
//! clear answer and nothing is written.

use crate::harness::{Cluster, cli};
use gate_node::fixture::EventFixture;
use sync_protocol::checkin::Summary;
use sync_protocol::sync::seal;
use sync_protocol::{NodeId, ScanId, ScanRecord, SyncMessage};

async fn fingerprint(node: &crate::harness::Node) -> (serde_json::Value, serde_json::Value) {
    let s = node.status().await;
    (s["records"].clone(), s["manifest"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_scans_are_malformed_and_never_recorded() {
    let f = EventFixture::new(41, 5);
    let c = Cluster::start(&f, 1).await;
    let node = &c.nodes[0];
    let before = fingerprint(node).await;
    let long = "A".repeat(4000);
    let truncated = f.credential(f.ticket(1))[..60].to_owned();
    for text in [
        "",
        "hello",
        "TK1:",
        "TK1:!!!!",
        &truncated,
        &long,
        "TK1:\u{0}\u{7f}é",
    ] {
        let r = node.scan(text).await;
        assert_eq!(
            r["reason"], "malformed",
            "{text:.20?} is not a credential: {r}"
        );
        assert_eq!(r["scan_id"], serde_json::Value::Null);
    }
    let resp = node
        .http
        .post(node.url("/scan"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_client_error(),
        "a broken body is a 4xx, not a crash"
    );
    assert_eq!(fingerprint(node).await, before, "garbage writes nothing");
    assert_eq!(node.status().await["counters"]["malformed"], 7);
    let metrics = node
        .http
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gate_scans_total{outcome=\"malformed\"} 7"),
        "Prometheus sees the same counters: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_gapped_deltas_are_refused_and_write_nothing() {
    let mut f = EventFixture::new(42, 5);
    let c = Cluster::start(&f, 1).await;
    let node = &c.nodes[0];
    let before = fingerprint(node).await;
    let _skipped = f.revoke(f.ticket(1));
    let gapped = f.revoke(f.ticket(2));
    let mut rogue = f.clone();
    rogue.event_key = sync_protocol::SecretKey::from_seed([200; 32]);
    let forged = rogue.revoke(f.ticket(3));
    for (name, bytes) in [
        ("gapped", gapped),
        ("forged", forged),
        ("garbage", b"TDxx".to_vec()),
    ] {
        let path = node.dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = cli(&node.dir, &["import", "--delta", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a {name} delta is refused");
        assert!(err.contains("delta refused"), "with a clear message: {err}");
        if name == "gapped" {
            assert!(
                err.contains("full manifest"),
                "a gap asks for a full manifest: {err}"
            );
        }
    }
    assert_eq!(
        fingerprint(node).await,
        before,
        "refused deltas write nothing"
    );
}

fn record(f: &EventFixture, node: NodeId, seq: u64, gate: &str) -> ScanRecord {
    ScanRecord {
        id: ScanId { node, seq },
        event_id: f.event_id,
        ticket_id: f.ticket(seq as u32),
        generation: 0,
        direction: sync_protocol::Direction::Entry,
        hlc: sync_protocol::Hlc::new(1_750_000_000_000, 0),
        zone: None,
        outcome: sync_protocol::Outcome::Admit,
        gate: gate.into(),
        operator: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sync_envelopes_are_refused_and_write_nothing() {
    let f = EventFixture::new(43, 5);
    let c = Cluster::start(&f, 1).await;
    let node = &c.nodes[0];
    let stranger = NodeId::from_bytes([0x55; 16]);
    // One genuine record from a peer, so a conflict has something to hit.
    let genuine = record(&f, stranger, 1, "West");
    let msg = |records: Vec<ScanRecord>| SyncMessage {
        event_id: f.event_id,
        have: Summary::default(),
        records,
    };
    let ok = seal(
        &f.gossip_key,
        stranger,
        &msg(vec![genuine.clone()]).encode(),
    );
    assert!(
        node.post_peer_sync(ok).await.is_success(),
        "a genuine message is accepted"
    );
    let before = fingerprint(node).await;
    assert_eq!(before.0, 1);

    let wrong_key = seal(
        &[1; 32],
        stranger,
        &msg(vec![record(&f, stranger, 2, "W")]).encode(),
    );
    let mut tampered = seal(
        &f.gossip_key,
        stranger,
        &msg(vec![record(&f, stranger, 2, "W")]).encode(),
    );
    let n = tampered.len();
    tampered[n - 40] ^= 1;
    let garbage_payload = seal(&f.gossip_key, stranger, b"TS\x01 definitely not a message");
    let other = EventFixture::new(44, 1);
    let foreign = seal(
        &f.gossip_key,
        stranger,
        &SyncMessage {
            event_id: other.event_id,
            have: Summary::default(),
            records: vec![],
        }
        .encode(),
    );
    let mut conflicting = genuine.clone();
    conflicting.gate = "Forged".into();
    let conflict = seal(
        &f.gossip_key,
        stranger,
        &msg(vec![record(&f, stranger, 2, "W"), conflicting]).encode(),
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty body", vec![], 401),
        ("random bytes", vec![0xAB; 300], 401),
        ("wrong gossip key", wrong_key, 401),
        ("tampered envelope", tampered, 401),
        ("garbage payload", garbage_payload, 400),
        ("another event", foreign, 422),
        ("conflicting record in a batch", conflict, 409),
    ];
    for (name, body, want) in cases {
        let got = node.post_peer_sync(body).await;
        assert_eq!(got.as_u16(), want, "{name} is refused with {want}");
    }
    // The node refuses an oversized body from its Content-Length, before
    // reading it, and closes the connection: the client sees 413 or, if it
    // was still writing, a broken pipe. Either way nothing is read or written.
    let once = reqwest::Client::builder().no_proxy().build().unwrap();
    match once
        .post(node.url("/peer/sync"))
        .body(vec![0u8; 9 << 20])
        .send()
        .await
    {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413, "an oversized body is refused"),
        Err(e) => assert!(e.is_request(), "the node cut the upload short: {e}"),
    }
    assert_eq!(
        fingerprint(node).await,
        before,
        "hostile messages write nothing"
    );
}
