//! Named decision scenarios at a gate.

use crate::common::*;
use sync_protocol::checkin::{CheckinLog, Direction};
use sync_protocol::decision::{GatePolicy, TimeReading};
use sync_protocol::manifest::{EntryStatus, Header, ManifestEntry, ManifestState};
use sync_protocol::{Credential, Decision, Manifest, Outcome, Reason, ValidityWindow, decide};

struct Gate {
    manifest: ManifestState,
    log: CheckinLog,
    policy: GatePolicy,
    now: TimeReading,
}

impl Gate {
    fn new() -> Self {
        Self {
            manifest: ManifestState::empty(event()),
            log: CheckinLog::new(event()),
            policy: GatePolicy::entry(event()),
            now: TimeReading {
                unix_secs: NOW,
                trusted: true,
            },
        }
    }

    fn with_manifest(mut self, mut entries: Vec<ManifestEntry>) -> Self {
        let header = Header {
            event_id: event(),
            version: 1,
            digest: [1; 32],
            issued_at: NOW,
            certs: &[cert()],
        };
        let bytes = Manifest::sign(&event_key(), &header, &mut entries).unwrap();
        self.manifest
            .replace(Manifest::open(&bytes, &ring(), &event()).unwrap())
            .unwrap();
        self
    }

    fn decide(&self, text: &str) -> Decision {
        decide(
            text,
            &ring(),
            &self.manifest,
            &self.log,
            &self.policy,
            self.now,
        )
    }

    /// Decides and, like a gate, records the scan.
    fn scan(&mut self, node_n: u8, text: &str, direction: Direction) -> Decision {
        self.policy.direction = direction;
        let d = self.decide(text);
        let seq = self.log.next_seq(node(node_n));
        let mut record = scan(node_n, seq, 0, direction, self.log.len() as u64 + 1);
        record.ticket_id = d.ticket_id.unwrap();
        record.outcome = d.outcome;
        self.log.insert(record).unwrap();
        d
    }
}

fn entry(n: u8) -> ManifestEntry {
    ManifestEntry {
        ticket_id: ticket(n),
        generation: 0,
        tier: 1,
        zones: 1,
        status: EntryStatus::Valid,
        reentry: false,
        display_name: format!("Guest {n}"),
    }
}

fn qr(c: sync_protocol::Claims) -> String {
    Credential::issue(&event_key(), c).unwrap().to_qr_text()
}

#[test]
fn admitted_once_then_already_inside() {
    let mut gate = Gate::new().with_manifest(vec![entry(1)]);
    let text = qr(claims(1));
    let first = gate.scan(1, &text, Direction::Entry);
    assert_eq!(first.outcome, Outcome::Admit);
    assert_eq!(first.display_name.as_deref(), Some("Guest 1"));
    let second = gate.scan(1, &text, Direction::Entry);
    assert_eq!(second.outcome, Outcome::Reject(Reason::AlreadyInside));
}

#[test]
fn unlisted_ticket_sold_after_the_last_sync_is_admitted_unless_policy_requires_listing() {
    let mut gate = Gate::new();
    let text = qr(claims(2));
    assert_eq!(gate.decide(&text).outcome, Outcome::Admit);
    gate.policy.require_listed = true;
    assert_eq!(
        gate.decide(&text).outcome,
        Outcome::Reject(Reason::NotListed)
    );
}

#[test]
fn reentry_follows_the_manifest_rule() {
    let mut no_reentry = entry(3);
    no_reentry.reentry = false;
    let mut reentry = entry(4);
    reentry.reentry = true;
    let mut gate = Gate::new().with_manifest(vec![no_reentry, reentry]);
    for (n, expected) in [
        (3, Outcome::Reject(Reason::ReentryDenied)),
        (4, Outcome::Admit),
    ] {
        let text = qr(claims(n));
        assert!(gate.scan(1, &text, Direction::Entry).outcome.is_admit());
        assert!(gate.scan(1, &text, Direction::Exit).outcome.is_admit());
        assert_eq!(gate.scan(1, &text, Direction::Entry).outcome, expected);
    }
}

#[test]
fn exit_gates_let_revoked_and_expired_tickets_out() {
    let mut revoked = entry(5);
    revoked.status = EntryStatus::Revoked;
    let mut gate = Gate::new().with_manifest(vec![revoked]);
    gate.policy.direction = Direction::Exit;
    assert_eq!(gate.decide(&qr(claims(5))).outcome, Outcome::Admit);
    let mut c = claims(6);
    c.window = Some(ValidityWindow {
        not_before: 0,
        not_after: NOW - 3600,
    });
    assert_eq!(gate.decide(&qr(c)).outcome, Outcome::Admit);
    // But a forged credential never opens even an exit gate.
    let stranger = sync_protocol::SecretKey::from_seed([0x55; 32]);
    let forged = Credential::issue(&stranger, claims(7))
        .unwrap()
        .to_qr_text();
    assert_eq!(
        gate.decide(&forged).outcome,
        Outcome::Reject(Reason::UnknownKey)
    );
}

#[test]
fn manifest_zones_override_the_credential() {
    let mut upgraded = entry(8);
    upgraded.zones = 0b11;
    let mut gate = Gate::new().with_manifest(vec![upgraded]);
    gate.policy.zone = Some(1);
    assert_eq!(gate.decide(&qr(claims(8))).outcome, Outcome::Admit);
    assert_eq!(
        gate.decide(&qr(claims(9))).outcome,
        Outcome::Reject(Reason::WrongZone)
    );
}

#[test]
fn validity_window_uses_grace_and_reports_untrusted_time() {
    let mut gate = Gate::new();
    let mut c = claims(10);
    c.window = Some(ValidityWindow {
        not_before: NOW + 30,
        not_after: NOW + 3600,
    });
    let text = qr(c);
    let d = gate.decide(&text);
    assert_eq!(
        d.outcome,
        Outcome::Admit,
        "30 s early is inside the 60 s grace"
    );
    assert!(!d.time_uncertain);
    gate.policy.grace_secs = 0;
    gate.now.trusted = false;
    let d = gate.decide(&text);
    assert_eq!(d.outcome, Outcome::Reject(Reason::NotYetValid));
    assert!(d.time_uncertain, "the gate says its clock is unconfirmed");
}

#[test]
fn expired_key_certificate_is_key_not_valid() {
    let mut gate = Gate::new();
    gate.now.unix_secs = NOW + 31 * 86_400;
    assert_eq!(
        gate.decide(&qr(claims(11))).outcome,
        Outcome::Reject(Reason::KeyNotValid)
    );
}

#[test]
fn newer_generation_than_the_manifest_is_admitted_older_is_superseded() {
    let mut e = entry(12);
    e.generation = 2;
    let gate = Gate::new().with_manifest(vec![e]);
    for (generation, expected) in [
        (1, Outcome::Reject(Reason::Superseded)),
        (2, Outcome::Admit),
        (3, Outcome::Admit),
    ] {
        let mut c = claims(12);
        c.generation = generation;
        assert_eq!(
            gate.decide(&qr(c)).outcome,
            expected,
            "generation {generation}"
        );
    }
}

#[test]
fn junk_naming_another_event_is_a_bad_signature_and_carries_no_ticket() {
    // Issue #17 finding 6: an unsigned credential naming another event was
    // `wrong_event` (checked before the signature) and carried a ticket id,
    // so gates recorded it durably. The signature now comes first.
    let gate = Gate::new();
    let mut c = claims(20);
    c.event_id = "0194f3a0-7c00-7000-8000-0000000000ee".parse().unwrap();
    let mut bytes = Credential::issue(&event_key(), c)
        .unwrap()
        .as_bytes()
        .to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01;
    let junk = format!("TK1:{}", sync_protocol::base45::encode(&bytes));
    let d = gate.decide(&junk);
    assert_eq!(d.outcome, Outcome::Reject(Reason::BadSignature));
    assert_eq!(
        (d.ticket_id, d.event_id),
        (None, None),
        "nothing an unverified credential claims is believed"
    );
    let stranger = sync_protocol::SecretKey::from_seed([0x99; 32]);
    let d = gate.decide(
        &Credential::issue(&stranger, claims(21))
            .unwrap()
            .to_qr_text(),
    );
    assert_eq!(d.outcome, Outcome::Reject(Reason::UnknownKey));
    assert_eq!(d.ticket_id, None);
}

#[test]
fn garbage_is_malformed_and_carries_no_ticket() {
    let gate = Gate::new();
    for text in [
        "",
        "hello",
        "TK1:",
        "TK1:%%%",
        &"TK1:".repeat(200),
        "TK1:AB\u{0}",
    ] {
        let d = gate.decide(text);
        assert_eq!(d.outcome, Outcome::Reject(Reason::Malformed), "{text:?}");
        assert_eq!(d.ticket_id, None);
    }
}

#[test]
fn reason_codes_are_stable_and_round_trip() {
    for r in Reason::ALL {
        assert_eq!(Reason::from_code(r.code()), Some(r));
        assert_eq!(r.as_str().parse::<Reason>(), Ok(r));
        assert_eq!(
            Outcome::from_code(Outcome::Reject(r).code()),
            Some(Outcome::Reject(r))
        );
    }
    assert_eq!(Outcome::from_code(0), Some(Outcome::Admit));
    assert_eq!(Outcome::from_code(200), None);
    let json = serde_json::to_value(Outcome::Reject(Reason::AlreadyInside)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"decision": "reject", "reason": "already_inside"})
    );
}

#[test]
fn an_ended_event_refuses_entries_but_lets_everyone_out() {
    use sync_protocol::manifest::DoorState;
    let mut gate = Gate::new();
    let header = Header {
        event_id: event(),
        version: 1,
        digest: [1; 32],
        issued_at: NOW - 600,
        certs: &[cert()],
    };
    let bytes =
        Manifest::sign_with_door(&event_key(), &header, DoorState::Ended, &mut [entry(1)]).unwrap();
    gate.manifest
        .replace(Manifest::open(&bytes, &ring(), &event()).unwrap())
        .unwrap();
    let text = qr(claims(1));
    let d = gate.decide(&text);
    assert_eq!(d.outcome, Outcome::Reject(Reason::EventClosed));
    assert_eq!(d.door, Some(DoorState::Ended));
    assert_eq!(d.door_news_age_secs, Some(600), "ten minutes old news");
    gate.policy.direction = Direction::Exit;
    assert_eq!(
        gate.decide(&text).outcome,
        Outcome::Admit,
        "exits stay open"
    );
}

#[test]
fn manual_check_in_decides_like_a_scan_without_the_credential() {
    use sync_protocol::decide_listed;
    let mut revoked = entry(6);
    revoked.status = EntryStatus::Revoked;
    let mut other_zone = entry(7);
    other_zone.zones = 0b100;
    let mut gate = Gate::new().with_manifest(vec![entry(5), revoked, other_zone]);
    let manual = |gate: &Gate, n: u8| {
        decide_listed(&ticket(n), &gate.manifest, &gate.log, &gate.policy).outcome
    };
    assert_eq!(manual(&gate, 5), Outcome::Admit);
    assert_eq!(manual(&gate, 6), Outcome::Reject(Reason::Revoked));
    assert_eq!(
        manual(&gate, 9),
        Outcome::Reject(Reason::NotListed),
        "no credential, no listing: nothing vouches for it"
    );
    gate.policy.zone = Some(0);
    assert_eq!(manual(&gate, 7), Outcome::Reject(Reason::WrongZone));
    gate.policy.zone = None;
    let d = decide_listed(&ticket(5), &gate.manifest, &gate.log, &gate.policy);
    assert_eq!(d.display_name.as_deref(), Some("Guest 5"));
    // Once scanned in, a manual check-in of the same ticket is refused too.
    assert!(
        gate.scan(1, &qr(claims(5)), Direction::Entry)
            .outcome
            .is_admit()
    );
    assert_eq!(manual(&gate, 5), Outcome::Reject(Reason::AlreadyInside));
}

#[test]
fn rotated_key_admits_alongside_the_old_one_until_the_root_retires_the_old() {
    let gate = Gate::new();
    let new_key = sync_protocol::SecretKey::from_seed([44; 32]);
    let mut keys = ring();
    keys.insert(root().certify(event(), &new_key.public(), NOW - 3_600, NOW + 86_400))
        .unwrap();
    let old_qr = qr(claims(20));
    let new_qr = Credential::issue(&new_key, claims(21))
        .unwrap()
        .to_qr_text();
    let at = |keys: &sync_protocol::KeyRing, text: &str| {
        decide(
            text,
            keys,
            &gate.manifest,
            &gate.log,
            &gate.policy,
            gate.now,
        )
        .outcome
    };
    assert_eq!(at(&keys, &new_qr), Outcome::Admit, "the new key is trusted");
    assert_eq!(
        at(&keys, &old_qr),
        Outcome::Admit,
        "routine rotation: tickets signed by the old key keep admitting"
    );
    keys.retire(root().retire(event(), event_key().key_id(), NOW))
        .unwrap();
    assert_eq!(
        at(&keys, &old_qr),
        Outcome::Reject(Reason::KeyNotValid),
        "after retirement the old key's credentials are refused"
    );
    assert_eq!(at(&keys, &new_qr), Outcome::Admit);
}
