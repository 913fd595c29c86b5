//! Writes valid protocol objects as fuzzing seeds:
//! `cargo run -p sync-protocol --example fuzz_seeds -- sync-protocol/fuzz/corpus`.

use std::path::PathBuf;
use sync_protocol::checkin::{Direction, ScanRecord};
use sync_protocol::manifest::{EntryStatus, Header, ManifestDelta, ManifestEntry};
use sync_protocol::{
    CheckinLog, Claims, Credential, EventId, Hlc, Manifest, NodeId, Outcome, ScanId, SecretKey,
    TicketId, ValidityWindow, sync,
};

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let root = SecretKey::from_seed([0x11; 32]);
    let key = SecretKey::from_seed([0x22; 32]);
    let event = EventId::from_bytes([0x33; 16]);
    let cert = root.certify(event, &key.public(), 0, u64::MAX);
    let claims = Claims {
        event_id: event,
        ticket_id: TicketId::from_bytes([5; 16]),
        generation: 1,
        tier: 2,
        zones: 3,
        window: Some(ValidityWindow {
            not_before: 10,
            not_after: 20,
        }),
        holder_key: Some([9; 32]),
    };
    let cred = Credential::issue(&key, claims).expect("valid claims");
    let entries: Vec<ManifestEntry> = (0..30u8)
        .map(|n| ManifestEntry {
            ticket_id: TicketId::from_bytes([n; 16]),
            generation: u16::from(n % 3),
            tier: 1,
            zones: 1,
            status: if n % 5 == 0 {
                EntryStatus::Revoked
            } else {
                EntryStatus::Valid
            },
            reentry: n % 2 == 0,
            display_name: format!("Guest {n}"),
        })
        .collect();
    let header = Header {
        event_id: event,
        version: 2,
        digest: [1; 32],
        issued_at: 5,
        certs: std::slice::from_ref(&cert),
    };
    let manifest = Manifest::sign(&key, &header, &mut entries.clone()).expect("fits");
    let delta =
        ManifestDelta::sign(&key, &header, 1, &[0; 32], &mut entries[..2].to_vec()).expect("fits");
    let mut log = CheckinLog::new(event);
    for seq in 1..=3 {
        log.insert(ScanRecord {
            id: ScanId {
                node: NodeId::from_bytes([7; 16]),
                seq,
            },
            event_id: event,
            ticket_id: TicketId::from_bytes([seq as u8; 16]),
            generation: 0,
            direction: Direction::Entry,
            hlc: Hlc::new(1000 + seq, 0),
            zone: Some(1),
            outcome: Outcome::Admit,
            gate: "North".into(),
            operator: "ann".into(),
            signature: Default::default(),
        })
        .expect("consistent records");
    }
    let msg = log.sync_push(log.records().cloned().collect()).encode();
    // The entries section alone: header (67) + certificate count (1) + one
    // certificate (139) before it, signer key id and signature (72) after.
    let entries_section = manifest[207..manifest.len() - 72].to_vec();
    let seeds: [(&str, &str, Vec<u8>); 7] = [
        ("manifest", "entries", entries_section),
        ("credential", "bytes", cred.as_bytes().to_vec()),
        ("credential", "text", cred.to_qr_text().into_bytes()),
        ("manifest", "full", manifest),
        ("manifest", "delta", delta),
        ("sync_message", "message", msg.clone()),
        (
            "sync_message",
            "envelope",
            sync::seal(
                &[7; 32],
                &sync::EnvelopeHeader {
                    sender: NodeId::from_bytes([7; 16]),
                    key_version: 1,
                    timestamp_ms: 1_700_000_000_000,
                    nonce: [9; 16],
                },
                &msg,
            ),
        ),
    ];
    for (target, name, bytes) in seeds {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
