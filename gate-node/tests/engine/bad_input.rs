//! Hostile input against a running node: garbage scan texts, forged and
//! gapped deltas, forged and hostile sync envelopes. Each is refused with a
//! clear answer and nothing is written.

use crate::harness::{Cluster, cli};
use gate_node::fixture::EventFixture;
use sync_protocol::checkin::Summary;
use sync_protocol::sync::{EnvelopeHeader, seal};
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
        signature: Default::default(),
    }
}

/// A record of fixture device `n`, signed by it.
fn signed(f: &EventFixture, n: u8, seq: u64, gate: &str) -> ScanRecord {
    let mut r = record(f, f.node_id(n), seq, gate);
    r.sign(&f.device_key(n));
    r
}

/// Seals like a peer does now: roster key version 1, the current time, a
/// fresh nonce.
fn envelope(key: &[u8; 32], sender: NodeId, payload: &[u8]) -> Vec<u8> {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(
        &NONCE
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .to_be_bytes(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let header = EnvelopeHeader {
        sender,
        key_version: 1,
        timestamp_ms: now,
        nonce,
    };
    seal(key, &header, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sync_envelopes_are_refused_and_write_nothing() {
    let f = EventFixture::new(43, 5);
    let c = Cluster::start(&f, 1).await;
    let node = &c.nodes[0];
    let own: NodeId = node.status().await["node_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let peer = f.node_id(5);
    // One genuine record from a peer, so a conflict has something to hit.
    let genuine = signed(&f, 5, 1, "West");
    let msg = |records: Vec<ScanRecord>| SyncMessage {
        event_id: f.event_id,
        have: Summary::default(),
        records,
    };
    let ok = envelope(&f.gossip_key, peer, &msg(vec![genuine.clone()]).encode());
    assert!(
        node.post_peer_sync(ok.clone()).await.is_success(),
        "a genuine message is accepted"
    );
    let before = fingerprint(node).await;
    assert_eq!(before.0, 1);

    let wrong_key = envelope(&[1; 32], peer, &msg(vec![signed(&f, 5, 2, "W")]).encode());
    let mut tampered = envelope(
        &f.gossip_key,
        peer,
        &msg(vec![signed(&f, 5, 2, "W")]).encode(),
    );
    let n = tampered.len();
    tampered[n - 40] ^= 1;
    let garbage_payload = envelope(&f.gossip_key, peer, b"TS\x02 definitely not a message");
    let other = EventFixture::new(44, 1);
    let foreign = envelope(
        &f.gossip_key,
        peer,
        &SyncMessage {
            event_id: other.event_id,
            have: Summary::default(),
            records: vec![],
        }
        .encode(),
    );
    // Insiders holding the gossip key (finding 1 and 2 of issue #17): a
    // record under the target's own id, unsigned; a peer's "next scan"
    // signed by another device; a device the roster does not list.
    let mut own_forged = record(&f, own, 1 << 48, "Forged");
    own_forged.sign(&f.device_key(5));
    let own_id = envelope(&f.gossip_key, peer, &msg(vec![own_forged]).encode());
    let mut next = record(&f, peer, 2, "Forged");
    next.sign(&f.device_key(4));
    let forged_next = envelope(&f.gossip_key, peer, &msg(vec![next]).encode());
    let unsigned = envelope(
        &f.gossip_key,
        peer,
        &msg(vec![record(&f, peer, 3, "W")]).encode(),
    );
    let stranger = NodeId::from_bytes([0x55; 16]);
    let mut unknown = record(&f, stranger, 1, "W");
    unknown.sign(&f.device_key(5));
    let unknown = envelope(&f.gossip_key, stranger, &msg(vec![unknown]).encode());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty body", vec![], 401),
        ("random bytes", vec![0xAB; 300], 401),
        ("wrong gossip key", wrong_key, 401),
        ("tampered envelope", tampered, 401),
        ("a replayed envelope", ok, 401),
        ("garbage payload", garbage_payload, 400),
        ("another event", foreign, 422),
        ("a record under the node's own id", own_id, 422),
        (
            "a peer's next scan signed by another device",
            forged_next,
            422,
        ),
        ("an unsigned record", unsigned, 422),
        ("a device the roster does not list", unknown, 422),
    ];
    for (name, body, want) in cases {
        let got = node.post_peer_sync(body).await;
        assert_eq!(got.as_u16(), want, "{name} is refused with {want}");
    }
    // A second, validly signed copy of a held scan id with other content
    // (a cloned device) is kept as evidence and flagged, never applied.
    let mut conflicting = genuine.clone();
    conflicting.gate = "Clone".into();
    conflicting.sign(&f.device_key(5));
    let conflict = envelope(&f.gossip_key, peer, &msg(vec![conflicting]).encode());
    assert!(node.post_peer_sync(conflict).await.is_success());
    let status = node.status().await;
    assert_eq!(
        status["flagged"]["conflicts"], 1,
        "the conflict is visible in /status: {status}"
    );
    assert_eq!(status["flagged"]["latest"][0]["record"]["gate"], "Clone");
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
