//! Attendee search over the local manifest: by name or ticket id, every
//! query term a substring (case-insensitive), no network.
//!
//! The index is a flat list of lower-cased haystacks rebuilt when the
//! manifest version changes; a query is one linear pass (100k tickets take a
//! few milliseconds, see `benches/search.rs`), so typing never waits.

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
        Self { version, items }
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

    /// One entry by ticket id.
    pub fn get(&self, ticket: &TicketId) -> Option<&ManifestEntry> {
        self.items
            .iter()
            .find(|i| i.entry.ticket_id == *ticket)
            .map(|i| &i.entry)
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
    fn short_queries_match_nothing_and_limit_caps_hits() {
        let ix = index();
        assert_eq!(ix.search("g", 10).1, 0);
        let (hits, total) = ix.search("guest", 5);
        assert_eq!((hits.len(), total), (5, 48));
    }
}
