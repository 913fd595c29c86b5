//! Fixtures: fixed keys (so test vectors are reproducible) and builders.

use sync_protocol::checkin::{Direction, ScanRecord};
use sync_protocol::{
    Claims, EventId, Hlc, KeyCertificate, KeyRing, NodeId, Outcome, ScanId, SecretKey, TicketId,
};

pub const NOW: u64 = 1_790_000_000;

pub fn root() -> SecretKey {
    SecretKey::from_seed([0x11; 32])
}

pub fn event_key() -> SecretKey {
    SecretKey::from_seed([0x22; 32])
}

pub fn event() -> EventId {
    "0194f3a0-7c00-7000-8000-000000000001".parse().unwrap()
}

pub fn ticket(n: u8) -> TicketId {
    TicketId::from_bytes([
        0x01, 0x94, 0xf3, 0xa1, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, n,
    ])
}

pub fn cert() -> KeyCertificate {
    root().certify(
        event(),
        &event_key().public(),
        NOW - 86_400,
        NOW + 30 * 86_400,
    )
}

pub fn ring() -> KeyRing {
    let mut ring = KeyRing::new(root().public());
    ring.insert(cert()).unwrap();
    ring
}

pub fn claims(n: u8) -> Claims {
    Claims {
        event_id: event(),
        ticket_id: ticket(n),
        generation: 0,
        tier: 1,
        zones: 0b1,
        window: None,
        holder_key: None,
    }
}

pub fn node(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

pub fn scan(node_n: u8, seq: u64, ticket_n: u8, direction: Direction, hlc: u64) -> ScanRecord {
    ScanRecord {
        id: ScanId {
            node: node(node_n),
            seq,
        },
        event_id: event(),
        ticket_id: ticket(ticket_n),
        generation: 0,
        direction,
        hlc: Hlc(hlc),
        zone: None,
        outcome: Outcome::Admit,
        gate: format!("gate {node_n}"),
        operator: String::new(),
        signature: Default::default(),
    }
}
