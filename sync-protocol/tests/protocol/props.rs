//! Property tests: round trips, tamper rejection, CRDT laws, convergence of
//! replicas under reordering, duplication and loss, and the fuzz entry points
//! on generated hostile input.

use crate::common::*;
use crate::sync::sync_pair;
use proptest::prelude::*;
use proptest::sample::Index;
use sync_protocol::checkin::{CheckinLog, Direction, ScanRecord};
use sync_protocol::decision::{GatePolicy, TimeReading};
use sync_protocol::manifest::{EntryStatus, Header, ManifestEntry, ManifestState};
use sync_protocol::{
    Claims, Credential, Hlc, Manifest, Outcome, ScanId, TicketId, ValidityWindow, base45, decide,
    fuzzing,
};

fn arb_claims() -> impl Strategy<Value = Claims> {
    (
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        proptest::option::of((0u64..u64::MAX / 2, 0u64..1 << 40)),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(|(t, generation, tier, zones, window, holder_key)| Claims {
            event_id: event(),
            ticket_id: TicketId::from_bytes(t),
            generation,
            tier,
            zones,
            window: window.map(|(from, len)| ValidityWindow {
                not_before: from,
                not_after: from + len,
            }),
            holder_key,
        })
}

fn arb_entry() -> impl Strategy<Value = ManifestEntry> {
    (
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        "[a-zA-Z .,'-]{0,20}|\\PC{0,10}",
    )
        .prop_filter("display names fit 64 bytes", |t| t.6.len() <= 64)
        .prop_map(
            |(t, generation, tier, zones, revoked, reentry, name)| ManifestEntry {
                ticket_id: TicketId::from_bytes(t),
                generation,
                tier,
                zones,
                status: if revoked {
                    EntryStatus::Revoked
                } else {
                    EntryStatus::Valid
                },
                reentry,
                display_name: name,
            },
        )
}

/// Records drawn from one consistent universe: the content of scan
/// `(node, seq)` is a function of its id, as it is for honest nodes.
fn record(node_n: u8, seq: u64) -> ScanRecord {
    let mix = u64::from(node_n) * 7 + seq * 13;
    let mut r = scan(
        node_n,
        seq,
        (mix % 6) as u8,
        if mix.is_multiple_of(5) {
            Direction::Exit
        } else {
            Direction::Entry
        },
        1_000 + (mix % 17) * 10 + u64::from(node_n),
    );
    if mix.is_multiple_of(7) {
        r.outcome = Outcome::Reject(sync_protocol::Reason::AlreadyInside);
    }
    r
}

fn arb_ids() -> impl Strategy<Value = Vec<(u8, u64)>> {
    proptest::collection::vec((1u8..=3, 1u64..=8), 0..24)
}

fn log_of(ids: &[(u8, u64)]) -> CheckinLog {
    let mut log = CheckinLog::new(event());
    log.apply(ids.iter().map(|(n, s)| record(*n, *s))).unwrap();
    log
}

fn merged(a: &CheckinLog, b: &CheckinLog) -> CheckinLog {
    use crdts::CvRDT;
    let mut out = a.clone();
    out.validate_merge(b).unwrap();
    out.merge(b.clone());
    out
}

fn admits(text: &str) -> bool {
    let event = event();
    decide(
        text,
        &ring(),
        &ManifestState::empty(event),
        &CheckinLog::new(event),
        &GatePolicy::entry(event),
        TimeReading {
            unix_secs: NOW,
            trusted: true,
        },
    )
    .outcome
    .is_admit()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn credential_round_trips(claims in arb_claims()) {
        let cred = Credential::issue(&event_key(), claims.clone()).unwrap();
        let text = cred.to_qr_text();
        prop_assert!(text.len() <= 250);
        let back = Credential::from_qr_text(&text).unwrap();
        prop_assert_eq!(&back.claims, &claims);
        prop_assert_eq!(Credential::from_bytes(cred.as_bytes()).unwrap(), cred);
    }

    #[test]
    fn any_flipped_bit_is_rejected(claims in arb_claims(), bit in any::<Index>()) {
        let mut c = claims;
        c.window = None; // keep the original admissible at NOW
        let cred = Credential::issue(&event_key(), c).unwrap();
        prop_assert!(admits(&cred.to_qr_text()));
        let mut bytes = cred.as_bytes().to_vec();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        prop_assert!(!admits(&format!("TK1:{}", base45::encode(&bytes))), "bit {} flipped still admits", i);
    }

    #[test]
    fn any_replaced_byte_is_rejected(claims in arb_claims(), at in any::<Index>(), value in any::<u8>()) {
        let mut c = claims;
        c.window = None;
        let cred = Credential::issue(&event_key(), c).unwrap();
        let mut bytes = cred.as_bytes().to_vec();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != value);
        bytes[i] = value;
        let text = format!("TK1:{}", base45::encode(&bytes));
        prop_assert!(!admits(&text), "byte {} replaced still admits", i);
    }

    #[test]
    fn manifest_round_trips(entries in proptest::collection::vec(arb_entry(), 0..40)) {
        let mut entries = entries;
        entries.sort_by_key(|e| e.ticket_id);
        entries.dedup_by_key(|e| e.ticket_id);
        let header = Header { event_id: event(), version: 3, digest: [4; 32], issued_at: NOW, certs: &[cert()] };
        let bytes = Manifest::sign(&event_key(), &header, &mut entries.clone()).unwrap();
        let m = Manifest::open(&bytes, &sync_protocol::KeyRing::new(root().public()), &event()).unwrap();
        prop_assert_eq!(m.entries, entries);
        prop_assert_eq!(m.version, 3);
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(a in arb_ids(), b in arb_ids(), c in arb_ids()) {
        let (a, b, c) = (log_of(&a), log_of(&b), log_of(&c));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
    }

    #[test]
    fn replicas_converge_despite_reordering_duplicates_and_loss(
        deliveries in proptest::collection::vec((1u8..=4, 1u64..=10, 0usize..4, any::<bool>()), 1..80),
        limit in 1usize..20,
    ) {
        // Node n's scans 1..=10 reach replicas in random order, some twice,
        // some never (dropped); every scan reaches at least its own node.
        let mut replicas: Vec<CheckinLog> = (0..4).map(|_| CheckinLog::new(event())).collect();
        for (n, seq, replica, _) in &deliveries {
            replicas[usize::from(*n) - 1].insert(record(*n, *seq)).unwrap();
            replicas[*replica].insert(record(*n, *seq)).unwrap();
        }
        for (n, seq, replica, dup) in deliveries.iter().rev() {
            if *dup {
                replicas[*replica].insert(record(*n, *seq)).unwrap();
            }
        }
        // Heal: a ring of sync sessions, twice round.
        for _ in 0..2 {
            for i in 0..4 {
                let j = (i + 1) % 4;
                let (x, y) = if i < j { replicas.split_at_mut(j) } else { replicas.split_at_mut(i) };
                let (a, b) = if i < j { (&mut x[i], &mut y[0]) } else { (&mut y[0], &mut x[j]) };
                sync_pair(a, b, limit);
            }
        }
        for r in &replicas[1..] {
            prop_assert_eq!(r, &replicas[0]);
        }
        let expected: std::collections::BTreeSet<ScanId> = deliveries
            .iter()
            .map(|(n, seq, _, _)| ScanId { node: node(*n), seq: *seq })
            .collect();
        let held: std::collections::BTreeSet<ScanId> = replicas[0].records().map(|r| r.id).collect();
        prop_assert_eq!(held, expected, "nothing lost, nothing invented");
        for t in 0..6 {
            let folds: Vec<_> = replicas.iter().map(|r| r.fold(&ticket(t))).collect();
            prop_assert!(folds.windows(2).all(|w| w[0] == w[1]), "ticket {} folds differ", t);
        }
    }

    #[test]
    fn hlc_is_monotonic_whatever_the_wall_clock_does(walls in proptest::collection::vec(0u64..1 << 47, 1..50)) {
        let mut clock = sync_protocol::HlcClock::new(Hlc::default());
        let mut last = Hlc::default();
        for (i, w) in walls.iter().enumerate() {
            let t = if i % 3 == 0 { clock.observe(Hlc::new(*w / 2, 3), *w) } else { clock.now(*w) };
            prop_assert!(t > last);
            last = t;
        }
    }

    #[test]
    fn decoders_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::credential(&data);
        fuzzing::manifest(&data);
        fuzzing::sync_message(&data);
    }

    #[test]
    fn decoders_never_panic_on_mutated_valid_input(
        seed_kind in 0usize..4,
        edits in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..8),
        cut in any::<Index>(),
    ) {
        let mut data = valid_input(seed_kind);
        for (at, v) in edits {
            let i = at.index(data.len());
            data[i] = v;
        }
        if seed_kind == 0 {
            data.truncate(cut.index(data.len() + 1));
        }
        fuzzing::credential(&data);
        fuzzing::manifest(&data);
        fuzzing::sync_message(&data);
    }
}

/// Valid encodings to mutate: a credential, a manifest, a sync message, an
/// entries block.
fn valid_input(kind: usize) -> Vec<u8> {
    match kind {
        0 => Credential::issue(&event_key(), claims(1))
            .unwrap()
            .as_bytes()
            .to_vec(),
        1 => {
            let header = Header {
                event_id: event(),
                version: 1,
                digest: [0; 32],
                issued_at: NOW,
                certs: &[cert()],
            };
            let mut entries: Vec<ManifestEntry> = (0..20)
                .map(|n| ManifestEntry {
                    ticket_id: ticket(n),
                    generation: 0,
                    tier: 1,
                    zones: 1,
                    status: EntryStatus::Valid,
                    reentry: false,
                    display_name: format!("Guest {n}"),
                })
                .collect();
            Manifest::sign(&event_key(), &header, &mut entries).unwrap()
        }
        2 => log_of(&[(1, 1), (1, 2), (2, 1), (3, 5)])
            .sync_push(vec![record(1, 1), record(2, 1)])
            .encode(),
        _ => sync_protocol::sync::seal(
            &[7; 32],
            &sync_protocol::sync::EnvelopeHeader {
                sender: node(1),
                key_version: 1,
                timestamp_ms: 1_700_000_000_000,
                nonce: [9; 16],
            },
            &log_of(&[(1, 1)]).sync_start().encode(),
        ),
    }
}
