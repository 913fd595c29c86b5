//! Attendee search on a 100k-ticket manifest: one query per keystroke as a
//! person types a name, and a pasted ticket id. Target: at most 50 ms per
//! keystroke (docs/benchmarks.md).

use criterion::{Criterion, criterion_group, criterion_main};
use scanner_core::search::SearchIndex;
use std::hint::black_box;
use sync_protocol::manifest::EntryStatus;
use sync_protocol::{ManifestEntry, TicketId};

const TICKETS: u32 = 100_000;
const FIRST: [&str; 8] = [
    "Astrid", "Bo", "Carla", "Dmitri", "Eva", "Farid", "Greta", "Hiro",
];
const LAST: [&str; 8] = [
    "Jensen", "Okafor", "Müller", "Tanaka", "Silva", "Novak", "Haddad", "Berg",
];

fn entries() -> Vec<ManifestEntry> {
    (0..TICKETS)
        .map(|i| {
            let mut id = [0u8; 16];
            id[6] = 0x70;
            id[8] = 0x80;
            id[12..].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            ManifestEntry {
                ticket_id: TicketId::from_bytes(id),
                generation: 0,
                tier: (i % 3) as u16,
                zones: 1,
                status: EntryStatus::Valid,
                reentry: false,
                display_name: format!(
                    "{} {} {}",
                    FIRST[(i % 8) as usize],
                    LAST[((i / 8) % 8) as usize],
                    i
                ),
            }
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let all = entries();
    let id = all[77_777].ticket_id.to_string();
    let index = SearchIndex::build(1, all.clone());
    let mut g = c.benchmark_group("search_100k");
    // What each keystroke of "greta tanaka 4" asks.
    let typed = "greta tanaka 4";
    g.bench_function("typing_a_name_per_keystroke", |b| {
        let prefixes: Vec<&str> = (2..=typed.len()).map(|n| &typed[..n]).collect();
        b.iter(|| {
            for p in &prefixes {
                black_box(index.search(p, 25));
            }
        })
    });
    g.bench_function("worst_keystroke_two_letters", |b| {
        b.iter(|| black_box(index.search("er", 25)))
    });
    g.bench_function("pasted_ticket_id", |b| {
        b.iter(|| black_box(index.search(&id, 25)))
    });
    g.sample_size(10);
    g.bench_function("index_build", |b| {
        b.iter(|| black_box(SearchIndex::build(1, all.clone())))
    });
    g.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
