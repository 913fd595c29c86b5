//! The event's staff roster: `GET/POST /events/{id}/staff`,
//! `DELETE /events/{id}/staff/{user_id}`. The organizer (or an admin) puts
//! staff accounts on their event; staff then work the door of those events
//! only (`checkin::access`). Device enrollment codes stay with the organizer
//! and admins; staff find their events with `GET /staff/events` and enroll
//! a scanner for one with `POST /devices/staff-enroll`.

use crate::auth::extract::{AuthUser, ManagedEvent};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events::dto::EventView;
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{EventId, Role, UserId, from_millis};
use crate::state::AppState;
use crate::store::{StaffRecord, StoreError};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// One staff member of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    /// The staff account.
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    /// Their email.
    pub email: String,
    /// Their display name.
    pub display_name: String,
    /// Who added them.
    #[schema(value_type = String, format = Uuid)]
    pub added_by: UserId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: OffsetDateTime,
}

impl From<StaffRecord> for StaffView {
    fn from(s: StaffRecord) -> Self {
        Self {
            user_id: s.user_id,
            email: s.email,
            display_name: s.display_name,
            added_by: s.added_by,
            added_at: from_millis(s.created_at),
        }
    }
}

/// The roster.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffList {
    /// Staff members, ascending by user id.
    pub items: Vec<StaffView>,
}

/// Who to add: exactly one of `user_id` and `email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStaff {
    /// An account with the staff role (an admin grants it).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
    /// Or that account's email (case-insensitive).
    pub email: Option<String>,
}

/// The account `req` names.
async fn staff_account(state: &AppState, req: &AddStaff) -> ApiResult<crate::store::UserRecord> {
    let found = match (req.user_id, req.email.as_deref().map(str::trim)) {
        (Some(id), None) => state.store.user(id).await,
        (None, Some(email)) if !email.is_empty() && email.len() <= 254 => {
            state.store.user_by_email(&email.to_lowercase()).await
        }
        (None, Some(_)) => {
            return Err(ApiError::Validation(
                "email must be 1 to 254 characters".into(),
            ));
        }
        _ => {
            return Err(ApiError::Validation(
                "give exactly one of user_id and email".into(),
            ));
        }
    };
    match found {
        Ok(u) => Ok(u),
        Err(StoreError::NotFound(_)) if req.email.is_some() => Err(ApiError::Validation(
            "no account has this email: the staff member registers first, then an admin grants them the staff role".into(),
        )),
        Err(StoreError::NotFound(_)) => {
            Err(ApiError::Validation("user_id names no account".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The event's staff (its organizer or an admin).
#[utoipa::path(get, path = "/events/{id}/staff", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = StaffList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_staff(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> ApiResult<Json<StaffList>> {
    let items = state.store.list_staff(m.event.id).await?;
    Ok(Json(StaffList {
        items: items.into_iter().map(StaffView::from).collect(),
    }))
}

/// Puts a staff account on the event's roster (its organizer or an admin).
#[utoipa::path(post, path = "/events/{id}/staff", tag = "events", security(("bearer" = [])), request_body = AddStaff,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 201, body = StaffView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "`duplicate`: already on the roster"),
               (status = 422, body = ErrorBody, description = "no such account (by id or email), it lacks the staff role, or not exactly one of user_id and email")))]
pub async fn add_staff(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<AddStaff>,
) -> ApiResult<(StatusCode, Json<StaffView>)> {
    let user = staff_account(&state, &req).await?;
    if user.role != Role::Staff {
        return Err(ApiError::Validation(
            "only accounts with the staff role can join a roster: ask an admin to grant it".into(),
        ));
    }
    let added = state
        .store
        .add_staff(m.event.id, user.id, m.user.id, state.now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(added.into())))
}

/// Takes someone off the event's roster (its organizer or an admin).
#[utoipa::path(delete, path = "/events/{id}/staff/{user_id}", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"),
           ("user_id" = String, Path, format = Uuid, description = "the staff account")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_staff(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, member)): Path<(EventId, UserId)>,
) -> ApiResult<StatusCode> {
    let event = state.store.event(id).await?;
    user.require_manager(&event, "only the event's organizer or an admin may do this")?;
    state.store.remove_staff(event.id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The events whose staff roster the caller is on (any status, drafts
/// included), ascending by id: what a staff member may set a scanner up
/// for. Empty for an account on no roster.
#[utoipa::path(get, path = "/staff/events", tag = "events", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<EventView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn roster_events(
    State(state): State<AppState>,
    user: AuthUser,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<EventView>>> {
    let limit = p.limit()?;
    let events = state
        .store
        .staff_events(user.id, p.cursor.map(Into::into), limit)
        .await?;
    Ok(Json(super::page(events, limit)))
}
