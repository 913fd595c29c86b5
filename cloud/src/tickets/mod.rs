//! Ticketing: `POST /tickets`, `GET /tickets/{id}`, `GET /tickets`, status
//! changes with an audit trail, and the QR image of the credential.
//!
//! Visibility: a ticket is visible to its owner, to the organizer of its
//! event and to admins; nobody else learns anything about it.

pub mod dto;
pub mod issue;
pub mod qr;

use crate::auth::extract::{AuthUser, Organizer};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{Role, TicketId, TicketStatus, UserId};
use crate::state::AppState;
use crate::store::{StatusChange, StoreError, TicketFilter, TicketRecord};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dto::{
    AuditView, CreateTicket, QrFormat, QrQuery, TicketQuery, TicketStatusUpdate, TicketView,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes under `/tickets`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_ticket, list_tickets))
        .routes(routes!(get_ticket))
        .routes(routes!(update_status))
        .routes(routes!(history))
        .routes(routes!(qr_code))
}

/// Loads a ticket the caller may see; returns it and whether they manage its event.
async fn visible_ticket(
    state: &AppState,
    user: &AuthUser,
    id: TicketId,
) -> ApiResult<(TicketRecord, bool)> {
    let ticket = state.store.ticket(id).await?;
    let manages = match user.role {
        Role::Admin => true,
        Role::Organizer => user.manages(&state.store.event(ticket.event_id).await?),
        _ => false,
    };
    if manages || ticket.owner_id == Some(user.id) {
        Ok((ticket, manages))
    } else {
        Err(ApiError::Forbidden(
            "this ticket belongs to someone else".into(),
        ))
    }
}

/// Issues a ticket (organizer of the event, or admin): complimentary or manual.
#[utoipa::path(post, path = "/tickets", tag = "tickets", security(("bearer" = [])), request_body = CreateTicket,
    responses((status = 201, body = TicketView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "sold out or event not on sale"), (status = 422, body = ErrorBody)))]
async fn create_ticket(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Json(req): Json<CreateTicket>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let event = state.store.event(req.event_id).await?;
    user.require_manager(
        &event,
        "only the event's organizer or an admin may issue its tickets",
    )?;
    let tier = event
        .tiers
        .iter()
        .find(|t| t.tier == req.tier)
        .ok_or_else(|| ApiError::Validation(format!("the event has no tier {}", req.tier)))?;
    let status = req.status.unwrap_or(TicketStatus::Issued);
    if !matches!(status, TicketStatus::Issued | TicketStatus::Reserved) {
        return Err(ApiError::Validation(
            "a new ticket is either issued or reserved".into(),
        ));
    }
    let owner = match req.owner_id {
        Some(id) => Some(state.store.user(id).await.map_err(|e| match e {
            StoreError::NotFound(_) => {
                ApiError::Validation("owner_id does not name an account".into())
            }
            other => other.into(),
        })?),
        None => None,
    };
    let holder_name = match (&req.holder_name, &owner) {
        (Some(n), _) => crate::auth::check_name(n)?,
        (None, Some(o)) => o.display_name.clone(),
        (None, None) => {
            return Err(ApiError::Validation(
                "holder_name is required without owner_id".into(),
            ));
        }
    };
    let spec = issue::IssueSpec {
        quantity: 1,
        owner: owner.map(|o| o.id),
        holder_name,
        status,
        price_minor: 0,
        order: None,
        actor: user.id,
        reason: "issued by organizer".into(),
    };
    let tickets = issue::issue(&state, &event, tier, spec).await?;
    Ok((StatusCode::CREATED, Json(TicketView::from(&tickets[0]))))
}

/// One ticket (owner, its organizer, admin).
#[utoipa::path(get, path = "/tickets/{id}", tag = "tickets", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_ticket(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
) -> ApiResult<Json<TicketView>> {
    let (ticket, _) = visible_ticket(&state, &user, id).await?;
    Ok(Json(TicketView::from(&ticket)))
}

/// Tickets the caller may see, ascending by id. Customers see their own;
/// organizers those of their events; admins all.
#[utoipa::path(get, path = "/tickets", tag = "tickets", security(("bearer" = [])), params(TicketQuery),
    responses((status = 200, body = Page<TicketView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_tickets(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<TicketQuery>,
) -> ApiResult<Json<Page<TicketView>>> {
    let limit = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let mut filter = TicketFilter {
        event_id: q.event_id.map(Into::into),
        owner_id: q.owner_id.map(UserId),
        status: q.status,
        after: q.cursor.map(Into::into),
        limit,
        organizer_id: None,
    };
    match user.role {
        Role::Admin => {}
        Role::Organizer => {
            if let Some(event) = filter.event_id {
                if !user.manages(&state.store.event(event).await?) {
                    return Err(ApiError::Forbidden(
                        "only the event's organizer may list its tickets".into(),
                    ));
                }
            } else if filter.owner_id != Some(user.id) {
                filter.organizer_id = Some(user.id);
            }
        }
        Role::Customer | Role::Staff => {
            if filter.owner_id.is_some_and(|o| o != user.id) {
                return Err(ApiError::Forbidden(
                    "you may only list your own tickets".into(),
                ));
            }
            filter.owner_id = Some(user.id);
        }
    }
    let items = state.store.list_tickets(&filter).await?;
    let views = items.iter().map(TicketView::from).collect();
    Ok(Json(Page::new(views, limit, |t: &TicketView| {
        t.id.to_string()
    })))
}

/// Moves a ticket's lifecycle (organizer of the event, admin): issue a
/// reserved ticket, check it in, cancel or refund it. Cancel and refund
/// revoke the credential in the next manifest version.
#[utoipa::path(patch, path = "/tickets/{id}/status", tag = "tickets", security(("bearer" = [])), request_body = TicketStatusUpdate,
    params(("id" = String, Path, format = Uuid, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "illegal transition"), (status = 422, body = ErrorBody)))]
async fn update_status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
    Json(req): Json<TicketStatusUpdate>,
) -> ApiResult<Json<TicketView>> {
    let (ticket, manages) = visible_ticket(&state, &user, id).await?;
    if !manages {
        return Err(ApiError::Forbidden(
            "only the event's organizer or an admin may change a ticket".into(),
        ));
    }
    if matches!(
        req.status,
        TicketStatus::Reserved | TicketStatus::Transferred
    ) {
        return Err(ApiError::Validation(
            "status must be issued, checked_in, cancelled or refunded".into(),
        ));
    }
    if req.reason.chars().count() > 500 {
        return Err(ApiError::Validation(
            "reason must be at most 500 characters".into(),
        ));
    }
    let credential = if req.status == TicketStatus::Issued && ticket.credential.is_none() {
        let event = state.store.event(ticket.event_id).await?;
        let signer = issue::signer(&state, &event).await?;
        Some(issue::credential(
            &signer,
            &event,
            ticket.id,
            ticket.tier,
            ticket.zone_mask,
            ticket.generation,
        )?)
    } else {
        None
    };
    let change = StatusChange {
        ticket_id: id,
        to: req.status,
        credential,
        actor: Some(user.id),
        reason: if req.reason.is_empty() {
            format!("set to {}", req.status.as_str())
        } else {
            req.reason
        },
    };
    let updated = state
        .store
        .change_ticket_status(&change, state.now_ms())
        .await?;
    Ok(Json(TicketView::from(&updated)))
}

/// The ticket's audit trail, oldest first.
#[utoipa::path(get, path = "/tickets/{id}/history", tag = "tickets", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "ticket id")),
    responses((status = 200, body = Vec<AuditView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
) -> ApiResult<Json<Vec<AuditView>>> {
    visible_ticket(&state, &user, id).await?;
    let lines = state.store.ticket_history(id).await?;
    Ok(Json(lines.iter().map(AuditView::from).collect()))
}

/// The credential as a QR image (owner, its organizer, admin).
#[utoipa::path(get, path = "/tickets/{id}/qr", tag = "tickets", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "ticket id"), QrQuery),
    responses((status = 200, content_type = "image/png", description = "PNG (default)"),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "no valid credential")))]
async fn qr_code(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
    Query(q): Query<QrQuery>,
) -> ApiResult<Response> {
    let (ticket, _) = visible_ticket(&state, &user, id).await?;
    let text = match (&ticket.credential, ticket.status.is_valid()) {
        (Some(text), true) => text,
        _ => {
            return Err(ApiError::Conflict(format!(
                "a {} ticket has no valid credential",
                ticket.status.as_str()
            )));
        }
    };
    let private = [(header::CACHE_CONTROL, "private, no-store")];
    Ok(match q.format.unwrap_or(QrFormat::Png) {
        QrFormat::Png => (
            private,
            [(header::CONTENT_TYPE, "image/png")],
            qr::png(text)?,
        )
            .into_response(),
        QrFormat::Svg => (
            private,
            [(header::CONTENT_TYPE, "image/svg+xml")],
            qr::svg(text)?,
        )
            .into_response(),
    })
}
