//! Device sync over real HTTP: signed manifests and deltas (opened with the
//! sync-protocol verifier), and check-in batches: idempotent by scan id,
//! all or nothing, conflicts refused, hostile bytes refused, records the
//! device lacks sent back.

use crate::both;
use crate::common::*;
use crate::devices::{device_call, enroll, error_code, record, sell};
use crate::tickets::key_ring;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::checkin::Summary;
use sync_protocol::manifest::{EntryStatus, ManifestState};
use sync_protocol::{EventId, Manifest, ManifestDelta, ScanId, SyncMessage};

async fn manifests_and_deltas_for_enrolled_devices(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let event: EventId = eid.parse().unwrap();
    let ring = key_ring(&app, &org, &eid).await;
    let dev = enroll(&app, &org, &eid).await;
    let tickets = sell(&app, &org, &eid, 2).await;
    let base = format!("/sync/events/{eid}/manifest");

    let (st, bytes, h) = device_call(&app, Some(&dev.token), &base, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["x-manifest-version"], "2");
    assert_eq!(h["content-type"], "application/octet-stream");
    let full = Manifest::open(&bytes, &ring, &event).expect("the full manifest verifies");
    // Version 1 opened the door (active), version 2 is the sale.
    assert_eq!((full.version, full.entries.len()), (2, 2));
    let mut node = ManifestState::empty(event);
    node.replace(full).unwrap();

    let (st, _, h) = device_call(
        &app,
        Some(&dev.token),
        &format!("{base}/delta?since=2"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "version 2 is current");
    assert_eq!(h["x-manifest-version"], "2");

    // A refund is in the next delta.
    let (st, v) = app
        .patch(
            &format!("/tickets/{}/status", tickets[0].0),
            &org.access,
            json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, bytes, h) = device_call(
        &app,
        Some(&dev.token),
        &format!("{base}/delta?since=2"),
        None,
    )
    .await;
    assert_eq!(
        (st, h["x-manifest-version"].to_str().unwrap()),
        (StatusCode::OK, "3")
    );
    let delta = ManifestDelta::open(&bytes, &ring, &event).expect("the delta verifies");
    assert_eq!(delta.entries.len(), 1);
    assert_eq!(delta.entries[0].status, EntryStatus::Revoked);
    node.apply(delta)
        .expect("the delta chains onto the node's version 2");
    assert_eq!(node.version(), 3);

    let (st, body, _) = device_call(
        &app,
        Some(&dev.token),
        &format!("{base}/delta?since=99"),
        None,
    )
    .await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::CONFLICT, "full_manifest_required"),
        "an unknown version needs the full manifest"
    );
    let (st, body, _) = device_call(
        &app,
        Some(&dev.token),
        &format!("{base}/delta?since=x"),
        None,
    )
    .await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

fn msg(event: &str, have: Summary, records: Vec<sync_protocol::ScanRecord>) -> Vec<u8> {
    SyncMessage {
        event_id: event.parse().unwrap(),
        have,
        records,
    }
    .encode()
}

/// The summary of a replica holding exactly `records`.
fn have(event: &str, records: &[sync_protocol::ScanRecord]) -> Summary {
    let mut log = sync_protocol::CheckinLog::new(event.parse().unwrap());
    log.apply(records.iter().cloned()).unwrap();
    log.summary().clone()
}

async fn push(app: &TestApp, token: &str, eid: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let (st, bytes, h) = device_call(
        app,
        Some(token),
        &format!("/sync/events/{eid}/checkins"),
        Some(body),
    )
    .await;
    assert!(h.contains_key("x-gatehouse-time"));
    (st, bytes)
}

async fn event_scans(app: &TestApp, org: &Session, eid: &str) -> Vec<String> {
    let (st, v) = app
        .get(
            &format!("/checkin/event/{eid}/check-ins?limit=100"),
            &org.access,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scan_id"].as_str().unwrap().to_string())
        .collect()
}

async fn checkin_batches_are_idempotent_all_or_nothing_and_answer_what_is_missing(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tickets = sell(&app, &org, &eid, 3).await;
    let a = enroll(&app, &org, &eid).await;
    let b = enroll(&app, &org, &eid).await;
    let t = |i: usize| tickets[i].0.as_str();
    let batch = vec![
        record(a.node_id, 1, &eid, t(0), 1_000),
        record(a.node_id, 2, &eid, t(1), 2_000),
        record(a.node_id, 2, &eid, t(1), 2_000), // a duplicate inside the batch
        record(a.node_id, 4, &eid, t(2), 4_000), // beyond a gap
    ];
    let a_has = have(&eid, &batch);
    let (st, reply) = push(
        &app,
        &a.token,
        &eid,
        msg(&eid, a_has.clone(), batch.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&reply));
    let reply = SyncMessage::decode(&reply).expect("the answer is a sync message");
    for seq in [1, 2, 4] {
        assert!(
            reply.have.has(&ScanId {
                node: a.node_id,
                seq
            }),
            "the cloud holds {seq}"
        );
    }
    assert!(
        !reply.have.has(&ScanId {
            node: a.node_id,
            seq: 3
        }),
        "and knows 3 is missing"
    );
    assert!(reply.records.is_empty(), "A has everything the cloud has");

    let (st, _) = push(&app, &a.token, &eid, msg(&eid, a_has, batch.clone())).await;
    assert_eq!(st, StatusCode::OK, "the same batch again changes nothing");
    assert_eq!(event_scans(&app, &org, &eid).await.len(), 3);

    // B (empty) learns A's scans from the cloud: a relay for the LAN.
    let (st, reply) = push(&app, &b.token, &eid, msg(&eid, Summary::default(), vec![])).await;
    assert_eq!(st, StatusCode::OK);
    let reply = SyncMessage::decode(&reply).unwrap();
    assert_eq!(reply.records.len(), 3, "B is sent every scan it lacks");

    // A record not signed by the device it names (an insider holding the
    // gossip key, issue #17) sinks its whole batch.
    let mut unsigned_copy = super::devices::unsigned(a.node_id, 3, &eid, t(2), 3_000);
    unsigned_copy.gate = "forged".into();
    let fresh = record(a.node_id, 3, &eid, t(2), 3_000);
    let (st, body) = push(
        &app,
        &b.token,
        &eid,
        msg(&eid, Summary::default(), vec![fresh.clone(), unsigned_copy]),
    )
    .await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_record_signature")
    );
    assert_eq!(
        event_scans(&app, &org, &eid).await.len(),
        3,
        "nothing of the batch was written"
    );
    // A second copy of scan 1 with other content, signed by its device (a
    // cloned SD card): kept as evidence and flagged, never a silent fork,
    // and the rest of the batch is applied.
    let mut clone = super::devices::unsigned(a.node_id, 1, &eid, t(2), 1_000);
    clone.gate = "elsewhere".into();
    clone.sign(&sync_protocol::SecretKey::from_seed([7; 32]));
    let (st, _) = push(
        &app,
        &b.token,
        &eid,
        msg(&eid, Summary::default(), vec![clone]),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, stats) = app
        .get(&format!("/checkin/event/{eid}/stats"), &org.access)
        .await;
    assert_eq!(st, StatusCode::OK, "{stats}");
    assert_eq!(stats["conflicting_records"], 1, "{stats}");
    assert_eq!(
        event_scans(&app, &org, &eid).await.len(),
        3,
        "the held copy stays"
    );

    // Relayed by B, A's scan 3 closes the gap.
    let (st, reply) = push(
        &app,
        &b.token,
        &eid,
        msg(&eid, Summary::default(), vec![fresh]),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let reply = SyncMessage::decode(&reply).unwrap();
    assert_eq!(
        reply.have.vv.get(&a.node_id),
        4,
        "prefix 1..=4 after the gap closed"
    );
    assert!(reply.have.extras.is_empty());

    // Hostile input: nothing written, clear codes.
    let (st, body) = push(&app, &a.token, &eid, b"not a sync message".to_vec()).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_sync_message")
    );
    let mut truncated = msg(
        &eid,
        Summary::default(),
        vec![record(a.node_id, 9, &eid, t(0), 9_000)],
    );
    truncated.truncate(truncated.len() - 5);
    let (st, body) = push(&app, &a.token, &eid, truncated).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_sync_message")
    );
    let other = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = push(
        &app,
        &a.token,
        &eid,
        msg(&other, Summary::default(), vec![]),
    )
    .await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_event")
    );
    let stranger = enroll(&app, &org, &other).await;
    let smuggled = record(stranger.node_id, 1, &eid, t(0), 5_000);
    let (st, body) = push(
        &app,
        &a.token,
        &eid,
        msg(&eid, Summary::default(), vec![smuggled]),
    )
    .await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "foreign_node"),
        "a node of another event cannot write here"
    );
    let (st, body) = announce_oversized(&app, &a.token, &eid).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(event_scans(&app, &org, &eid).await.len(), 4);
}

/// Announces a 9 MiB body and sends none: the cloud must refuse on the
/// header alone. (Uploading 9 MiB to a server that refuses early races the
/// upload against its answer on HTTP/1.1.)
async fn announce_oversized(app: &TestApp, token: &str, eid: &str) -> (StatusCode, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /sync/events/{eid}/checkins HTTP/1.1\r\nHost: cloud\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        9 << 20
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("the cloud answers without waiting for the body")
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text[9..12].parse().expect("a status line");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        StatusCode::from_u16(status).unwrap(),
        body.as_bytes().to_vec(),
    )
}

async fn a_full_batch_of_ten_thousand_records_is_one_request(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tickets = sell(&app, &org, &eid, 1).await;
    let a = enroll(&app, &org, &eid).await;
    let relayed = enroll(&app, &org, &eid).await.node_id;
    let records: Vec<_> = (1..=10_000)
        .map(|seq| record(relayed, seq, &eid, &tickets[0].0, 1_000 + seq))
        .collect();
    let body = msg(&eid, Summary::default(), records);
    assert!(body.len() > 64 * 1024, "far above the global body limit");
    let (st, reply) = push(&app, &a.token, &eid, body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&reply));
    let reply = SyncMessage::decode(&reply).unwrap();
    assert_eq!(
        reply.have.vv.get(&relayed),
        10_000,
        "a relayed node's scans are kept"
    );
    let (st, _) = push(&app, &a.token, &eid, body).await;
    assert_eq!(st, StatusCode::OK, "and a retry is a no-op");
}

both!(manifests_and_deltas_for_enrolled_devices);
both!(checkin_batches_are_idempotent_all_or_nothing_and_answer_what_is_missing);
both!(a_full_batch_of_ten_thousand_records_is_one_request);
