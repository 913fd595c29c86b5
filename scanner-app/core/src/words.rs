//! Decisions in words for the result screen: the reason a person reads at
//! arm's length, with the time and gate of an earlier entry where it
//! matters ("Already inside since 20:14, Gate B").

use crate::view::{ScanView, Verdict};
use gate_node::engine::ScanReport;
use gate_node::store::Store;
use sync_protocol::{Direction, Reason, ScanRecord, TicketId, TicketState};
use time::{OffsetDateTime, UtcOffset};

/// `HH:MM` of a unix-ms time in `offset`.
pub fn clock_time(ms: u64, offset: UtcOffset) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// Where and when a ticket was last let in or out, from the check-in log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    /// Inside (last admitted scan an entry) or outside.
    pub inside: bool,
    /// `HH:MM` of that scan.
    pub at: String,
    /// The gate label of that scan.
    pub gate: String,
}

/// The ticket's last admitted scan, if any.
pub fn presence(
    store: &Store,
    ticket: &TicketId,
    offset: UtcOffset,
) -> Result<Option<Presence>, gate_node::store::StoreError> {
    let (scan, inside) = match store.ticket_fold(ticket)?.state {
        TicketState::NeverSeen => return Ok(None),
        TicketState::Inside { scan, .. } => (scan, true),
        TicketState::Outside { scan, .. } => (scan, false),
    };
    let record: Option<ScanRecord> = store.record(&scan)?;
    Ok(record.map(|r| Presence {
        inside,
        at: clock_time(r.hlc.physical_ms(), offset),
        gate: r.gate,
    }))
}

fn gate_name(gate: &str) -> String {
    if gate.is_empty() {
        "another device".into()
    } else {
        gate.to_owned()
    }
}

/// The reason in words.
pub fn reason_words(reason: Reason, presence: Option<&Presence>) -> String {
    match reason {
        Reason::Malformed => "Not a ticket code: scan the QR code on the ticket".into(),
        Reason::BadSignature => "Forged or damaged code: the signature does not match".into(),
        Reason::UnknownKey => {
            "Not signed by this event: forged, or a ticket for another event".into()
        }
        Reason::WrongEvent => "Ticket for another event".into(),
        Reason::Revoked => "Ticket cancelled or refunded".into(),
        Reason::NotYetValid => "Ticket not valid yet".into(),
        Reason::Expired => "Ticket expired".into(),
        Reason::AlreadyInside => match presence {
            Some(p) => format!("Already inside since {}, {}", p.at, gate_name(&p.gate)),
            None => "Already inside".into(),
        },
        Reason::WrongZone => "Wrong entrance: this ticket is for another zone".into(),
        Reason::KeyNotValid => {
            "The event key is not valid at this time: check the device clock".into()
        }
        Reason::ReentryDenied => match presence {
            Some(p) => format!(
                "Left at {}, {}: this ticket does not allow re-entry",
                p.at,
                gate_name(&p.gate)
            ),
            None => "This ticket does not allow re-entry".into(),
        },
        Reason::Superseded => {
            "Old code: the ticket was transferred or reissued; ask for the current one".into()
        }
        Reason::NotListed => "Not on this event's ticket list".into(),
        Reason::EventClosed => {
            "The event is not open at the door (ended, cancelled or not yet open)".into()
        }
    }
}

/// Facts about the ticket beyond the engine's report, for the screen.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Last admitted scan before (for rejects) or after (for admits).
    pub presence: Option<Presence>,
    /// Tier from the manifest or the credential.
    pub tier: Option<u16>,
    /// Zone mask from the manifest.
    pub zones: Option<u32>,
    /// The ticket was admitted twice without an exit (flagged by sync).
    pub double_admission: bool,
}

fn zone_list(mask: u32) -> String {
    let zones: Vec<String> = (0..32)
        .filter(|z| mask & (1 << z) != 0)
        .map(|z| z.to_string())
        .collect();
    if zones.is_empty() {
        "none".into()
    } else {
        zones.join(", ")
    }
}

/// The result screen for one report.
pub fn scan_view(report: &ScanReport, direction: Direction, ctx: &Context) -> ScanView {
    let admitted = report.admitted();
    let amber = admitted && (report.time_uncertain || ctx.double_admission);
    let (verdict, headline, detail) = if !admitted {
        let reason = report.reason.unwrap_or(Reason::Malformed);
        (
            Verdict::Red,
            "Rejected".to_owned(),
            reason_words(reason, ctx.presence.as_ref()),
        )
    } else if amber {
        let why = if ctx.double_admission {
            "Admitted, but this ticket was let in twice (at two gates while offline): check the holder"
        } else {
            "Admitted, but this device's clock is not confirmed: check the ticket's date"
        };
        (Verdict::Amber, "Check".to_owned(), why.to_owned())
    } else if direction == Direction::Exit {
        (
            Verdict::Green,
            "Exit".to_owned(),
            "Let out: they may come back if their ticket allows re-entry".to_owned(),
        )
    } else {
        (
            Verdict::Green,
            "Admit".to_owned(),
            "Valid ticket: let them in".to_owned(),
        )
    };
    ScanView {
        verdict,
        headline,
        detail,
        reason: report.reason.map(|r| r.as_str().to_owned()),
        ticket_id: report.ticket_id.map(|t| t.to_string()),
        display_name: report.display_name.clone(),
        tier: ctx.tier,
        zones: ctx.zones.map(zone_list),
        needs_ack: amber,
        scan_id: report.scan_id.clone(),
        direction: direction_label(direction).into(),
        repeat: report.repeat,
    }
}

/// `"entry"` or `"exit"`.
pub fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::Entry => "entry",
        Direction::Exit => "exit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_inside_names_time_and_gate() {
        let p = Presence {
            inside: true,
            at: "20:14".into(),
            gate: "Gate B".into(),
        };
        assert_eq!(
            reason_words(Reason::AlreadyInside, Some(&p)),
            "Already inside since 20:14, Gate B"
        );
    }

    #[test]
    fn every_reason_has_words_not_a_code() {
        for r in Reason::ALL {
            let w = reason_words(r, None);
            assert!(!w.contains('_'), "{r}: the screen shows words, got {w:?}");
            assert!(w.len() > 8, "{r}: {w:?}");
        }
    }

    #[test]
    fn clock_time_is_hours_and_minutes_in_the_offset() {
        // 2026-12-01 20:14:30 UTC
        let ms = 1_796_156_070_000;
        assert_eq!(clock_time(ms, UtcOffset::UTC), "20:14");
        let cet = UtcOffset::from_hms(1, 0, 0).expect("offset");
        assert_eq!(clock_time(ms, cet), "21:14");
    }
}
