//! Issue #17, "the venue LAN is hostile", on real processes: the cloud and
//! two gates, and an insider (an enrolled device run by this test process)
//! holding the event's gossip key and its own device key.
//!
//! - Finding 1: a record under the target's own id is refused; the target
//!   keeps scanning (it used to answer 500 forever).
//! - Finding 2: a record forged under a peer's next sequence number is
//!   refused (not signed by the peer), so the peer's real admission is the
//!   one everybody holds and the ticket is refused at the other gate.
//! - Finding 3: a revoked device's records made after revocation are kept
//!   as evidence and never counted, at a gate and at the cloud.
//! - Finding 4: a replayed envelope is refused and gets no records.
//! - Finding 5: a flood of half-sent requests from many addresses does not
//!   stop `/status`, scanning or peer sync; half-sent heads are dropped.
//! - Finding 6: junk on `POST /scan` naming another event is `bad_signature`
//!   and writes nothing; a stranger's `POST /scan` is refused.

use crate::{SETTLE, Venue, assert_decision, scan_ids};
use e2e::node::Timings;
use e2e::wait_until;
use serde_json::{Value, json};
use sync_protocol::checkin::Summary;
use sync_protocol::sync::{EnvelopeHeader, seal};
use sync_protocol::{
    Credential, Direction, Hlc, NodeId, Outcome, ScanId, ScanRecord, SecretKey, SyncMessage,
};

/// An enrolled device this process drives: what a stolen SD card holds.
struct Insider {
    node: NodeId,
    key: SecretKey,
    token: String,
    gossip_key: [u8; 32],
    key_version: u64,
    nonce: u64,
}

impl Insider {
    async fn enroll(v: &Venue, seed: u8) -> Insider {
        let code = v.cloud.enrollment_code(&v.event, "Side door", false).await;
        let key = SecretKey::from_seed([seed; 32]);
        let (st, e) = v
            .cloud
            .call(
                reqwest::Method::POST,
                "/devices/enroll",
                Some(json!({"code": code, "name": format!("insider {seed}"),
                    "device_public_key": hex::encode(key.public().to_bytes()),
                    "proof": hex::encode(sync_protocol::device_api::sign_enrollment(&key, &code))})),
            )
            .await;
        assert_eq!(st, 201, "{e}");
        let gossip: [u8; 32] = hex::decode(e["gossip_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        Insider {
            node: e["node_id"].as_str().unwrap().parse().unwrap(),
            key,
            token: e["device_token"].as_str().unwrap().to_string(),
            gossip_key: gossip,
            key_version: e["gossip_key_version"].as_u64().unwrap(),
            nonce: u64::from(seed) << 40,
        }
    }

    fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        self.nonce += 1;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.nonce.to_be_bytes());
        let header = EnvelopeHeader {
            sender: self.node,
            key_version: self.key_version,
            timestamp_ms: now_ms(),
            nonce,
        };
        seal(&self.gossip_key, &header, payload)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn record(v: &Venue, node: NodeId, seq: u64, ticket: &str) -> ScanRecord {
    ScanRecord {
        id: ScanId { node, seq },
        event_id: v.event.parse().unwrap(),
        ticket_id: ticket.parse().unwrap(),
        generation: 0,
        direction: Direction::Entry,
        hlc: Hlc::new(now_ms(), 0),
        zone: None,
        outcome: Outcome::Admit,
        gate: "Forged".into(),
        operator: String::new(),
        signature: Default::default(),
    }
}

fn message(v: &Venue, records: Vec<ScanRecord>) -> Vec<u8> {
    SyncMessage {
        event_id: v.event.parse().unwrap(),
        have: Summary::default(),
        records,
    }
    .encode()
}

async fn peer_sync(v: &Venue, gate: usize, body: Vec<u8>) -> (u16, usize) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .post(format!("http://{}/peer/sync", v.nodes[gate].addr.unwrap()))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("the gate answers");
    let status = resp.status().as_u16();
    let len = resp.bytes().await.map(|b| b.len()).unwrap_or(0);
    (status, len)
}

async fn node_id(v: &Venue, gate: usize) -> NodeId {
    v.nodes[gate].status().await["node_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until gate `gate` holds roster version `at_least`.
async fn roster_reaches(v: &Venue, gate: usize, at_least: u64) {
    wait_until(
        SETTLE,
        &format!("gate {gate} at roster {at_least}"),
        || async {
            v.nodes[gate].status().await["roster"]["version"]
                .as_u64()
                .is_some_and(|r| r >= at_least)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_insider_with_the_gossip_key_cannot_forge_replay_or_split_the_gates() {
    let v = Venue::open(2, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 3).await;
    v.manifests_reach(1).await;
    let mut insider = Insider::enroll(&v, 0x31).await;
    // Both gates learn the insider's roster version (and its gossip key).
    roster_reaches(&v, 0, insider.key_version).await;
    roster_reaches(&v, 1, insider.key_version).await;
    let (a, b) = (node_id(&v, 0).await, node_id(&v, 1).await);

    // Finding 1: a record under gate A's own id, at the last sequence number.
    let mut own = record(&v, a, 1 << 48, &tickets[0].0);
    own.sign(&insider.key);
    let (st, _) = peer_sync(&v, 0, insider.seal(&message(&v, vec![own]))).await;
    assert_eq!(
        st, 422,
        "a gate refuses records under its own id from anyone else"
    );
    let r = v.nodes[0].scan(&tickets[0].1).await;
    assert_decision(&r, "admit", None, "gate A still scans after the attempt");

    // Finding 2: a forged "next scan of gate B" for ticket 1, signed by the
    // insider (it cannot sign as B), injected into A before B scans.
    let b_prefix = format!("{b}:");
    let b_next = v.nodes[1]
        .scan_ids()
        .await
        .iter()
        .filter(|id| id.starts_with(&b_prefix))
        .count() as u64
        + 1;
    let mut forged = record(&v, b, b_next, &tickets[1].0);
    forged.sign(&insider.key);
    let (st, _) = peer_sync(&v, 0, insider.seal(&message(&v, vec![forged]))).await;
    assert_eq!(st, 422, "a record not signed by its device is refused");
    let at_b = v.nodes[1].scan(&tickets[1].1).await;
    assert_decision(&at_b, "admit", None, "B admits ticket 1");
    let sid = at_b["scan_id"].as_str().unwrap().to_string();
    wait_until(SETTLE, "B's admission reaching A", || async {
        v.nodes[0].scan_ids().await.contains(&sid)
    })
    .await;
    let at_a = v.nodes[0].scan(&tickets[1].1).await;
    assert_decision(
        &at_a,
        "reject",
        Some("already_inside"),
        "A refuses the ticket B admitted: no silent fork",
    );
    assert_eq!(
        v.nodes[0].status().await["double_admissions"],
        json!([]),
        "no double admission"
    );
    wait_until(SETTLE, "the cloud holding B's real admission", || async {
        scan_ids(&v.cloud.scans(&v.event).await).contains(&sid)
    })
    .await;
    assert_eq!(
        v.nodes[1].status().await["cloud"]["last_error"],
        Value::Null,
        "B's cloud upload is not stuck"
    );

    // Finding 4: a captured genuine envelope, replayed, is refused and
    // answered with no records.
    let mut mine = record(&v, insider.node, 1, &tickets[2].0);
    mine.outcome = Outcome::Reject(sync_protocol::Reason::AlreadyInside);
    mine.sign(&insider.key);
    let captured = insider.seal(&message(&v, vec![mine]));
    let (st, _) = peer_sync(&v, 0, captured.clone()).await;
    assert_eq!(st, 200, "the insider's own signed record is genuine");
    let (st, len) = peer_sync(&v, 0, captured).await;
    assert_eq!(st, 401, "a replayed envelope is refused");
    assert!(
        len < 600,
        "and answered with an error, not records ({len} bytes)"
    );

    // Finding 6: junk naming another event on POST /scan writes nothing.
    let before = v.nodes[0].status().await["records"].as_u64().unwrap();
    let stranger = SecretKey::from_seed([0x77; 32]);
    let claims = sync_protocol::Claims {
        event_id: "0194f3a0-7c00-7000-8000-0000000000ee".parse().unwrap(),
        ticket_id: tickets[2].0.parse().unwrap(),
        generation: 0,
        tier: 1,
        zones: 1,
        window: None,
        holder_key: None,
    };
    let junk = Credential::issue(&stranger, claims).unwrap().to_qr_text();
    let r = v.nodes[0].scan(&junk).await;
    assert_decision(&r, "reject", Some("unknown_key"), "junk is not believed");
    assert_eq!(
        v.nodes[0].status().await["records"].as_u64().unwrap(),
        before,
        "junk writes no durable record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_devices_later_scans_never_count_at_a_gate_or_the_cloud() {
    let v = Venue::open(1, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 3).await;
    v.manifests_reach(1).await;
    let mut revoked = Insider::enroll(&v, 0x41).await;
    // The gate learns the revoked device's roster version (and gossip key)
    // before the next enrollment moves the roster on: a roster answer
    // carries the current version's gossip key only.
    roster_reaches(&v, 0, revoked.key_version).await;
    let relay = Insider::enroll(&v, 0x42).await;
    let relay_token = relay.token.clone();
    roster_reaches(&v, 0, relay.key_version).await;

    // Before revocation its scans count like anyone's.
    let mut early = record(&v, revoked.node, 1, &tickets[0].0);
    early.sign(&revoked.key);
    let (st, _) = peer_sync(&v, 0, revoked.seal(&message(&v, vec![early.clone()]))).await;
    assert_eq!(st, 200);

    let (st, body) = v
        .cloud
        .call(
            reqwest::Method::POST,
            &format!("/devices/{}/revoke", revoked.node),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    wait_until(SETTLE, "the gate learning the revocation", || async {
        v.nodes[0].status().await["roster"]["revoked"].as_u64() == Some(1)
    })
    .await;
    let records_before = v.nodes[0].status().await["records"].as_u64().unwrap();

    // After revocation, relayed to the gate by another device (the revoked
    // one's gossip key is two roster versions old and refused), the record
    // is kept as evidence, not applied.
    let mut late = record(&v, revoked.node, 2, &tickets[1].0);
    late.sign(&revoked.key);
    let (st, _) = peer_sync(&v, 0, revoked.seal(&message(&v, vec![late.clone()]))).await;
    assert_eq!(
        st, 401,
        "the revoked device's own gossip key no longer opens the LAN"
    );
    let mut relay = relay;
    let (st, _) = peer_sync(&v, 0, relay.seal(&message(&v, vec![late.clone()]))).await;
    assert_eq!(st, 200, "the batch is answered; the record is flagged");
    let status = v.nodes[0].status().await;
    assert_eq!(status["flagged"]["revoked"], 1, "{status}");
    assert_eq!(
        status["records"].as_u64().unwrap(),
        records_before,
        "the revoked device's later record is not part of the check-in set"
    );
    let r = v.nodes[0].scan(&tickets[1].1).await;
    assert_decision(
        &r,
        "admit",
        None,
        "its 'admission' does not block the real holder",
    );

    // Relayed to the cloud by another device: kept as evidence, never
    // counted; its earlier scan is kept and counted.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .post(v.cloud.url(&format!("/sync/events/{}/checkins", v.event)))
        .bearer_auth(&relay_token)
        .header("content-type", "application/octet-stream")
        .body(message(&v, vec![early.clone(), late.clone()]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let held = scan_ids(&v.cloud.scans(&v.event).await);
    assert!(
        held.contains(&early.id.to_string()),
        "earlier scans are kept: {held:?}"
    );
    assert!(
        !held.contains(&late.id.to_string()),
        "later ones never count: {held:?}"
    );
    let stats = v.cloud.stats(&v.event).await;
    assert_eq!(stats["revoked_device_records"], 1, "{stats}");

    // Its token is refused, so it cannot fetch the next gossip key either.
    let (st, _) = v
        .cloud
        .call_as(
            &revoked.token,
            reqwest::Method::GET,
            &format!("/sync/events/{}/roster?since=0", v.event),
            None,
        )
        .await;
    assert_eq!(st, 401, "a revoked device learns no new gossip key");
}

/// Opens a connection from `from` and sends half a request head.
async fn half_sent_head(
    from: std::net::Ipv4Addr,
    to: std::net::SocketAddr,
) -> Option<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind((from, 0).into()).ok()?;
    let mut s = socket.connect(to).await.ok()?;
    s.write_all(b"GET /status HTTP/1.1\r\nhost: gate\r\nx-slow: ")
        .await
        .ok()?;
    Some(s)
}

/// Finding 5: strangers flooding a gate with half-sent requests (from
/// many LAN addresses, more than the gate's whole connection limit) do not
/// stop its status route or peer sync, and each half-sent request is
/// dropped after the header timeout instead of being served 35 s later.
/// Finding 6, the other half: a stranger's `POST /scan` is refused and
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_strangers_does_not_stop_status_peer_sync_or_scanning() {
    use tokio::io::AsyncReadExt;
    let v = Venue::open(2, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 2).await;
    v.manifests_reach(1).await;
    let gate = v.nodes[0].addr.unwrap();

    // A stranger's POST /scan (any address but the gate's own).
    let stranger = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let resp = stranger
        .post(format!("http://{gate}/scan"))
        .json(&json!({"text": tickets[0].1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert!(v.nodes[0].scan_ids().await.is_empty(), "nothing recorded");

    // 40 addresses x 12 half-sent heads = 480 connections, beyond the
    // default limit of 256 (+64 reserved for this host and its peers).
    let mut held = Vec::new();
    for host in 10..50u8 {
        for _ in 0..12 {
            if let Some(s) = half_sent_head(std::net::Ipv4Addr::new(127, 0, 0, host), gate).await {
                held.push(s);
            }
        }
    }
    assert!(
        held.len() >= 400,
        "the flood got its sockets open: {}",
        held.len()
    );

    // The gate still answers its own status probe, scans, and syncs with
    // its peer within the usual time.
    let status = v.nodes[0].status().await;
    assert!(status["node_id"].is_string(), "{status}");
    let r = v.nodes[0].scan(&tickets[0].1).await;
    assert_decision(&r, "admit", None, "gate A scans during the flood");
    let r1 = v.nodes[1].scan(&tickets[1].1).await;
    assert_decision(&r1, "admit", None, "gate B scans during the flood");
    wait_until(
        SETTLE,
        "gate A's scan reaches gate B during the flood",
        || async { v.nodes[1].scan_ids().await.len() == 2 },
    )
    .await;

    // Half-sent heads are dropped after the header timeout (5 s by
    // default), not held open for the attacker.
    let mut closed = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(12);
    for s in held.iter_mut().take(20) {
        let mut buf = [0u8; 512];
        if let Ok(Ok(_)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 20, "every half-sent head is dropped within 12 s");
}
