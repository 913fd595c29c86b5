//! Signed scan records and the device roster: every field of a record is
//! covered by its device's signature; the roster refuses unknown devices,
//! forged signatures and what a revoked device made after revocation; roster
//! deltas chain like the manifest's; the LAN envelope's replay window.

use crate::common::*;
use proptest::prelude::*;
use sync_protocol::checkin::{Direction, ScanRecord};
use sync_protocol::manifest::ManifestError;
use sync_protocol::roster::{
    RecordRefusal, Roster, RosterEntry, RosterHeader, SignedRoster, chain_digest, genesis_digest,
};
use sync_protocol::sync::{EnvelopeHeader, REPLAY_WINDOW_MS, ReplayError, ReplayGuard};
use sync_protocol::{Hlc, Outcome, Reason, SecretKey, TicketId};

fn device_key(n: u8) -> SecretKey {
    SecretKey::from_seed([0x40 + n; 32])
}

fn device(n: u8, enrolled_at_ms: u64, revoked_at_ms: Option<u64>) -> RosterEntry {
    RosterEntry {
        node_id: node(n),
        public_key: device_key(n).public(),
        enrolled_at_ms,
        revoked_at_ms,
    }
}

/// A roster at version 1 listing devices 1 and 2, as the cloud signs it.
fn roster_v1() -> (Vec<u8>, [u8; 32]) {
    let entries = vec![device(1, 0, None), device(2, 0, None)];
    let digest = chain_digest(&genesis_digest(&event()), 1, &entries);
    let header = RosterHeader {
        event_id: event(),
        version: 1,
        digest,
        issued_at: NOW,
    };
    let bytes = SignedRoster::sign(&event_key(), &header, None, &mut entries.clone()).unwrap();
    (bytes, digest)
}

fn held_roster() -> Roster {
    let mut roster = Roster::empty(event());
    let (bytes, _) = roster_v1();
    roster
        .apply(SignedRoster::open(&bytes, &ring(), &event()).unwrap())
        .unwrap();
    roster
}

fn signed(node_n: u8, seq: u64, hlc_ms: u64) -> ScanRecord {
    let mut r = scan(node_n, seq, 1, Direction::Entry, Hlc::new(hlc_ms, 0).0);
    r.sign(&device_key(node_n));
    r
}

#[test]
fn a_signed_record_round_trips_in_its_wire_form_and_verifies() {
    let r = signed(1, 7, 1_000);
    let bytes = r.to_signed_bytes();
    assert_eq!(&bytes[..3], b"TC\x02", "magic TC, layout version 2");
    let back = ScanRecord::from_signed_bytes(&bytes).unwrap();
    assert_eq!(back, r);
    back.verify(&device_key(1).public()).unwrap();
    assert!(
        back.verify(&device_key(2).public()).is_err(),
        "another device's key does not verify it"
    );
    assert_eq!(
        ScanRecord::from_bytes(&r.to_bytes()).unwrap().id,
        r.id,
        "the stored body keeps layout 1"
    );
}

#[test]
fn the_roster_refuses_unknown_devices_forgeries_and_records_after_revocation() {
    let roster = held_roster();
    roster
        .check_records([&signed(1, 1, 5_000), &signed(2, 1, 5_000)])
        .expect("records of listed devices, signed by them, pass in one batch");

    let stranger = signed(9, 1, 5_000);
    assert_eq!(
        roster.check_records([&stranger]),
        Err(RecordRefusal::UnknownDevice(stranger.id))
    );

    // An insider with the gossip key but not device 2's key forges "device
    // 2's next scan": the signature gives it away.
    let mut forged = scan(2, 2, 1, Direction::Entry, Hlc::new(5_000, 0).0);
    forged.sign(&device_key(1));
    assert_eq!(
        roster.check_records([&signed(1, 2, 5_000), &forged]),
        Err(RecordRefusal::BadSignature(forged.id)),
        "the batch fails and names the forged record"
    );

    let mut revoked = held_roster();
    let entries = vec![device(2, 0, Some(10_000))];
    let (_, d1) = roster_v1();
    let header = RosterHeader {
        event_id: event(),
        version: 2,
        digest: chain_digest(&d1, 2, &entries),
        issued_at: NOW,
    };
    let delta =
        SignedRoster::sign(&event_key(), &header, Some((1, d1)), &mut entries.clone()).unwrap();
    revoked
        .apply(SignedRoster::open(&delta, &ring(), &event()).unwrap())
        .unwrap();
    revoked
        .check_records([&signed(2, 3, 9_999)])
        .expect("what a device did before its revocation still counts");
    let late = signed(2, 4, 10_000);
    assert_eq!(
        revoked.check_records([&late]),
        Err(RecordRefusal::Revoked(late.id))
    );
}

#[test]
fn rosters_signed_by_strangers_or_for_other_events_are_refused() {
    let (bytes, _) = roster_v1();
    let other = "0194f3a0-7c00-7000-8000-0000000000bb".parse().unwrap();
    assert_eq!(
        SignedRoster::open(&bytes, &ring(), &other),
        Err(ManifestError::WrongEvent)
    );
    let rogue = SecretKey::from_seed([0x77; 32]);
    let header = RosterHeader {
        event_id: event(),
        version: 1,
        digest: [0; 32],
        issued_at: NOW,
    };
    let forged = SignedRoster::sign(&rogue, &header, None, &mut [device(9, 0, None)]).unwrap();
    assert_eq!(
        SignedRoster::open(&forged, &ring(), &event()),
        Err(ManifestError::UnknownSigner(rogue.key_id()))
    );
}

#[test]
fn replayed_or_stale_envelopes_are_refused_and_memory_is_bounded_by_the_window() {
    let mut guard = ReplayGuard::new();
    let now = 1_790_000_000_000;
    let h = EnvelopeHeader {
        sender: node(1),
        key_version: 1,
        timestamp_ms: now,
        nonce: [1; 16],
    };
    guard.check(&h, now).unwrap();
    assert_eq!(guard.check(&h, now + 10), Err(ReplayError::Replayed));
    let old = EnvelopeHeader {
        timestamp_ms: now - REPLAY_WINDOW_MS - 1,
        nonce: [2; 16],
        ..h
    };
    assert!(matches!(
        guard.check(&old, now),
        Err(ReplayError::Stale { .. })
    ));
    // Once the window has passed, the old nonce is forgotten, and a replay
    // of it is refused by its timestamp instead.
    let later = now + 2 * REPLAY_WINDOW_MS + 1;
    let fresh = EnvelopeHeader {
        timestamp_ms: later,
        nonce: [3; 16],
        ..h
    };
    guard.check(&fresh, later).unwrap();
    assert_eq!(guard.len(), 1, "nonces older than the window are dropped");
    assert!(matches!(
        guard.check(&h, later),
        Err(ReplayError::Stale { .. })
    ));
}

fn arb_record() -> impl Strategy<Value = ScanRecord> {
    (
        1u64..1 << 40,
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<bool>(),
        1u64..1 << 60,
        proptest::option::of(0u8..32),
        any::<bool>(),
        "[a-zA-Z0-9 ]{0,64}",
        "[a-z]{0,64}",
    )
        .prop_map(
            |(seq, t, generation, exit, hlc, zone, admit, gate, operator)| {
                let mut r = scan(1, seq, 0, Direction::Entry, hlc);
                r.ticket_id = TicketId::from_bytes(t);
                r.generation = generation;
                r.direction = if exit {
                    Direction::Exit
                } else {
                    Direction::Entry
                };
                r.zone = zone;
                r.outcome = if admit {
                    Outcome::Admit
                } else {
                    Outcome::Reject(Reason::AlreadyInside)
                };
                r.gate = gate;
                r.operator = operator;
                r
            },
        )
}

/// Changes field number `which` of `r` to something else.
fn tamper(r: &mut ScanRecord, which: usize) {
    match which % 11 {
        0 => r.id.node = node(2),
        1 => r.id.seq = r.id.seq % (1 << 40) + 1,
        2 => r.event_id = "0194f3a0-7c00-7000-8000-0000000000cc".parse().unwrap(),
        3 => r.ticket_id = TicketId::from_bytes([0xab; 16]),
        4 => r.generation = r.generation.wrapping_add(1),
        5 => {
            r.direction = match r.direction {
                Direction::Entry => Direction::Exit,
                Direction::Exit => Direction::Entry,
            }
        }
        6 => r.hlc = Hlc(r.hlc.0 ^ 1),
        7 => r.zone = if r.zone == Some(3) { None } else { Some(3) },
        8 => {
            r.outcome = if r.outcome == Outcome::Admit {
                Outcome::Reject(Reason::Revoked)
            } else {
                Outcome::Admit
            }
        }
        9 => r.gate.push('x'),
        _ => r.operator.push('y'),
    }
}

proptest! {
    #[test]
    fn a_record_with_any_field_changed_fails_verification(mut r in arb_record(), which in 0usize..11) {
        r.sign(&device_key(1));
        prop_assert!(r.verify(&device_key(1).public()).is_ok());
        let original = r.clone();
        tamper(&mut r, which);
        prop_assert_ne!(&r, &original);
        prop_assert!(r.verify(&device_key(1).public()).is_err(), "field {} changed but still verifies", which % 11);
        // And through the wire: the tampered bytes either do not decode (a
        // label pushed past 64 bytes) or decode and do not verify.
        if let Ok(back) = ScanRecord::from_signed_bytes(&r.to_signed_bytes()) {
            prop_assert!(back.verify(&device_key(1).public()).is_err());
        }
    }

    #[test]
    fn roster_deltas_chain_like_the_manifests(steps in proptest::collection::vec((1u8..6, any::<bool>()), 1..8), skip in any::<prop::sample::Index>()) {
        // The cloud's side: versions 1..=n, each changing one device.
        let mut cloud = Roster::empty(event());
        let mut published = Vec::new();
        let mut digest = genesis_digest(&event());
        for (v, (n, revoke)) in steps.iter().enumerate() {
            let v = v as u64 + 1;
            let entry = device(*n, 0, revoke.then_some(1_000 * v));
            let base = (v - 1, digest);
            digest = chain_digest(&digest, v, std::slice::from_ref(&entry));
            let header = RosterHeader { event_id: event(), version: v, digest, issued_at: NOW };
            let bytes = SignedRoster::sign(&event_key(), &header, Some(base), &mut [entry]).unwrap();
            cloud.apply(SignedRoster::open(&bytes, &ring(), &event()).unwrap()).unwrap();
            published.push(bytes);
        }
        // A device applying every delta in order ends where the cloud is.
        let mut node_roster = Roster::empty(event());
        for bytes in &published {
            node_roster.apply(SignedRoster::open(bytes, &ring(), &event()).unwrap()).unwrap();
        }
        prop_assert_eq!(&node_roster, &cloud);
        // One that missed a delta sees a gap and changes nothing.
        if published.len() > 1 {
            let missed = skip.index(published.len() - 1);
            let mut partial = Roster::empty(event());
            for bytes in &published[..missed] {
                partial.apply(SignedRoster::open(bytes, &ring(), &event()).unwrap()).unwrap();
            }
            let before = partial.clone();
            let next = SignedRoster::open(&published[missed + 1], &ring(), &event()).unwrap();
            let refused = partial.apply(next);
            prop_assert!(matches!(refused, Err(ManifestError::Gap { .. })), "{:?}", refused);
            prop_assert_eq!(partial, before);
        }
        // A delta from another history at the same version is a fork.
        let header = RosterHeader { event_id: event(), version: 99, digest: [1; 32], issued_at: NOW };
        let fork = SignedRoster::sign(&event_key(), &header, Some((cloud.version(), [0xee; 32])), &mut [device(1, 0, None)]).unwrap();
        let mut copy = cloud.clone();
        prop_assert_eq!(copy.apply(SignedRoster::open(&fork, &ring(), &event()).unwrap()), Err(ManifestError::Fork(cloud.version())));
        // A replayed older full roster cannot undo a revocation.
        let stale_header = RosterHeader { event_id: event(), version: 0, digest: [2; 32], issued_at: NOW };
        let stale = SignedRoster::sign(&event_key(), &stale_header, None, &mut [device(1, 0, None)]).unwrap();
        let refused = copy.apply(SignedRoster::open(&stale, &ring(), &event()).unwrap());
        prop_assert!(matches!(refused, Err(ManifestError::Stale { .. })), "{:?}", refused);
    }
}
