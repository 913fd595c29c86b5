//! Attendee search at 100k and 1M tickets: one query per keystroke as a
//! person types a name, the worst keystroke (two letters matching a third
//! of the names), a pasted ticket id and an id fragment, and the index
//! build. Beside each, in the same run, the per-ticket pass the index
//! replaced (`str::contains` on one lower-cased string per ticket), which
//! is the usual way to write it. Target: at most 50 ms per keystroke at 1M
//! (docs/benchmarks.md).
//!
//! `cargo bench -p scanner-core --bench search`; `SEARCH_SIZES=100000`
//! picks the sizes (10k without `--bench`: a check, not a figure).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scanner_core::search::SearchIndex;
use std::hint::black_box;
use sync_protocol::manifest::EntryStatus;
use sync_protocol::{ManifestEntry, TicketId};

const FIRST: [&str; 8] = [
    "Astrid", "Bo", "Carla", "Dmitri", "Eva", "Farid", "Greta", "Hiro",
];
const LAST: [&str; 8] = [
    "Jensen", "Okafor", "Müller", "Tanaka", "Silva", "Novak", "Haddad", "Berg",
];

fn entries(n: u32) -> Vec<ManifestEntry> {
    (0..n)
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

/// The per-ticket pass: one haystack string per ticket, every term
/// `contains`-checked in each (what search.rs did before the index).
struct PerTicket {
    items: Vec<(String, ManifestEntry)>,
}

impl PerTicket {
    fn build(mut entries: Vec<ManifestEntry>) -> Self {
        entries.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        let items = entries
            .into_iter()
            .map(|e| {
                let id = e.ticket_id.to_string();
                let hay = format!(
                    "{} {} {}",
                    e.display_name.to_lowercase(),
                    id,
                    id.replace('-', "")
                );
                (hay, e)
            })
            .collect();
        Self { items }
    }

    fn search(&self, query: &str, limit: usize) -> (Vec<&ManifestEntry>, usize) {
        let q = query.trim().to_lowercase();
        let terms: Vec<&str> = q.split_whitespace().collect();
        let (mut hits, mut total) = (Vec::new(), 0);
        for (hay, e) in &self.items {
            if terms.iter().all(|t| hay.contains(t)) {
                total += 1;
                if hits.len() < limit {
                    hits.push(e);
                }
            }
        }
        (hits, total)
    }
}

/// The manifest sizes: `SEARCH_SIZES` (comma-separated), else 100k and 1M
/// when benchmarking, and 10k in the quick check that runs without
/// `--bench` (`cargo test --benches`, scripts/run-doc-commands).
fn sizes() -> Vec<u32> {
    let benching = std::env::args().any(|a| a == "--bench");
    std::env::var("SEARCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if benching {
                vec![100_000, 1_000_000]
            } else {
                vec![10_000]
            }
        })
}

fn search(c: &mut Criterion) {
    let typed = "greta tanaka 4";
    let prefixes: Vec<&str> = (2..=typed.len()).map(|n| &typed[..n]).collect();
    for n in sizes() {
        let all = entries(n);
        let id = all[(n / 2) as usize].ticket_id.to_string();
        let fragment = id.replace('-', "")[20..].to_owned();
        let index = SearchIndex::build(1, all.clone());
        let naive = PerTicket::build(all.clone());
        // Same answers before anything is timed.
        for q in prefixes
            .iter()
            .copied()
            .chain(["er", id.as_str(), &fragment])
        {
            let (a, x) = index.search(q, 25);
            let (b, y) = naive.search(q, 25);
            assert_eq!(x, y, "{q}");
            let ids = |v: Vec<&ManifestEntry>| v.iter().map(|e| e.ticket_id).collect::<Vec<_>>();
            assert_eq!(ids(a), ids(b), "{q}");
        }
        let mut g = c.benchmark_group(format!("search_{n}"));
        g.sample_size(10);
        let cases: [(&str, Vec<&str>); 4] = [
            ("typing_a_name_all_13_keystrokes", prefixes.clone()),
            ("worst_keystroke_two_letters", vec!["er"]),
            ("pasted_ticket_id", vec![id.as_str()]),
            ("id_fragment_12_digits", vec![fragment.as_str()]),
        ];
        for (name, queries) in &cases {
            g.bench_with_input(BenchmarkId::new("index", name), queries, |b, qs| {
                b.iter(|| {
                    for q in qs {
                        black_box(index.search(q, 25));
                    }
                })
            });
            g.bench_with_input(BenchmarkId::new("per_ticket", name), queries, |b, qs| {
                b.iter(|| {
                    for q in qs {
                        black_box(naive.search(q, 25));
                    }
                })
            });
        }
        g.bench_function("index_build", |b| {
            b.iter(|| black_box(SearchIndex::build(1, all.clone())))
        });
        g.finish();
    }
}

criterion_group!(benches, search);
criterion_main!(benches);
