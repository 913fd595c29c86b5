//! Attendee search over the local manifest: by name or ticket id, every
//! query term a substring (case-insensitive), no network.
//!
//! The index of one manifest version is one contiguous text: each ticket's
//! lower-cased name and its id (with and without dashes) on a line of its
//! own, in name order, plus the ticket ids sorted as 128-bit numbers. A
//! query is answered by a SIMD substring search (`memchr::memmem`) over that
//! text for its longest term; each hit names its line, whose other terms are
//! checked in that line only, and the search goes on from the next line. A
//! query that is (the start of) a ticket id, at least [`MIN_ID_PREFIX`] hex
//! digits with or without dashes, is answered from the sorted ids by binary
//! search: a pasted full id is one lookup, a typed id prefix one range.
//! Figures (100k and 1M tickets, against the per-ticket pass it replaced)
//! in docs/benchmarks.md (`benches/search.rs`).

use memchr::memmem::Finder;
use sync_protocol::manifest::EntryStatus;
use sync_protocol::{ManifestEntry, TicketId};

/// The index of one manifest version.
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    version: u64,
    /// The tickets, in name order.
    entries: Vec<ManifestEntry>,
    /// Every ticket's haystack followed by `\n`, in the order of `entries`.
    text: Vec<u8>,
    /// Where each ticket's haystack starts in `text`, plus its end.
    starts: Vec<usize>,
    /// `(ticket id as a big-endian u128, index into entries)`, sorted: the
    /// numeric order of the ids is the order of their hex spelling.
    by_id: Vec<(u128, u32)>,
    /// Valid (not revoked) tickets.
    valid: usize,
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

/// Appends one ticket's haystack line: the lower-cased name (line breaks
/// and other control characters as spaces, so no term spans two tickets),
/// the id with dashes and the id without.
fn push_haystack(text: &mut Vec<u8>, entry: &ManifestEntry) {
    for c in entry.display_name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_control() { ' ' } else { c };
        let mut buf = [0u8; 4];
        text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    let id = entry.ticket_id.to_string();
    text.push(b' ');
    text.extend_from_slice(id.as_bytes());
    text.push(b' ');
    text.extend(id.bytes().filter(|b| *b != b'-'));
    text.push(b'\n');
}

impl SearchIndex {
    /// Indexes `entries` of manifest `version`, sorted by name.
    pub fn build(version: u64, mut entries: Vec<ManifestEntry>) -> Self {
        entries.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        let mut text = Vec::with_capacity(entries.len() * 96);
        let mut starts = Vec::with_capacity(entries.len() + 1);
        for entry in &entries {
            starts.push(text.len());
            push_haystack(&mut text, entry);
        }
        starts.push(text.len());
        let mut by_id: Vec<(u128, u32)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (u128::from_be_bytes(*e.ticket_id.as_bytes()), i as u32))
            .collect();
        by_id.sort_unstable();
        let valid = entries
            .iter()
            .filter(|e| e.status == EntryStatus::Valid)
            .count();
        Self {
            version,
            valid,
            entries,
            text,
            starts,
            by_id,
        }
    }

    /// The manifest version indexed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of tickets indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Ticket `i`'s haystack, without its line break.
    fn haystack(&self, i: usize) -> &[u8] {
        &self.text[self.starts[i]..self.starts[i + 1] - 1]
    }

    /// The first `limit` entries matching every term of `query`, and how
    /// many match in all. Queries shorter than [`MIN_QUERY`] match nothing.
    pub fn search(&self, query: &str, limit: usize) -> (Vec<&ManifestEntry>, usize) {
        let q = query.trim().to_lowercase();
        if q.chars().count() < MIN_QUERY {
            return (Vec::new(), 0);
        }
        let mut terms: Vec<&str> = q.split_whitespace().collect();
        if let [term] = terms.as_slice()
            && let Some(found) = self.by_id_prefix(term, limit)
        {
            return found;
        }
        // The longest term leads (the rarest, as a rule); a term inside
        // another adds nothing.
        terms.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        terms.dedup();
        let lead = Finder::new(terms[0].as_bytes());
        let rest: Vec<Finder<'_>> = terms[1..]
            .iter()
            .filter(|t| !terms[0].contains(**t))
            .map(|t| Finder::new(t.as_bytes()))
            .collect();
        let mut hits = Vec::new();
        let (mut total, mut line, mut at) = (0, 0, 0);
        while let Some(found) = lead.find(&self.text[at..]) {
            let pos = at + found;
            // Lines are walked forwards, never searched: hits only move on.
            while self.starts[line + 1] <= pos {
                line += 1;
            }
            let hay = self.haystack(line);
            if rest.iter().all(|f| f.find(hay).is_some()) {
                total += 1;
                if hits.len() < limit {
                    hits.push(&self.entries[line]);
                }
            }
            line += 1;
            at = self.starts[line];
        }
        (hits, total)
    }

    /// The tickets whose id starts with `term` (hex digits, dashes
    /// ignored), sorted by name, or `None` when `term` is no id prefix or
    /// starts no ticket id (then the text search decides).
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
        idx.sort_unstable(); // entries are in name order
        idx.truncate(limit);
        Some((
            idx.into_iter().map(|i| &self.entries[i as usize]).collect(),
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
            .map(|(_, i)| &self.entries[*i as usize])
    }

    /// Valid (not revoked) tickets: the event's capacity at the door.
    pub fn valid(&self) -> usize {
        self.valid
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
                let expect: Vec<TicketId> = (0..ix.len())
                    .filter(|i| String::from_utf8_lossy(ix.haystack(*i)).contains(q))
                    .map(|i| ix.entries[i].ticket_id)
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

    /// What a query matches by definition: every term a substring of the
    /// lower-cased name or of the id with or without dashes.
    fn brute_force(entries: &[ManifestEntry], query: &str) -> Vec<TicketId> {
        let q = query.trim().to_lowercase();
        let terms: Vec<&str> = q.split_whitespace().collect();
        let mut sorted = entries.to_vec();
        sorted.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        sorted
            .iter()
            .filter(|e| {
                let id = e.ticket_id.to_string();
                let hay = format!(
                    "{} {} {}",
                    e.display_name.to_lowercase(),
                    id,
                    id.replace('-', "")
                );
                terms.iter().all(|t| hay.contains(t))
            })
            .map(|e| e.ticket_id)
            .collect()
    }

    #[test]
    fn every_query_finds_what_the_definition_says() {
        let f = EventFixture::new(3, 0);
        let mut entries: Vec<ManifestEntry> = (0..300).map(|i| f.entry(i)).collect();
        let names = [
            "Astrid Jensen",
            "Jens Astrup",
            "Müller Ölund",
            "ÅSA BERG",
            "anna anna",
            "Bo\nJensen",
            "Guest 12",
            "Ng",
            "",
        ];
        for (i, e) in entries.iter_mut().enumerate() {
            if i % 3 == 0 {
                e.display_name = format!("{} {i}", names[i % names.len()]);
            }
        }
        let ix = SearchIndex::build(1, entries.clone());
        let id = f.ticket(42).to_string();
        let queries = [
            "je",
            "jens",
            "jens astr",
            "astr jens",
            "an",
            "anna",
            "anna anna",
            "nn an",
            "müller",
            "MÜLLER öl",
            "åsa",
            "berg 3",
            "12",
            "guest 1",
            "ng",
            "bo jensen",
            "o\nj",
            "e 1 1",
            &id[..4],
            &id[9..13],
            &id[24..],
            "-4",
            "zz",
            "7 7 7",
        ];
        for q in queries {
            let want = brute_force(&entries, q);
            let (hits, total) = ix.search(q, 1_000);
            if q.trim().chars().count() < MIN_QUERY {
                assert_eq!(total, 0, "{q:?}");
                continue;
            }
            assert_eq!(total, want.len(), "{q:?}");
            assert_eq!(
                hits.iter().map(|e| e.ticket_id).collect::<Vec<_>>(),
                want,
                "{q:?}"
            );
            let (few, total) = ix.search(q, 3);
            assert_eq!(total, want.len(), "{q:?} with a limit");
            assert_eq!(few.len(), want.len().min(3), "{q:?} with a limit");
        }
    }

    #[test]
    fn a_term_never_spans_two_tickets() {
        let f = EventFixture::new(3, 0);
        let mut a = f.entry(0);
        a.display_name = "Ada\nLovelace".into();
        let mut b = f.entry(1);
        b.display_name = "zed".into();
        let ix = SearchIndex::build(1, vec![a, b]);
        // "ada" is first in name order; its line ends in its id, the next
        // line starts with "zed": no hit across the line break.
        let tail = f.ticket(0).to_string().replace('-', "");
        assert_eq!(ix.search(&format!("{}zed", &tail[28..]), 10).1, 0);
        assert_eq!(
            ix.search("ada lovelace", 10).1,
            1,
            "a line break in a name is a space"
        );
    }

    #[test]
    fn short_queries_match_nothing_and_limit_caps_hits() {
        let ix = index();
        assert_eq!(ix.search("g", 10).1, 0);
        let (hits, total) = ix.search("guest", 5);
        assert_eq!((hits.len(), total), (5, 48));
    }
}
