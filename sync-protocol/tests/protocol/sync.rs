//! Two and more replicas exchanging sync messages over a byte transport.

use crate::common::*;
use sync_protocol::checkin::{CheckinError, CheckinLog, Direction, TicketState};
use sync_protocol::sync::{self, SyncError, SyncMessage};

/// Runs a sync session from `a` to `b` through encoded bytes until both are
/// quiet; returns the number of messages sent.
pub fn sync_pair(a: &mut CheckinLog, b: &mut CheckinLog, limit: usize) -> usize {
    let mut msg = Some(a.sync_start());
    let mut sent = 0;
    let mut to_b = true;
    while let Some(m) = msg.take() {
        sent += 1;
        assert!(sent < 1_000, "sync does not terminate");
        let wire = SyncMessage::decode(&m.encode()).unwrap();
        assert_eq!(wire, m, "sync messages round-trip");
        let receiver = if to_b { &mut *b } else { &mut *a };
        msg = receiver.sync_receive(wire, limit).unwrap().reply;
        to_b = !to_b;
    }
    sent
}

#[test]
fn two_replicas_converge_in_batches() {
    let mut a = CheckinLog::new(event());
    let mut b = CheckinLog::new(event());
    for seq in 1..=25 {
        a.insert(scan(1, seq, seq as u8, Direction::Entry, seq))
            .unwrap();
        b.insert(scan(2, seq, 100 + seq as u8, Direction::Entry, seq))
            .unwrap();
    }
    let messages = sync_pair(&mut a, &mut b, 10);
    assert_eq!(a, b, "both hold the same 50 records");
    assert_eq!(a.len(), 50);
    assert!(
        messages >= 5,
        "10-record batches need several steps, took {messages}"
    );
    assert_eq!(
        sync_pair(&mut a, &mut b, 10),
        1,
        "in sync: one hello, no reply"
    );
}

#[test]
fn records_beyond_a_gap_are_not_resent_forever() {
    // Both replicas hold node 1's scans 1 and 3; scan 2 exists nowhere here.
    let mut a = CheckinLog::new(event());
    let mut b = CheckinLog::new(event());
    for log in [&mut a, &mut b] {
        log.insert(scan(1, 1, 1, Direction::Entry, 1)).unwrap();
        log.insert(scan(1, 3, 3, Direction::Entry, 3)).unwrap();
    }
    assert_eq!(sync_pair(&mut a, &mut b, 100), 1);
    // When scan 2 shows up at a, it flows to b and closes the gap.
    a.insert(scan(1, 2, 2, Direction::Entry, 2)).unwrap();
    sync_pair(&mut a, &mut b, 100);
    assert_eq!(b.summary().vv.get(&node(1)), 3);
    assert!(b.summary().extras.is_empty());
}

#[test]
fn admission_at_a_is_seen_at_b_after_a_push() {
    let mut a = CheckinLog::new(event());
    let mut b = CheckinLog::new(event());
    let record = scan(1, 1, 7, Direction::Entry, 10);
    a.insert(record.clone()).unwrap();
    let push = a.sync_push(vec![record]);
    b.sync_receive(SyncMessage::decode(&push.encode()).unwrap(), 100)
        .unwrap();
    assert!(matches!(
        b.fold(&ticket(7)).state,
        TicketState::Inside { .. }
    ));
}

#[test]
fn partitioned_double_admission_is_kept_and_flagged_on_both_sides() {
    let mut a = CheckinLog::new(event());
    let mut b = CheckinLog::new(event());
    a.insert(scan(1, 1, 9, Direction::Entry, 100)).unwrap();
    b.insert(scan(2, 1, 9, Direction::Entry, 101)).unwrap();
    sync_pair(&mut a, &mut b, 100);
    for log in [&a, &b] {
        assert_eq!(log.len(), 2, "neither scan is lost");
        let flagged = log.double_admissions();
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged[0].first.node, node(1), "earlier HLC comes first");
        assert_eq!(flagged[0].second.node, node(2));
    }
}

#[test]
fn conflicting_record_is_refused_and_nothing_is_written() {
    let mut a = CheckinLog::new(event());
    a.insert(scan(1, 1, 1, Direction::Entry, 1)).unwrap();
    let before = a.clone();
    let mut evil = scan(1, 1, 2, Direction::Entry, 1); // same scan id, other ticket
    evil.gate = "evil".into();
    let batch = vec![scan(3, 1, 3, Direction::Entry, 5), evil];
    let msg = SyncMessage {
        event_id: event(),
        have: Default::default(),
        records: batch,
    };
    let err = a.sync_receive(msg, 100).unwrap_err();
    assert!(matches!(err, SyncError::Checkin(CheckinError::Conflict(_))));
    assert_eq!(
        a, before,
        "the valid record in the batch was not applied either"
    );
}

#[test]
fn message_for_another_event_is_refused() {
    let mut a = CheckinLog::new(event());
    let other = "0194f3a0-7c00-7000-8000-0000000000aa".parse().unwrap();
    let msg = CheckinLog::new(other).sync_start();
    assert_eq!(a.sync_receive(msg, 10).unwrap_err(), SyncError::WrongEvent);
}

#[test]
fn envelope_authenticates_sender_and_payload() {
    let key = [0x5a; 32];
    let payload = CheckinLog::new(event()).sync_start().encode();
    let header = sync::EnvelopeHeader {
        sender: node(4),
        key_version: 3,
        timestamp_ms: 1_700_000_000_000,
        nonce: [7; 16],
    };
    let sealed = sync::seal(&key, &header, &payload);
    let (got, body) = sync::open(&key, &sealed).unwrap();
    assert_eq!(got, header);
    assert_eq!(body, payload.as_slice());
    assert!(sync::open(&[0x5b; 32], &sealed).is_err(), "wrong key");
    for i in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[i] ^= 0x01;
        assert!(sync::open(&key, &tampered).is_err(), "byte {i} flipped");
    }
}

#[test]
fn summaries_beyond_the_wire_limits_still_encode_to_a_decodable_message() {
    use sync_protocol::sync::MAX_EXTRAS;
    // A replica holding every other scan of one node: 5,000 extras.
    let mut log = CheckinLog::new(event());
    let records: Vec<_> = (1..=5_000u64)
        .map(|i| scan(1, 2 * i + 1, 1, Direction::Entry, i))
        .collect();
    log.apply(records).unwrap();
    assert!(log.summary().extras[&node(1)].len() > MAX_EXTRAS);
    let wire = SyncMessage::decode(&log.sync_start().encode()).expect("decodable");
    assert_eq!(wire.have.extras[&node(1)].len(), MAX_EXTRAS);
    // The truncated summary only under-claims: a peer re-sends the rest.
    let mut peer = CheckinLog::new(event());
    peer.apply(log.records().cloned()).unwrap();
    let reply = peer.sync_receive(wire, usize::MAX).unwrap().reply.unwrap();
    assert_eq!(reply.records.len(), 5_000 - MAX_EXTRAS);
}
