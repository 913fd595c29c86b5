//! The live doors view of an event: one snapshot (`GET /events/{id}/doors`)
//! and a server-sent event stream of snapshots (`GET
//! /events/{id}/doors/stream`) that pushes a new one within a second of any
//! change reaching the cloud (a scan synced, a gate reporting or going
//! silent). Same authorization as every event read for organizers: the
//! event's organizer or an admin.
//!
//! The stream polls the database once a second per connection and sends
//! only when the snapshot differs; `keep-alive` comments every 15 s keep
//! proxies from closing an idle stream. Browsers reconnect on their own.

use crate::auth::extract::ManagedEvent;
use crate::checkin::dto::{CheckinStats, ScanView};
use crate::error::{ApiResult, ErrorBody};
use crate::http::extract::Json;
use crate::model::{EventId, UnixMillis, from_millis};
use crate::state::AppState;
use crate::store::{EventRecord, FleetRow};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;
use sync_protocol::Outcome;
use time::OffsetDateTime;
use utoipa::ToSchema;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const LATEST: i64 = 20;
const POLL: Duration = Duration::from_millis(1_000);

/// Admissions of one tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierDoors {
    /// Tier number.
    pub tier: u16,
    /// Tier name.
    pub name: String,
    /// Valid tickets (issued, transferred, checked in).
    pub tickets: i64,
    /// Of those, admitted at least once.
    pub checked_in: i64,
}

/// Admitted entries in one minute.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteCount {
    /// Start of the minute (UTC, by the gates' clocks).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub minute: OffsetDateTime,
    /// Admitted entries.
    pub admitted: u64,
}

/// Rejected scans for one reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionCount {
    /// The reason (`revoked`, `already_inside`, `bad_signature`, ...).
    pub reason: String,
    /// Scans.
    pub count: i64,
}

/// One device of the event's gate fleet.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetDevice {
    /// Device (node) id.
    pub device_id: String,
    /// Name given at enrollment.
    pub name: String,
    /// Gate label.
    pub gate: String,
    /// Zone guarded (null: any).
    pub zone: Option<u8>,
    /// The zone's name in the event, if it has one.
    pub zone_name: Option<String>,
    /// Synced within `console.device_offline_after_ms`, and not revoked.
    pub online: bool,
    /// Revoked (its token is refused).
    pub revoked: bool,
    /// Last contact with the cloud.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<OffsetDateTime>,
    /// Scans recorded at the gate that the cloud has not acknowledged
    /// (unknown for gates that do not report it).
    pub scans_waiting: Option<i64>,
    /// Manifest version the gate holds.
    pub manifest_version: Option<i64>,
    /// When the cloud made that version (its age).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub manifest_made_at: Option<OffsetDateTime>,
    /// Whether that is the event's current version.
    pub manifest_current: Option<bool>,
    /// Where the gate's time comes from (`cloud`, `peer`, `system_clock`, `last_known`).
    pub clock: Option<String>,
    /// Whether a trusted source vouches for the gate's time.
    pub clock_trusted: Option<bool>,
    /// The gate's software version.
    pub software: Option<String>,
}

/// Everything the doors page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct DoorsView {
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Valid tickets.
    pub tickets: i64,
    /// Tickets admitted at least once.
    pub checked_in: u64,
    /// Tickets inside now.
    pub inside_now: u64,
    /// Valid tickets not yet admitted.
    pub remaining: i64,
    /// Rejected scans.
    pub rejected: i64,
    /// Per tier.
    pub per_tier: Vec<TierDoors>,
    /// Per gate label.
    pub per_gate: Vec<crate::checkin::dto::GateStats>,
    /// Admitted entries per minute over the last hour, oldest first (60 minutes).
    pub per_minute: Vec<MinuteCount>,
    /// The latest scans, newest first.
    pub latest_scans: Vec<ScanView>,
    /// Rejected scans by reason.
    pub rejected_by_reason: Vec<RejectionCount>,
    /// Entries admitted while the ticket was already inside (partitions).
    pub double_admissions: Vec<crate::checkin::dto::DoubleAdmissionView>,
    /// The event's gates.
    pub fleet: Vec<FleetDevice>,
}

async fn valid_tickets(state: &AppState, event: EventId) -> ApiResult<BTreeMap<u16, i64>> {
    let mut per_tier = BTreeMap::new();
    for t in state.store.tier_stats(event).await? {
        per_tier.insert(t.tier, t.sold);
    }
    Ok(per_tier)
}

fn fleet_view(
    row: FleetRow,
    event: &EventRecord,
    now: UnixMillis,
    offline_after: i64,
) -> FleetDevice {
    let current = event.manifest_version;
    let seen = row.reported_at.max(row.last_seen_at);
    let revoked = row.revoked_at.is_some();
    FleetDevice {
        device_id: row.device_id.to_string(),
        name: row.name,
        gate: row.gate,
        zone: row.zone,
        zone_name: crate::events::zones::name_of(&event.zones, row.zone),
        online: !revoked && row.reported_at.is_some_and(|t| now - t <= offline_after),
        revoked,
        last_seen_at: seen.map(from_millis),
        scans_waiting: row.report.scans_waiting,
        manifest_version: row.report.manifest_version,
        manifest_made_at: row.manifest_made_at.map(from_millis),
        manifest_current: row.report.manifest_version.map(|v| v >= current),
        clock: row.report.clock,
        clock_trusted: row.report.clock_trusted,
        software: row.report.software,
    }
}

/// Entries per minute over the hour before `now`, by the gates' clocks.
fn per_minute(entries: &[sync_protocol::ScanRecord], now: UnixMillis) -> Vec<MinuteCount> {
    let last = now.div_euclid(MINUTE_MS) * MINUTE_MS;
    let first = last - HOUR_MS + MINUTE_MS;
    let mut counts = vec![0u64; 60];
    for r in entries {
        let t = i64::try_from(r.hlc.physical_ms()).unwrap_or(i64::MAX);
        if (first..last + MINUTE_MS).contains(&t) {
            counts[((t - first) / MINUTE_MS) as usize] += 1;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, admitted)| MinuteCount {
            minute: from_millis(first + i as i64 * MINUTE_MS),
            admitted,
        })
        .collect()
}

/// The doors snapshot of `event` now.
pub async fn snapshot(state: &AppState, m: &ManagedEvent) -> ApiResult<DoorsView> {
    let event = state.store.event(m.event.id).await?;
    let id = event.id;
    let now = state.now_ms();
    let stats: CheckinStats = crate::checkin::stats::event_stats(state, id).await?;
    let tickets = valid_tickets(state, id).await?;
    let admitted: BTreeMap<u16, i64> = state
        .store
        .admitted_per_tier(id)
        .await?
        .into_iter()
        .collect();
    let per_tier = event
        .tiers
        .iter()
        .map(|t| TierDoors {
            tier: t.tier,
            name: t.name.clone(),
            tickets: tickets.get(&t.tier).copied().unwrap_or(0),
            checked_in: admitted.get(&t.tier).copied().unwrap_or(0),
        })
        .collect::<Vec<_>>();
    let total: i64 = tickets.values().sum();
    let entries = state.store.entries_since(id, now - HOUR_MS).await?;
    let latest = state.store.latest_scans(id, LATEST).await?;
    let rejected_by_reason = state
        .store
        .rejections(id)
        .await?
        .into_iter()
        .map(|(code, count)| RejectionCount {
            reason: Outcome::from_code(code)
                .and_then(Outcome::reason)
                .map_or_else(|| format!("code_{code}"), |r| r.to_string()),
            count,
        })
        .collect();
    let offline_after =
        i64::try_from(state.config.console.device_offline_after_ms).unwrap_or(i64::MAX);
    let fleet = state
        .store
        .fleet(id)
        .await?
        .into_iter()
        .map(|row| fleet_view(row, &event, now, offline_after))
        .collect();
    let checked_in_tickets: i64 = per_tier.iter().map(|t| t.checked_in).sum();
    Ok(DoorsView {
        event_id: id,
        tickets: total,
        checked_in: stats.admitted,
        inside_now: stats.inside_now,
        remaining: (total - checked_in_tickets).max(0),
        rejected: stats.rejected,
        per_tier,
        per_gate: stats.per_gate,
        per_minute: per_minute(&entries, now),
        latest_scans: latest.iter().map(ScanView::from).collect(),
        rejected_by_reason,
        double_admissions: stats.double_admissions,
        fleet,
    })
}

/// The doors view now (the event's organizer or an admin).
#[utoipa::path(get, path = "/events/{id}/doors", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = DoorsView), (status = 400, body = ErrorBody, description = "the id is not a UUID"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn doors(State(state): State<AppState>, m: ManagedEvent) -> ApiResult<Json<DoorsView>> {
    Ok(Json(snapshot(&state, &m).await?))
}

/// The doors view as server-sent events: a `doors` event (data: a
/// `DoorsView`) at once and whenever it changes, checked every second.
/// Send the access token as `Authorization: Bearer` (read the stream with
/// `fetch`); reconnect with a fresh token when it ends.
#[utoipa::path(get, path = "/events/{id}/doors/stream", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, content_type = "text/event-stream", description = "`event: doors` with a DoorsView as `data`, at once and on every change"),
              (status = 400, body = ErrorBody, description = "the id is not a UUID"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn doors_stream(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(
        (state, m, None::<String>, true),
        |(state, m, last, first)| async move {
            let mut last = last;
            let mut first = first;
            loop {
                if !first {
                    tokio::time::sleep(POLL).await;
                }
                first = false;
                let event = match snapshot(&state, &m).await {
                    Ok(view) => {
                        let json = serde_json::to_string(&view).unwrap_or_default();
                        if last.as_deref() == Some(json.as_str()) {
                            continue;
                        }
                        last = Some(json.clone());
                        Event::default().event("doors").data(json)
                    }
                    Err(e) => {
                        tracing::warn!(event = %m.event.id, error = %e, "doors snapshot failed");
                        Event::default()
                            .event("problem")
                            .data("the doors view could not be read; retrying")
                    }
                };
                return Some((Ok(event), (state, m, last, first)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_protocol::{Direction, Hlc, NodeId, ScanId, ScanRecord, TicketId};

    fn entry(ms: u64) -> ScanRecord {
        ScanRecord {
            id: ScanId {
                node: NodeId::from_bytes([1; 16]),
                seq: ms,
            },
            event_id: sync_protocol::EventId::from_bytes([9; 16]),
            ticket_id: TicketId::from_bytes([2; 16]),
            generation: 0,
            direction: Direction::Entry,
            hlc: Hlc::new(ms, 0),
            zone: None,
            outcome: Outcome::Admit,
            gate: String::new(),
            operator: String::new(),
            signature: Default::default(),
        }
    }

    #[test]
    fn the_last_hour_is_sixty_minutes_and_older_entries_fall_out() {
        let now: i64 = 10 * HOUR_MS + 30 * MINUTE_MS + 5_000;
        let n = now as u64;
        let m = per_minute(
            &[
                entry(n),
                entry(n - 1_000),
                entry(n - 59 * 60_000),
                entry(n - 2 * 3_600_000),
            ],
            now,
        );
        assert_eq!(m.len(), 60);
        assert_eq!(
            m[59].admitted, 2,
            "this minute holds the two latest entries"
        );
        assert_eq!(m[0].admitted, 1, "59 minutes ago is the first bucket");
        assert_eq!(
            m.iter().map(|c| c.admitted).sum::<u64>(),
            3,
            "two hours ago is not in the chart"
        );
    }
}
