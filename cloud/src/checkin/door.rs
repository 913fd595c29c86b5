//! The cloud at the door: `sync_protocol::decide` over the cloud's own key
//! ring (organizer root + event key certificates), manifest view (the
//! ticket's latest manifest entry) and check-in view (the fold of every
//! scan the cloud holds of the ticket), on the cloud's trusted clock.
//!
//! An online check-in records its scan as the event's cloud node in the
//! same CRDT the gates sync, so gates see it at their next cloud sync. The
//! decision and the append are tied by compare-and-set: the append happens
//! only if the ticket's state is still the one the decision saw (under the
//! replica lock), otherwise the decision is taken again, so two staff
//! checking in one ticket at once admit it once.

use crate::error::{ApiError, ApiResult};
use crate::model::TicketId;
use crate::state::AppState;
use crate::store::{CloudScan, EventRecord, StoredScan};
use axum::http::StatusCode;
use sync_protocol::checkin::{TicketState, fold_ticket};
use sync_protocol::manifest::ManifestEntry;
use sync_protocol::{
    CheckinView, Credential, Decision, GatePolicy, KeyRing, ManifestView, PublicKey, ScanRecord,
    TimeReading, decide,
};

/// How often an online check-in re-decides when the ticket's state keeps
/// changing under it.
const CAS_ATTEMPTS: usize = 5;

struct OneEntry(Option<ManifestEntry>);

impl ManifestView for OneEntry {
    fn entry(&self, ticket: &TicketId) -> Option<ManifestEntry> {
        self.0.as_ref().filter(|e| &e.ticket_id == ticket).cloned()
    }
}

struct Folded(Option<TicketId>, TicketState);

impl CheckinView for Folded {
    fn ticket_state(&self, ticket: &TicketId) -> TicketState {
        if Some(*ticket) == self.0 {
            self.1
        } else {
            TicketState::NeverSeen
        }
    }
}

/// The event's trust material as a gate holds it.
pub async fn key_ring(state: &AppState, event: &EventRecord) -> ApiResult<KeyRing> {
    let corrupt =
        |what: &str| ApiError::Internal(format!("stored {what} of {} is corrupt", event.id));
    let root = state.store.organizer_key(event.organizer_id).await?;
    let root: [u8; 32] = root
        .public_key
        .try_into()
        .map_err(|_| corrupt("root key"))?;
    let mut ring = KeyRing::new(PublicKey::from_bytes(&root).map_err(|_| corrupt("root key"))?);
    let trust = crate::crypto::signing::event_trust(state.store.as_ref(), event.id).await?;
    for cert in trust.certs {
        ring.insert(cert).map_err(|_| corrupt("key certificate"))?;
    }
    for r in trust.retirements {
        ring.retire(r).map_err(|_| corrupt("key retirement"))?;
    }
    Ok(ring)
}

/// A ticket's scans and their fold.
pub async fn ticket_state(
    state: &AppState,
    event: &EventRecord,
    ticket: TicketId,
) -> ApiResult<(Vec<StoredScan>, TicketState)> {
    let scans = state.store.ticket_scans(event.id, ticket).await?;
    let fold = fold_ticket(scans.iter().map(|s| &s.record));
    Ok((scans, fold.state))
}

/// The decision on `text` at a door of `event` with `policy`, and the
/// ticket state it saw. Nothing is recorded.
pub async fn evaluate(
    state: &AppState,
    event: &EventRecord,
    text: &str,
    policy: &GatePolicy,
) -> ApiResult<(Decision, TicketState)> {
    let ring = key_ring(state, event).await?;
    let parsed = Credential::from_qr_text(text.trim_end_matches(['\r', '\n'])).ok();
    let (entry, ticket_state) = match &parsed {
        Some(c) if c.claims.event_id == event.id => {
            let ticket = c.claims.ticket_id;
            let entry = state.store.manifest_entry(event.id, ticket).await?;
            (entry, ticket_state(state, event, ticket).await?.1)
        }
        _ => (None, TicketState::NeverSeen),
    };
    let ticket = parsed.as_ref().map(|c| c.claims.ticket_id);
    let decision = decide(
        text,
        &ring,
        &OneEntry(entry),
        &Folded(ticket, ticket_state),
        policy,
        TimeReading {
            unix_secs: state.now_secs(),
            trusted: true,
        },
    );
    Ok((decision, ticket_state))
}

/// Decides and records an online check-in at `event`; the record is `None`
/// when nothing was recorded (the credential is malformed or for another
/// event).
pub async fn check_in(
    state: &AppState,
    event: &EventRecord,
    text: &str,
    policy: &GatePolicy,
    gate: &str,
    operator: &str,
) -> ApiResult<(Decision, TicketState, Option<ScanRecord>)> {
    for _ in 0..CAS_ATTEMPTS {
        let (decision, seen) = evaluate(state, event, text, policy).await?;
        let (Some(ticket_id), Some(generation)) = (decision.ticket_id, decision.generation) else {
            return Ok((decision, seen, None));
        };
        if decision.event_id != Some(event.id) {
            return Ok((decision, seen, None));
        }
        let signer =
            crate::crypto::signing::event_signer(state.store.as_ref(), &state.vault, event.id)
                .await
                .map_err(|e| ApiError::Internal(format!("event signing key: {e}")))?;
        let scan = CloudScan {
            signer: signer.key,
            event_id: event.id,
            ticket_id,
            generation,
            direction: policy.direction,
            zone: policy.zone,
            outcome: decision.outcome,
            gate: gate.to_string(),
            operator: operator.to_string(),
        };
        let now = state.now_ms().max(0) as u64;
        if let Some(record) = state.store.append_cloud_scan(&scan, seen, now).await? {
            tracing::info!(scan = %record.id, ticket = %ticket_id, outcome = ?record.outcome, "online check-in");
            return Ok((decision, seen, Some(record)));
        }
    }
    Err(ApiError::coded(
        StatusCode::CONFLICT,
        "state_changed",
        "the ticket's check-in state kept changing; try again",
    ))
}
