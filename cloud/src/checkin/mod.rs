//! Check-in validation (the seed's endpoints) over the same data the gates
//! sync: the manifest log and the cloud's replica of the check-in CRDT.
//!
//! - `POST /checkin/tickets`: registration is implicit in this model (issuing
//!   a ticket lists it in the signed manifest every gate holds), so this
//!   resolves a presented credential (verified against the event's key
//!   ring) or a ticket id to its door record and says whether it is
//!   registered; it never writes.
//! - `GET /checkin/tickets/{id}` and `.../validate`: the door record, and a
//!   dry run of `sync_protocol::decide` as a gate would take it.
//! - `POST /checkin/check-in`: an online check-in, recorded as the event's
//!   cloud node in the CRDT (see [`door`]).
//! - Scans are identified by their CRDT id `node:seq` everywhere.
//!
//! Access: staff, the event's organizer and admins work the door
//! ([`access`]); a customer sees only scans of their own tickets.

pub mod access;
pub mod door;
pub mod dto;
pub mod stats;

use crate::auth::extract::AuthUser;
use crate::devices::dto::{GateDirection, check_gate, check_zone};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::model::{Role, TicketId, UserId};
use crate::state::AppState;
use crate::store::{EventRecord, ScanFilter, StoreError, TicketRecord};
use access::{DoorEvent, at_door, may_see_ticket, require_door};
use axum::extract::State;
use axum::http::StatusCode;
use dto::{
    CheckInRequest, CheckinStats, CheckinTicketView, DecisionView, DoubleAdmissionView, ScanList,
    ScanPage, ScanView, TicketLookup, ValidateQuery, state_name,
};
use sync_protocol::checkin::fold_ticket;
use sync_protocol::manifest::EntryStatus;
use sync_protocol::{Credential, Direction, GatePolicy, ScanId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes under `/checkin`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_ticket))
        .routes(routes!(ticket_record))
        .routes(routes!(validate))
        .routes(routes!(check_in))
        .routes(routes!(get_scan))
        .routes(routes!(user_scans))
        .routes(routes!(event_scans))
        .routes(routes!(event_stats))
}

fn malformed() -> ApiError {
    ApiError::coded(
        StatusCode::UNPROCESSABLE_ENTITY,
        "malformed_credential",
        "credential is not a well-formed TK1 credential",
    )
}

fn one_of(credential: &Option<String>, ticket: &Option<TicketId>) -> ApiResult<()> {
    if credential.is_some() == ticket.is_some() {
        return Err(ApiError::Validation(
            "give exactly one of credential and ticket_id".into(),
        ));
    }
    Ok(())
}

async fn ticket_and_event(
    state: &AppState,
    id: TicketId,
) -> ApiResult<(TicketRecord, EventRecord)> {
    let ticket = state.store.ticket(id).await?;
    let event = state.store.event(ticket.event_id).await?;
    Ok((ticket, event))
}

async fn ticket_view(
    state: &AppState,
    event: &EventRecord,
    ticket: &TicketRecord,
) -> ApiResult<CheckinTicketView> {
    let (scans, _) = door::ticket_state(state, event, ticket.id).await?;
    let fold = fold_ticket(scans.iter().map(|s| &s.record));
    let entry = state.store.manifest_entry(event.id, ticket.id).await?;
    Ok(CheckinTicketView {
        ticket_id: ticket.id,
        event_id: event.id,
        holder_name: ticket.holder_name.clone(),
        tier: ticket.tier,
        status: ticket.status,
        generation: ticket.generation,
        registered: entry.is_some(),
        manifest_status: entry.map(|e| match e.status {
            EntryStatus::Valid => "valid".to_string(),
            EntryStatus::Revoked => "revoked".to_string(),
        }),
        state: state_name(fold.state),
        entries: fold.entries,
        scans: scans.iter().map(ScanView::from).collect(),
        double_admissions: fold
            .double_admissions
            .iter()
            .map(DoubleAdmissionView::from)
            .collect(),
    })
}

/// Resolves a credential or ticket id to the ticket's door record (door roles).
#[utoipa::path(post, path = "/checkin/tickets", tag = "check-in", security(("bearer" = [])), request_body = TicketLookup,
    responses((status = 200, body = CheckinTicketView, description = "the ticket and whether it is registered (listed in the manifest)"),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 422, body = ErrorBody, description = "malformed credential, or one that does not verify")))]
async fn register_ticket(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<TicketLookup>,
) -> ApiResult<Json<CheckinTicketView>> {
    one_of(&req.credential, &req.ticket_id)?;
    let credential = req
        .credential
        .as_deref()
        .map(|t| Credential::from_qr_text(t.trim()).map_err(|_| malformed()))
        .transpose()?;
    let id = match (&credential, req.ticket_id) {
        (Some(c), _) => c.claims.ticket_id,
        (None, Some(id)) => id,
        (None, None) => return Err(malformed()),
    };
    let (ticket, event) = ticket_and_event(&state, id).await?;
    require_door(&state, &user, &event).await?;
    if let Some(c) = &credential {
        let ring = door::key_ring(&state, &event).await?;
        let verified = c.claims.event_id == event.id
            && ring
                .key_for(&c.key_id, &event.id, state.now_secs())
                .ok()
                .is_some_and(|key| c.verify(key).is_ok());
        if !verified {
            return Err(ApiError::coded(
                StatusCode::UNPROCESSABLE_ENTITY,
                "credential_not_verified",
                "the credential is not signed by a current key of its event",
            ));
        }
    }
    Ok(Json(ticket_view(&state, &event, &ticket).await?))
}

/// A ticket's door record: state, scans, double admissions (door roles, or its owner).
#[utoipa::path(get, path = "/checkin/tickets/{id}", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "ticket id")),
    responses((status = 200, body = CheckinTicketView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn ticket_record(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
) -> ApiResult<Json<CheckinTicketView>> {
    let (ticket, event) = ticket_and_event(&state, id).await?;
    if !may_see_ticket(&state, &user, &event, &ticket).await? {
        return Err(ApiError::Forbidden(
            "this ticket belongs to someone else".into(),
        ));
    }
    Ok(Json(ticket_view(&state, &event, &ticket).await?))
}

fn policy(event: &EventRecord, zone: Option<u8>, direction: Option<GateDirection>) -> GatePolicy {
    GatePolicy {
        zone,
        direction: direction.map_or(Direction::Entry, Into::into),
        // The cloud knows every sale: an unlisted ticket is not one.
        require_listed: true,
        ..GatePolicy::entry(event.id)
    }
}

/// What a gate would decide for the ticket's current credential now; nothing is recorded.
#[utoipa::path(get, path = "/checkin/tickets/{id}/validate", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "ticket id"), ValidateQuery),
    responses((status = 200, body = DecisionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "the ticket has no credential (reserved)")))]
async fn validate(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
    Query(q): Query<ValidateQuery>,
) -> ApiResult<Json<DecisionView>> {
    let (ticket, event) = ticket_and_event(&state, id).await?;
    require_door(&state, &user, &event).await?;
    let text = ticket
        .credential
        .ok_or_else(|| ApiError::Conflict("the ticket has no credential yet".into()))?;
    let policy = policy(&event, check_zone(q.zone)?, q.direction);
    let (decision, seen) = door::evaluate(&state, &event, &text, &policy).await?;
    Ok(Json(DecisionView::new(&decision, seen, None)))
}

/// Online check-in by door staff: the gates' decision function, recorded
/// in the check-in CRDT (so gates see it); a second check-in of a ticket
/// inside is refused as `already_inside`.
#[utoipa::path(post, path = "/checkin/check-in", tag = "check-in", security(("bearer" = [])), request_body = CheckInRequest,
    responses((status = 201, body = DecisionView, description = "decided and recorded (admit or reject)"),
               (status = 200, body = DecisionView, description = "decided, not recorded (malformed or another event's credential)"),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn check_in(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CheckInRequest>,
) -> ApiResult<(StatusCode, Json<DecisionView>)> {
    one_of(&req.credential, &req.ticket_id)?;
    let (text, ticket_event) = match (&req.credential, req.ticket_id) {
        (Some(text), _) => {
            let event = Credential::from_qr_text(text.trim())
                .ok()
                .map(|c| c.claims.event_id);
            (text.clone(), event)
        }
        (None, Some(id)) => {
            let ticket = state.store.ticket(id).await?;
            let text = ticket
                .credential
                .ok_or_else(|| ApiError::Conflict("the ticket has no credential yet".into()))?;
            (text, Some(ticket.event_id))
        }
        (None, None) => return Err(malformed()),
    };
    let event_id = req.event_id.or(ticket_event).ok_or_else(malformed)?;
    let event = state.store.event(event_id).await?;
    require_door(&state, &user, &event).await?;
    let gate = check_gate(req.gate.as_deref().unwrap_or("online"))?;
    let policy = policy(&event, check_zone(req.zone)?, req.direction);
    let (decision, seen, record) =
        door::check_in(&state, &event, &text, &policy, &gate, &user.id.to_string()).await?;
    let status = if record.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DecisionView::new(&decision, seen, record.map(|r| r.id))),
    ))
}

fn scan_id(text: &str) -> ApiResult<ScanId> {
    text.parse()
        .map_err(|e: &str| ApiError::bad_request("invalid_path", format!("scan id: {e}")))
}

/// One scan by its id `node:seq` (door roles of its event, or the ticket's owner).
#[utoipa::path(get, path = "/checkin/check-in/{id}", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}:[0-9]{1,19}$", description = "scan id `NODE:SEQ`: the recording node's UUID, a colon, its sequence number")),
    responses((status = 200, body = ScanView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_scan(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<ScanView>> {
    let scan = state.store.scan(scan_id(&id)?).await?;
    let event = state.store.event(scan.record.event_id).await?;
    let owner = match state.store.ticket(scan.record.ticket_id).await {
        Ok(t) => t.owner_id,
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if !(owner == Some(user.id) || at_door(&state, &user, &event).await?) {
        return Err(ApiError::Forbidden(
            "this scan is of someone else's ticket".into(),
        ));
    }
    Ok(Json(ScanView::from(&scan)))
}

async fn page(state: &AppState, mut filter: ScanFilter, p: &ScanPage) -> ApiResult<ScanList> {
    filter.limit = match p.limit.unwrap_or(50) {
        n @ 1..=100 => i64::from(n),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be between 1 and 100",
            ));
        }
    };
    filter.after = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse()
                .map_err(|e: &str| ApiError::bad_request("invalid_query", format!("cursor: {e}")))
        })
        .transpose()?;
    let scans = match state.store.list_scans(&filter).await {
        Err(StoreError::NotFound(_)) => {
            // Well-formed (the document's pattern) but unknown: a semantic
            // error, 422 like every other schema-valid refusal.
            return Err(ApiError::Validation(
                "cursor names no scan: pass a `next_cursor` this list returned".into(),
            ));
        }
        other => other?,
    };
    let items: Vec<ScanView> = scans.iter().map(ScanView::from).collect();
    let next_cursor = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|s| s.scan_id.clone()))
        .flatten();
    Ok(ScanList { items, next_cursor })
}

/// Scans of a user's tickets, in HLC order. Customers see only their own;
/// organizers see another user's scans at their own events only.
#[utoipa::path(get, path = "/checkin/user/{user_id}/check-ins", tag = "check-in", security(("bearer" = [])),
    params(("user_id" = String, Path, format = Uuid, description = "ticket owner"), ScanPage),
    responses((status = 200, body = ScanList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody, description = "the cursor names no scan")))]
async fn user_scans(
    State(state): State<AppState>,
    user: AuthUser,
    Path(owner): Path<UserId>,
    Query(p): Query<ScanPage>,
) -> ApiResult<Json<ScanList>> {
    let mut filter = ScanFilter {
        owner_id: Some(owner),
        ..ScanFilter::default()
    };
    match user.role {
        Role::Admin => {}
        _ if owner == user.id => {}
        Role::Staff => filter.staff_id = Some(user.id),
        Role::Organizer => filter.organizer_id = Some(user.id),
        Role::Customer => {
            return Err(ApiError::Forbidden(
                "you may only see your own check-ins".into(),
            ));
        }
    }
    Ok(Json(page(&state, filter, &p).await?))
}

/// Every scan at an event, in HLC order (door roles).
#[utoipa::path(get, path = "/checkin/event/{event_id}/check-ins", tag = "check-in", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid, description = "event id"), ScanPage),
    responses((status = 200, body = ScanList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "the cursor names no scan")))]
async fn event_scans(
    State(state): State<AppState>,
    door: DoorEvent,
    Query(p): Query<ScanPage>,
) -> ApiResult<Json<ScanList>> {
    let filter = ScanFilter {
        event_id: Some(door.event.id),
        ..ScanFilter::default()
    };
    Ok(Json(page(&state, filter, &p).await?))
}

/// Admitted, inside now, per gate, per hour, and double admissions (door roles).
#[utoipa::path(get, path = "/checkin/event/{event_id}/stats", tag = "check-in", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = CheckinStats), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn event_stats(
    State(state): State<AppState>,
    door: DoorEvent,
) -> ApiResult<Json<CheckinStats>> {
    Ok(Json(stats::event_stats(&state, door.event.id).await?))
}
