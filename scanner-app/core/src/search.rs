//! Attendee search over the local manifest: by name or ticket id, every
//! query term a substring (case-insensitive), no network.
//!
//! The index is a flat list of lower-cased haystacks rebuilt when the
//! manifest version changes, plus the ticket ids sorted as 128-bit numbers.
//! A query that is (the start of) a ticket id, at least [`MIN_ID_PREFIX`]
//! hex digits with or without dashes, is answered from the sorted ids by
//! binary search: a pasted full id is one lookup, a typed id prefix one
//! range. Anything else, and an id fragment that starts no ticket id (say
//! its last 12 digits), is one linear pass over the haystacks. Figures in
//! docs/benchmarks.md (`benches/search.rs`).

use sync_protocol::manifest::EntryStatus;
use sync_protocol::{ManifestEntry, TicketId};

/// One searchable ticket.
#[derive(Clone, Debug)]
struct Item {
    haystack: String,
    entry: ManifestEntry,
}

/// The index of one manifest version.
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    version: u64,
    items: Vec<Item>,
    /// `(ticket id as a big-endian u128, index into items)`, sorted: the
    /// numeric order of the ids is the order of their hex spelling.
    by_id: Vec<(u128, u32)>,
}

/// Hex digits from which a query that could start a ticket id is looked up
/// in the sorted ids first.
pub const MIN_ID_PREFIX: usize = 8;

/// The query as the start of a ticket id: `(digits, value)` of its hex
/// digits, dashes dropped, when it is one term of [`MIN_ID_PREFIX`] to 32
/// hex digits.
fn id_prefix(q: &str) -> Option<(u32, u128)> {
    let hex: String = q.chars().filter(|c| *c != '-').collect();
    let n = hex.len();
    if !(MIN_ID_PREFIX..=32).contains(&n) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u128::from_str_radix(&hex, 16).ok()?;
    Some((n as u32, v))
}

/// Shortest query searched (one character would match nearly everyone).
pub const MIN_QUERY: usize = 2;

impl SearchIndex {
    /// Indexes `entries` of manifest `version`, sorted by name.
    pub fn build(version: u64, entries: Vec<ManifestEntry>) -> Self {
        let mut items: Vec<Item> = entries
            .into_iter()
            .map(|entry| {
                let id = entry.ticket_id.to_string();
                let haystack = format!(
                    "{} {} {}",
                    entry.display_name.to_lowercase(),
                    id,
                    id.replace('-', "")
                );
                Item { haystack, entry }
            })
            .collect();
        items.sort_by(|a, b| a.entry.display_name.cmp(&b.entry.display_name));
        let mut by_id: Vec<(u128, u32)> = items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                (
                    u128::from_be_bytes(*it.entry.ticket_id.as_bytes()),
                    i as u32,
                )
            })
            .collect();
        by_id.sort_unstable();
        Self {
            version,
            items,
            by_id,
        }
    }

    /// The manifest version indexed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of tickets indexed.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The first `limit` entries matching every term of `query`, and how
    /// many match in all. Queries shorter than [`MIN_QUERY`] match nothing.
    pub fn search(&self, query: &str, limit: usize) -> (Vec<&ManifestEntry>, usize) {
        let q = query.trim().to_lowercase();
        if q.chars().count() < MIN_QUERY {
            return (Vec::new(), 0);
        }
        let terms: Vec<&str> = q.split_whitespace().collect();
        if let [term] = terms.as_slice()
            && let Some(found) = self.by_id_prefix(term, limit)
        {
            return found;
        }
        let mut hits = Vec::new();
        let mut total = 0;
        for item in &self.items {
            if terms.iter().all(|t| item.haystack.contains(t)) {
                total += 1;
                if hits.len() < limit {
                    hits.push(&item.entry);
                }
            }
        }
        (hits, total)
    }

    /// The tickets whose id starts with `term` (hex digits, dashes
    /// ignored), sorted by name, or `None` when `term` is no id prefix or
    /// starts no ticket id (then the linear pass decides).
    fn by_id_prefix(&self, term: &str, limit: usize) -> Option<(Vec<&ManifestEntry>, usize)> {
        let (digits, value) = id_prefix(term)?;
        let shift = 4 * (32 - digits);
        let low = value.checked_shl(shift).unwrap_or(0);
        let high = low
            | if shift == 128 {
                u128::MAX
            } else {
                (1u128 << shift) - 1
            };
        let from = self.by_id.partition_point(|(id, _)| *id < low);
        let to = self.by_id.partition_point(|(id, _)| *id <= high);
        if from == to {
            return None;
        }
        let mut idx: Vec<u32> = self.by_id[from..to].iter().map(|(_, i)| *i).collect();
        let total = idx.len();
        idx.sort_unstable(); // items are in name order
        idx.truncate(limit);
        Some((
            idx.into_iter()
                .map(|i| &self.items[i as usize].entry)
                .collect(),
            total,
        ))
    }

    /// One entry by ticket id (binary search in the sorted ids).
    pub fn get(&self, ticket: &TicketId) -> Option<&ManifestEntry> {
        let key = u128::from_be_bytes(*ticket.as_bytes());
        let at = self.by_id.partition_point(|(id, _)| *id < key);
        self.by_id
            .get(at)
            .filter(|(id, _)| *id == key)
            .map(|(_, i)| &self.items[*i as usize].entry)
    }

    /// Valid (not revoked) tickets: the event's capacity at the door.
    pub fn valid(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.entry.status == EntryStatus::Valid)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_node::fixture::EventFixture;

    fn index() -> SearchIndex {
        let f = EventFixture::new(3, 0);
        let mut entries: Vec<ManifestEntry> = (0..50).map(|i| f.entry(i)).collect();
        entries[7].display_name = "Astrid Jensen, VIP".into();
        entries[9].display_name = "Jens Astrup".into();
        SearchIndex::build(4, entries)
    }

    #[test]
    fn finds_by_name_any_case_every_term() {
        let ix = index();
        let (hits, total) = ix.search("JENS", 10);
        assert_eq!(total, 2, "both Jensen and Jens match 'jens'");
        assert_eq!(hits[0].display_name, "Astrid Jensen, VIP", "sorted by name");
        let (hits, total) = ix.search("astrid vip", 10);
        assert_eq!(
            (total, hits[0].display_name.as_str()),
            (1, "Astrid Jensen, VIP")
        );
    }

    #[test]
    fn finds_by_ticket_id_with_or_without_dashes() {
        let ix = index();
        let f = EventFixture::new(3, 0);
        let id = f.ticket(12).to_string();
        let (hits, total) = ix.search(&id, 10);
        assert_eq!((total, hits[0].ticket_id), (1, f.ticket(12)));
        let simple = id.replace('-', "");
        let (_, total) = ix.search(&simple[simple.len() - 12..].to_uppercase(), 10);
        assert_eq!(total, 1, "a pasted id without dashes matches too");
    }

    #[test]
    fn an_id_prefix_is_looked_up_and_a_fragment_still_scanned() {
        let ix = index();
        let f = EventFixture::new(3, 0);
        for i in [0, 12, 49] {
            let id = f.ticket(i).to_string();
            let (hits, total) = ix.search(&id.to_uppercase(), 10);
            assert_eq!((total, hits[0].ticket_id), (1, f.ticket(i)), "{id}");
            assert_eq!(ix.get(&f.ticket(i)).map(|e| e.ticket_id), Some(f.ticket(i)));
            // Every prefix from 8 digits on finds the same tickets as the
            // linear pass would (compare with a brute-force filter).
            let simple = id.replace('-', "");
            for n in [8, 13, 20, 31] {
                let q = &simple[..n];
                let (hits, total) = ix.search(q, 100);
                let expect: Vec<TicketId> = ix
                    .items
                    .iter()
                    .filter(|it| it.haystack.contains(q))
                    .map(|it| it.entry.ticket_id)
                    .collect();
                assert_eq!(total, expect.len(), "{q}");
                assert_eq!(
                    hits.iter().map(|e| e.ticket_id).collect::<Vec<_>>(),
                    expect,
                    "{q}"
                );
            }
        }
        let missing = TicketId::from_bytes([0xab; 16]);
        assert!(ix.get(&missing).is_none());
        assert_eq!(ix.search(&missing.to_string(), 10).1, 0);
        assert_eq!(ix.search("abababab", 10).1, 0, "no prefix, no substring");
    }

    #[test]
    fn short_queries_match_nothing_and_limit_caps_hits() {
        let ix = index();
        assert_eq!(ix.search("g", 10).1, 0);
        let (hits, total) = ix.search("guest", 5);
        assert_eq!((hits.len(), total), (5, 48));
    }
}
