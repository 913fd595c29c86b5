//! Criterion benchmarks for the protocol's targets (docs/benchmarks.md):
//! a full decision at most 60 µs; a 100k-ticket manifest at most 3 MB,
//! decoded and verified in at most 500 ms; a one-ticket delta at most 512
//! bytes; merging 100k scan records in at most 100 ms.
//!
//! Record signatures: verifying one signed scan record, and a 1,000-record
//! sync batch one by one and as one ed25519 batch (the roster check peers
//! and the cloud run on every record they receive).
//!
//! `cargo bench -p sync-protocol --bench protocol` (sizes are printed first).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use sync_protocol::checkin::CheckinLog;
use sync_protocol::decision::{GatePolicy, TimeReading};
use sync_protocol::manifest::{Header, ManifestDelta, ManifestState, chain_digest, genesis_digest};
use sync_protocol::roster::{Roster, RosterEntry};
use sync_protocol::{Claims, Credential, KeyRing, Manifest, SecretKey, decide};

#[path = "support/data.rs"]
mod data;

const NOW: u64 = 1_790_000_000;

struct Fixture {
    key: SecretKey,
    ring: KeyRing,
    cert: sync_protocol::KeyCertificate,
}

fn fixture() -> Fixture {
    let root = SecretKey::from_seed([1; 32]);
    let key = SecretKey::from_seed([2; 32]);
    let cert = root.certify(data::event(), &key.public(), 0, u64::MAX);
    let mut ring = KeyRing::new(root.public());
    ring.insert(cert.clone()).unwrap();
    Fixture { key, ring, cert }
}

fn sign_manifest(f: &Fixture, n: usize) -> Vec<u8> {
    let mut entries = data::entries(n, 7);
    let header = Header {
        event_id: data::event(),
        version: n as u64,
        digest: [9; 32],
        issued_at: NOW,
        certs: std::slice::from_ref(&f.cert),
    };
    Manifest::sign(&f.key, &header, &mut entries).unwrap()
}

fn report_sizes(f: &Fixture) {
    let full = sign_manifest(f, 100_000);
    let entry = data::entries(1, 8);
    let d1 = genesis_digest(&data::event());
    let header = Header {
        event_id: data::event(),
        version: 2,
        digest: chain_digest(&d1, 2, &entry),
        issued_at: NOW,
        certs: &[],
    };
    let delta = ManifestDelta::sign(&f.key, &header, 1, &d1, &mut entry.clone()).unwrap();
    let qr = Credential::issue(&f.key, claims(&data::entries(1, 3)[0]))
        .unwrap()
        .to_qr_text();
    eprintln!(
        "sizes: manifest_100k_bytes={} delta_1_bytes={} qr_text_chars={}",
        full.len(),
        delta.len(),
        qr.len()
    );
}

fn claims(e: &sync_protocol::ManifestEntry) -> Claims {
    Claims {
        event_id: data::event(),
        ticket_id: e.ticket_id,
        generation: e.generation,
        tier: e.tier,
        zones: e.zones,
        window: None,
        holder_key: None,
    }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    report_sizes(&f);

    // A gate holding a 100k manifest and 50k scans decides on a listed ticket.
    let manifest_bytes = sign_manifest(&f, 100_000);
    let mut state = ManifestState::empty(data::event());
    state
        .replace(Manifest::open(&manifest_bytes, &f.ring, &data::event()).unwrap())
        .unwrap();
    let entries = data::entries(100_000, 7);
    let tickets: Vec<_> = entries.iter().map(|e| e.ticket_id).collect();
    let mut log = CheckinLog::new(data::event());
    log.apply(data::scans(50_000, 4, &tickets[..50_000], 11))
        .unwrap();
    let valid = entries[99_999..]
        .iter()
        .find(|e| e.status == sync_protocol::manifest::EntryStatus::Valid)
        .unwrap();
    let text = Credential::issue(&f.key, claims(valid))
        .unwrap()
        .to_qr_text();
    let policy = GatePolicy::entry(data::event());
    let now = TimeReading {
        unix_secs: NOW,
        trusted: true,
    };
    assert!(
        decide(&text, &f.ring, &state, &log, &policy, now)
            .outcome
            .is_admit()
    );
    c.bench_function("decide: parse + verify + manifest + check-in lookup", |b| {
        b.iter(|| decide(black_box(&text), &f.ring, &state, &log, &policy, now))
    });

    let mut g = c.benchmark_group("manifest 100k");
    g.sample_size(10);
    g.bench_function("open (decode + verify)", |b| {
        b.iter(|| Manifest::open(black_box(&manifest_bytes), &f.ring, &data::event()).unwrap())
    });
    g.bench_function("sign (encode + deflate + sign)", |b| {
        b.iter_batched(
            || entries.clone(),
            |mut e| {
                let header = Header {
                    event_id: data::event(),
                    version: 1,
                    digest: [0; 32],
                    issued_at: NOW,
                    certs: &[],
                };
                Manifest::sign(&f.key, &header, &mut e).unwrap()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let scans = data::scans(100_000, 4, &tickets, 12);
    let mut g = c.benchmark_group("check-in CRDT");
    g.sample_size(10);
    g.bench_function("merge 100k records into an empty replica", |b| {
        b.iter_batched(
            || scans.clone(),
            |s| {
                let mut log = CheckinLog::new(data::event());
                log.apply(s).unwrap();
                log
            },
            BatchSize::LargeInput,
        )
    });
    let mut half = CheckinLog::new(data::event());
    half.apply(scans[..50_000].iter().cloned()).unwrap();
    let mut full = CheckinLog::new(data::event());
    full.apply(scans.iter().cloned()).unwrap();
    g.bench_function("sync session: 50k held, 100k offered", |b| {
        b.iter_batched(
            || (half.clone(), full.clone()),
            |(mut log, mut other)| {
                let reply = other
                    .sync_receive(log.sync_start(), usize::MAX)
                    .unwrap()
                    .reply
                    .unwrap();
                log.sync_receive(reply, usize::MAX).unwrap();
                log
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // Every record a replica receives is checked against the roster: one
    // signature per record, in one batch per message.
    let devices: Vec<SecretKey> = (1..=4u8)
        .map(|n| SecretKey::from_seed([0x40 + n; 32]))
        .collect();
    let mut batch = data::scans(1_000, 4, &tickets, 13);
    for r in &mut batch {
        r.sign(&devices[usize::from(r.id.node.as_bytes()[0]) - 1]);
    }
    let roster = Roster::from_parts(
        data::event(),
        1,
        [0; 32],
        devices.iter().enumerate().map(|(i, k)| RosterEntry {
            node_id: sync_protocol::NodeId::from_bytes([i as u8 + 1; 16]),
            public_key: k.public(),
            enrolled_at_ms: 0,
            revoked_at_ms: None,
        }),
    );
    roster.check_records(&batch).unwrap();
    let key = devices[usize::from(batch[0].id.node.as_bytes()[0]) - 1].public();
    let mut g = c.benchmark_group("record signatures");
    g.bench_function("verify one record (strict)", |b| {
        b.iter(|| black_box(&batch[0]).verify(&key).unwrap())
    });
    g.sample_size(20);
    g.bench_function("1000 records one by one (strict)", |b| {
        b.iter(|| {
            for r in &batch {
                let k = &roster.entry(&r.id.node).unwrap().public_key;
                r.verify(k).unwrap();
            }
        })
    });
    g.bench_function("1000 records: roster check (batch verify)", |b| {
        b.iter(|| roster.check_records(black_box(&batch)).unwrap())
    });
    g.finish();
}

criterion_group!(protocol, benches);
criterion_main!(protocol);
