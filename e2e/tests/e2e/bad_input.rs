//! Hostile input at the cloud's device endpoints, from outside the cloud
//! process: clear refusals, nothing written. (Forged and gapped deltas are
//! refused by the node and tested in gate-node.)

use crate::{SETTLE, Venue, assert_decision, scan_ids};
use e2e::node::Timings;
use e2e::wait_until;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sync_protocol::checkin::Summary;
use sync_protocol::{Direction, Hlc, NodeId, Outcome, ScanId, ScanRecord, SyncMessage};

/// Enrolls a device with a fresh code and a real proof; its token.
async fn enroll(v: &Venue) -> String {
    let code = v.cloud.enrollment_code(&v.event, "Side door", false).await;
    let key = SigningKey::from_bytes(&[9; 32]);
    let proof = key.sign(&sync_protocol::device_api::enrollment_message(&code));
    let (st, e) = v
        .cloud
        .call(
            reqwest::Method::POST,
            "/devices/enroll",
            Some(json!({"code": code, "name": "outsider",
                "device_public_key": hex::encode(key.verifying_key().to_bytes()),
                "proof": hex::encode(proof.to_bytes())})),
        )
        .await;
    assert_eq!(st, 201, "{e}");
    e["device_token"].as_str().unwrap().to_string()
}

/// Announces a 9 MiB body and sends none; the status of the answer.
async fn announce_oversized(addr: std::net::SocketAddr, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: cloud\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        9 << 20
    );
    conn.write_all(head.as_bytes()).await.expect("send head");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("the cloud answers without waiting for the body")
    .expect("read");
    String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

async fn raw(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = http
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("the cloud answers");
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

/// Garbage, truncated, oversized, foreign and conflicting input is refused
/// with a stable code and changes nothing; a revoked gate keeps admitting
/// offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_device_input_is_refused_and_nothing_is_written() {
    let v = Venue::open(1, Timings::fast(), false).await;
    let tickets = v.cloud.sell(&v.event, 2).await;
    v.manifests_reach(2).await;
    let admitted = v.nodes[0].scan(&tickets[0].1).await;
    let sid = admitted["scan_id"].as_str().unwrap().to_string();
    v.cloud_holds_exactly(&[sid.clone()].into()).await;

    // A second device of the event, enrolled by this (outside) process.
    let status = v.nodes[0].status().await;
    let node: NodeId = status["node_id"].as_str().unwrap().parse().unwrap();
    let token = enroll(&v).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = v.cloud.url(&format!("/sync/events/{}/checkins", v.event));

    let (st, code) = raw(
        &http,
        url.clone(),
        Some(&token),
        b"\x00\xffgarbage".to_vec(),
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "invalid_sync_message"));
    let (st, code) = raw(&http, url.clone(), None, vec![]).await;
    assert_eq!((st, code.as_str()), (401, "missing_token"));
    let path = format!("/sync/events/{}/checkins", v.event);
    let st = announce_oversized(v.cloud.addr, &path, &token).await;
    assert_eq!(
        st, 413,
        "a body over the sync limit is refused on its length alone"
    );
    let forged = ScanRecord {
        id: ScanId { node, seq: 1 },
        event_id: v.event.parse().unwrap(),
        ticket_id: tickets[1].0.parse().unwrap(),
        generation: 0,
        direction: Direction::Entry,
        hlc: Hlc::new(1, 0),
        zone: None,
        outcome: Outcome::Admit,
        gate: "forged".into(),
        operator: String::new(),
        signature: Default::default(),
    };
    let fresh = ScanRecord {
        id: ScanId { node, seq: 99 },
        ..forged.clone()
    };
    let msg = |records: Vec<ScanRecord>| {
        SyncMessage {
            event_id: v.event.parse().unwrap(),
            have: Summary::default(),
            records,
        }
        .encode()
    };
    let (st, code) = raw(
        &http,
        url.clone(),
        Some(&token),
        msg(vec![fresh.clone(), forged.clone()]),
    )
    .await;
    assert_eq!(
        (st, code.as_str()),
        (422, "bad_record_signature"),
        "records not signed by the gate they name are refused, nothing written"
    );
    let mut truncated = msg(vec![fresh]);
    truncated.truncate(truncated.len() - 3);
    let (st, code) = raw(&http, url.clone(), Some(&token), truncated).await;
    assert_eq!((st, code.as_str()), (400, "invalid_sync_message"));
    let (st, code) = raw(
        &http,
        v.cloud.url("/devices/enroll"),
        None,
        b"{\"code\": 1".to_vec(),
    )
    .await;
    assert_eq!(st, 415, "enrollment takes JSON only ({code})");
    let (st, _) = v
        .cloud
        .call(
            reqwest::Method::POST,
            "/devices/enroll",
            Some(json!({"code": "NOPE", "name": "x",
            "device_public_key": "00".repeat(32), "proof": "00".repeat(64)})),
        )
        .await;
    assert_eq!(st, 404, "unknown code");
    assert_eq!(
        scan_ids(&v.cloud.scans(&v.event).await),
        vec![sid.clone()],
        "nothing of the hostile input was written"
    );

    // Revoked: the gate is cut off from the cloud, and still admits.
    let (st, devices) = v
        .cloud
        .call(
            reqwest::Method::GET,
            &format!("/devices?event_id={}", v.event),
            None,
        )
        .await;
    assert_eq!(st, 200, "{devices}");
    let (st, _) = v
        .cloud
        .call(
            reqwest::Method::POST,
            &format!("/devices/{node}/revoke"),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 200);
    wait_until(SETTLE, "the gate seeing its revocation", || async {
        v.nodes[0].status().await["cloud"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("device_revoked"))
    })
    .await;
    let r = v.nodes[0].scan(&tickets[1].1).await;
    assert_decision(&r, "admit", None, "a revoked device still decides offline");
    assert_eq!(
        scan_ids(&v.cloud.scans(&v.event).await),
        vec![sid],
        "but cannot sync"
    );
}
