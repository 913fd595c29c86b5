//! Realistic generated data shared by the benchmarks and the size tests:
//! UUIDv7 ticket ids minted over a month of sales, door-staff display names,
//! scan records from several gates. Deterministic (splitmix64), no `rand`.

#![allow(dead_code)]

use sync_protocol::checkin::{Direction, ScanRecord};
use sync_protocol::manifest::{EntryStatus, ManifestEntry};
use sync_protocol::{EventId, Hlc, NodeId, Outcome, ScanId, TicketId};

#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A UUIDv7 at `ms` with random bits from `rng`.
pub fn uuid_v7(ms: u64, rng: &mut Rng) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..14].copy_from_slice(&rng.next_u64().to_be_bytes());
    b[14..].copy_from_slice(&rng.next_u64().to_be_bytes()[..2]);
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    b
}

const FIRST: [&str; 24] = [
    "Maria", "Jonas", "Aisha", "Lukas", "Sofia", "Mateo", "Emma", "Noah", "Yuki", "Omar", "Lea",
    "Finn", "Chloe", "Ravi", "Ingrid", "Tomas", "Zara", "Pedro", "Mei", "Oscar", "Nora", "Ali",
    "Hannah", "Leon",
];
const LAST: [&str; 24] = [
    "Jensen", "Garcia", "Okafor", "Schmidt", "Rossi", "Novak", "Dubois", "Kowalski", "Tanaka",
    "Haddad", "Larsen", "Silva", "Murphy", "Patel", "Berg", "Horvat", "Ahmed", "Costa", "Chen",
    "Nilsson", "Moreau", "Yilmaz", "Fischer", "Lopez",
];
const TIERS: [&str; 4] = ["GA", "GA", "VIP", "Balcony"];

pub fn event() -> EventId {
    EventId::from_bytes([0x42; 16])
}

/// `n` manifest entries, sorted, ~2% revoked, names like "Maria Jensen · VIP".
pub fn entries(n: usize, seed: u64) -> Vec<ManifestEntry> {
    let mut rng = Rng::new(seed);
    let start_ms = 1_780_000_000_000u64;
    let mut ms = start_ms;
    let mut out: Vec<ManifestEntry> = (0..n)
        .map(|_| {
            ms += rng.below(2 * 30 * 86_400_000 / n as u64 + 1);
            let tier = rng.below(4) as usize;
            ManifestEntry {
                ticket_id: TicketId::from_bytes(uuid_v7(ms, &mut rng)),
                generation: if rng.below(50) == 0 { 1 } else { 0 },
                tier: tier as u16,
                zones: if tier == 2 { 0b11 } else { 0b01 },
                status: if rng.below(50) == 0 {
                    EntryStatus::Revoked
                } else {
                    EntryStatus::Valid
                },
                reentry: tier == 2,
                display_name: format!(
                    "{} {} · {}",
                    FIRST[rng.below(24) as usize],
                    LAST[rng.below(24) as usize],
                    TIERS[tier]
                ),
            }
        })
        .collect();
    out.sort_by_key(|e| e.ticket_id);
    out
}

/// `n` scan records spread over `nodes` gates, tickets drawn from `tickets`.
pub fn scans(n: usize, nodes: u8, tickets: &[TicketId], seed: u64) -> Vec<ScanRecord> {
    let mut rng = Rng::new(seed);
    let mut seqs = vec![0u64; usize::from(nodes)];
    (0..n)
        .map(|i| {
            let g = rng.below(u64::from(nodes)) as usize;
            seqs[g] += 1;
            ScanRecord {
                id: ScanId {
                    node: NodeId::from_bytes([g as u8 + 1; 16]),
                    seq: seqs[g],
                },
                event_id: event(),
                ticket_id: tickets[rng.below(tickets.len() as u64) as usize],
                generation: 0,
                direction: Direction::Entry,
                hlc: Hlc::new(1_790_000_000_000 + i as u64 * 20, 0),
                zone: None,
                outcome: Outcome::Admit,
                gate: format!("Gate {}", g + 1),
                operator: String::new(),
                signature: Default::default(),
            }
        })
        .collect()
}
