//! `tests/vectors/credentials.json`: checked-in vectors that any
//! implementation can reproduce. Each is checked here from the JSON alone;
//! a second test regenerates them from fixed seeds and compares, so the file
//! cannot drift from the code (`REGENERATE_VECTORS=1` rewrites it).

use crate::common::*;
use serde::{Deserialize, Serialize};
use sync_protocol::checkin::CheckinLog;
use sync_protocol::decision::{GatePolicy, TimeReading};
use sync_protocol::manifest::{EntryStatus, ManifestEntry, ManifestState};
use sync_protocol::{
    Credential, KeyCertificate, KeyRing, PublicKey, SecretKey, TicketId, ValidityWindow, decide,
};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/credentials.json"
);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vector {
    description: String,
    /// The event signing key the credential must verify under.
    public_key_hex: String,
    /// Organizer root key, and the certificate binding `public_key_hex` to the event.
    root_public_key_hex: String,
    key_certificate_hex: String,
    event_id: String,
    /// Gate's clock, unix seconds (trusted); validity windows use a 60 s grace.
    now_unix: u64,
    /// Gate's zone, or null for any zone.
    gate_zone: Option<u8>,
    /// Manifest entries that are revoked.
    revoked_ticket_ids: Vec<String>,
    /// Manifest entries with a newer generation than 0: `[ticket id, generation]`.
    superseded: Vec<(String, u16)>,
    qr_text: String,
    expected: String,
    reason: Option<String>,
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Decides a vector using nothing but its JSON fields.
fn run(v: &Vector) -> (String, Option<String>) {
    let root = PublicKey::from_bytes(&hex32(&v.root_public_key_hex)).unwrap();
    let cert = KeyCertificate::decode(&hex::decode(&v.key_certificate_hex).unwrap()).unwrap();
    assert_eq!(
        hex::encode(cert.public_key.to_bytes()),
        v.public_key_hex,
        "{}: certificate must certify public_key_hex",
        v.description
    );
    let mut ring = KeyRing::new(root);
    ring.insert(cert).unwrap();
    let event = v.event_id.parse().unwrap();
    let mut manifest = ManifestState::empty(event);
    let mut entries: Vec<ManifestEntry> = Vec::new();
    let mut push = |id: &str, status, generation| {
        entries.push(ManifestEntry {
            ticket_id: id.parse::<TicketId>().unwrap(),
            generation,
            tier: 1,
            zones: 1,
            status,
            reentry: false,
            display_name: "Vector guest".into(),
        })
    };
    for id in &v.revoked_ticket_ids {
        push(id, EntryStatus::Revoked, 0);
    }
    for (id, generation) in &v.superseded {
        push(id, EntryStatus::Valid, *generation);
    }
    // Build the state by signing a manifest with a throwaway certified key.
    let signer = SecretKey::from_seed([0x99; 32]);
    let test_root = SecretKey::from_seed([0x98; 32]);
    let signer_cert = test_root.certify(event, &signer.public(), 0, u64::MAX);
    let header = sync_protocol::manifest::Header {
        event_id: event,
        version: 1,
        digest: [7; 32],
        issued_at: v.now_unix,
        certs: std::slice::from_ref(&signer_cert),
    };
    let bytes = sync_protocol::Manifest::sign(&signer, &header, &mut entries).unwrap();
    let m =
        sync_protocol::Manifest::open(&bytes, &KeyRing::new(test_root.public()), &event).unwrap();
    manifest.replace(m).unwrap();

    let mut policy = GatePolicy::entry(event);
    policy.zone = v.gate_zone;
    let d = decide(
        &v.qr_text,
        &ring,
        &manifest,
        &CheckinLog::new(event),
        &policy,
        TimeReading {
            unix_secs: v.now_unix,
            trusted: true,
        },
    );
    let expected = if d.outcome.is_admit() {
        "admit"
    } else {
        "reject"
    };
    (
        expected.to_string(),
        d.outcome.reason().map(|r| r.as_str().to_string()),
    )
}

fn vector(description: &str, qr_text: String) -> Vector {
    Vector {
        description: description.into(),
        public_key_hex: hex::encode(event_key().public().to_bytes()),
        root_public_key_hex: hex::encode(root().public().to_bytes()),
        key_certificate_hex: hex::encode(cert().encode()),
        event_id: event().to_string(),
        now_unix: NOW,
        gate_zone: None,
        revoked_ticket_ids: vec![],
        superseded: vec![],
        qr_text,
        expected: String::new(),
        reason: None,
    }
}

fn issue(claims: sync_protocol::Claims) -> String {
    Credential::issue(&event_key(), claims)
        .unwrap()
        .to_qr_text()
}

fn window(from: i64, to: i64) -> Option<ValidityWindow> {
    Some(ValidityWindow {
        not_before: (NOW as i64 + from) as u64,
        not_after: (NOW as i64 + to) as u64,
    })
}

fn generate() -> Vec<Vector> {
    let mut out = Vec::new();
    out.push(vector("valid, no validity window", issue(claims(1))));
    let mut c = claims(2);
    c.window = window(-3600, 3600);
    out.push(vector("valid, inside its validity window", issue(c)));
    let mut c = claims(3);
    c.holder_key = Some([0x33; 32]);
    c.window = window(-3600, 3600);
    out.push(vector("valid, with window and holder key", issue(c)));
    let mut c = claims(4);
    c.window = window(-7200, -3600);
    out.push(vector("expired an hour ago", issue(c)));
    let mut c = claims(5);
    c.window = window(3600, 7200);
    out.push(vector("not valid for another hour", issue(c)));
    let mut v = vector("revoked in the manifest (refunded)", issue(claims(6)));
    v.revoked_ticket_ids.push(ticket(6).to_string());
    out.push(v);
    let mut v = vector(
        "generation 0 after a transfer issued generation 1",
        issue(claims(7)),
    );
    v.superseded.push((ticket(7).to_string(), 1));
    out.push(v);

    // Tampering: flip one byte of the ticket id inside the signed bytes.
    let cred = Credential::issue(&event_key(), claims(8)).unwrap();
    let mut bytes = cred.as_bytes().to_vec();
    bytes[40] ^= 0x01;
    out.push(vector(
        "tampered: one byte of the ticket id flipped",
        format!("TK1:{}", sync_protocol::base45::encode(&bytes)),
    ));
    let mut bytes = cred.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    out.push(vector(
        "tampered: last signature byte flipped",
        format!("TK1:{}", sync_protocol::base45::encode(&bytes)),
    ));
    // Signed by a key nobody certified.
    let stranger = SecretKey::from_seed([0x44; 32]);
    out.push(vector(
        "signed by an uncertified key",
        Credential::issue(&stranger, claims(9))
            .unwrap()
            .to_qr_text(),
    ));
    // Signed by a stranger but claiming the certified key's id.
    let forged = Credential::issue(&stranger, claims(10)).unwrap();
    let mut bytes = forged.as_bytes().to_vec();
    bytes[4..12].copy_from_slice(&event_key().key_id().0);
    out.push(vector(
        "wrong key: certified key id, signature by another key",
        format!("TK1:{}", sync_protocol::base45::encode(&bytes)),
    ));
    let mut c = claims(11);
    c.event_id = "0194f3a0-7c00-7000-8000-0000000000ff".parse().unwrap();
    out.push(vector("ticket for another event", issue(c)));
    let mut c = claims(12);
    c.zones = 0b10;
    let mut v = vector("zone 1 ticket at a zone 0 gate", issue(c));
    v.gate_zone = Some(0);
    out.push(v);
    out.push(vector(
        "malformed: not base45",
        "TK1:hello world".to_string(),
    ));
    out.push(vector(
        "malformed: wrong prefix",
        issue(claims(13)).replacen("TK1:", "TK9:", 1),
    ));
    let text = issue(claims(14));
    out.push(vector(
        "malformed: truncated",
        text[..text.len() - 3].to_string(),
    ));
    for v in &mut out {
        let (expected, reason) = run(v);
        v.expected = expected;
        v.reason = reason;
    }
    out
}

#[test]
fn every_checked_in_vector_decides_as_recorded() {
    let text = std::fs::read_to_string(PATH).expect("tests/vectors/credentials.json exists");
    let vectors: Vec<Vector> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() >= 10, "vectors cover the required cases");
    for v in &vectors {
        let (expected, reason) = run(v);
        assert_eq!(
            (expected.as_str(), reason.as_deref()),
            (v.expected.as_str(), v.reason.as_deref()),
            "vector {:?}",
            v.description
        );
    }
    let reasons: Vec<_> = vectors.iter().filter_map(|v| v.reason.as_deref()).collect();
    for required in [
        "bad_signature",
        "unknown_key",
        "expired",
        "revoked",
        "malformed",
    ] {
        assert!(reasons.contains(&required), "vectors cover {required}");
    }
    assert!(vectors.iter().any(|v| v.expected == "admit"));
}

#[test]
fn checked_in_vectors_match_the_generator() {
    let generated = generate();
    let json = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    if std::env::var_os("REGENERATE_VECTORS").is_some() {
        std::fs::write(PATH, &json).unwrap();
    }
    let on_disk = std::fs::read_to_string(PATH).expect("tests/vectors/credentials.json exists");
    assert_eq!(
        on_disk, json,
        "credentials.json is stale: run REGENERATE_VECTORS=1 cargo test -p sync-protocol"
    );
}

#[test]
fn an_independent_python_implementation_agrees() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/verify_vectors.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(PATH)
        .output()
        .expect("python3 runs (scripts/setup installs the `cryptography` package it needs)");
    assert!(
        out.status.success(),
        "verify_vectors.py disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
