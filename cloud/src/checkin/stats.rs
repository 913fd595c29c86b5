//! Check-in figures of an event: counts per gate from SQL, and everything
//! that needs the CRDT's meaning (tickets admitted, inside now, double
//! admissions) from `fold_ticket` over the admitted scans, exactly as the
//! gates fold them.

use super::dto::{CheckinStats, DoubleAdmissionView, GateStats, HourStats};
use crate::error::ApiResult;
use crate::model::{EventId, TicketId, from_millis};
use crate::state::AppState;
use std::collections::{BTreeMap, HashMap};
use sync_protocol::checkin::{TicketState, fold_ticket};
use sync_protocol::{Direction, ScanRecord};

const HOUR_MS: u64 = 3_600_000;

/// The figures of `event`.
pub async fn event_stats(state: &AppState, event: EventId) -> ApiResult<CheckinStats> {
    let gates = state.store.gate_counts(event).await?;
    let admitted = state.store.admitted_scans(event).await?;
    let mut stats = fold_all(event, &admitted);
    // Tickets admitted: the store's one definition of "checked in", the
    // figure `/events/{id}/stats` and `/events/{id}/analytics` report too.
    stats.admitted = u64::try_from(state.store.checked_in(event).await?).unwrap_or(0);
    (stats.conflicting_records, stats.revoked_device_records) =
        state.store.evidence_counts(event).await?;
    stats.admissions = gates.iter().map(|g| g.admitted).sum();
    stats.exits = gates.iter().map(|g| g.exits).sum();
    stats.rejected = gates.iter().map(|g| g.rejected).sum();
    stats.per_gate = gates
        .into_iter()
        .map(|g| GateStats {
            gate: g.gate,
            admitted: g.admitted,
            exits: g.exits,
            rejected: g.rejected,
        })
        .collect();
    Ok(stats)
}

/// The fold-derived figures of a set of admitted scans.
fn fold_all(event: EventId, admitted: &[ScanRecord]) -> CheckinStats {
    let mut by_ticket: HashMap<TicketId, Vec<&ScanRecord>> = HashMap::new();
    let mut hours: BTreeMap<u64, u64> = BTreeMap::new();
    for r in admitted {
        by_ticket.entry(r.ticket_id).or_default().push(r);
        if r.direction == Direction::Entry {
            *hours
                .entry(r.hlc.physical_ms() / HOUR_MS * HOUR_MS)
                .or_default() += 1;
        }
    }
    let mut tickets: Vec<&TicketId> = by_ticket.keys().collect();
    tickets.sort();
    let (mut admitted_tickets, mut inside, mut doubles) = (0, 0, Vec::new());
    for t in tickets {
        let fold = fold_ticket(by_ticket[t].iter().copied());
        if fold.entries > 0 {
            admitted_tickets += 1;
        }
        if matches!(fold.state, TicketState::Inside { .. }) {
            inside += 1;
        }
        doubles.extend(fold.double_admissions.iter().map(DoubleAdmissionView::from));
    }
    CheckinStats {
        event_id: event,
        admitted: admitted_tickets,
        admissions: 0,
        exits: 0,
        rejected: 0,
        inside_now: inside,
        per_gate: Vec::new(),
        per_hour: hours
            .into_iter()
            .map(|(h, n)| HourStats {
                hour: from_millis(h.min(i64::MAX as u64) as i64),
                admitted: n,
            })
            .collect(),
        double_admissions: doubles,
        conflicting_records: 0,
        revoked_device_records: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_protocol::{Hlc, NodeId, Outcome, ScanId};

    fn scan(node: u8, ticket: u8, hlc_ms: u64, direction: Direction) -> ScanRecord {
        ScanRecord {
            id: ScanId {
                node: NodeId::from_bytes([node; 16]),
                seq: hlc_ms,
            },
            event_id: EventId::from_bytes([9; 16]),
            ticket_id: TicketId::from_bytes([ticket; 16]),
            generation: 0,
            direction,
            hlc: Hlc::new(hlc_ms, 0),
            zone: None,
            outcome: Outcome::Admit,
            gate: String::new(),
            operator: String::new(),
            signature: Default::default(),
        }
    }

    #[test]
    fn partition_double_admission_and_exits_are_folded_like_the_gates() {
        let e = EventId::from_bytes([9; 16]);
        let scans = [
            scan(1, 1, 1_000, Direction::Entry),
            scan(2, 1, 2_000, Direction::Entry), // gate B, partitioned from A
            scan(1, 2, 3_000, Direction::Entry),
            scan(1, 2, HOUR_MS + 5, Direction::Exit),
        ];
        let s = fold_all(e, &scans);
        assert_eq!(s.admitted, 2, "two tickets were let in");
        assert_eq!(s.inside_now, 1, "ticket 2 left");
        assert_eq!(s.double_admissions.len(), 1, "ticket 1 was admitted twice");
        assert_eq!(s.per_hour.len(), 1, "exits are not admissions");
        assert_eq!(s.per_hour[0].admitted, 3);
    }
}
