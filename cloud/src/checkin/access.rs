//! Who may work the door: the event's staff (staff accounts on its roster,
//! `/events/{id}/staff`), the event's organizer, admins. Customers see only
//! scans of their own tickets.

use crate::auth::extract::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::Path;
use crate::model::{EventId, EventStatus, Role};
use crate::state::AppState;
use crate::store::{EventRecord, TicketRecord};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Whether `user` may check in, validate and see every scan of `event`.
pub async fn at_door(state: &AppState, user: &AuthUser, event: &EventRecord) -> ApiResult<bool> {
    Ok(match user.role {
        Role::Admin => true,
        Role::Staff => state.store.is_staff(event.id, user.id).await?,
        Role::Organizer => event.organizer_id == user.id,
        Role::Customer => false,
    })
}

/// Refuses callers who may not work `event`'s door (someone else's draft
/// does not exist for them).
pub async fn require_door(state: &AppState, user: &AuthUser, event: &EventRecord) -> ApiResult<()> {
    if at_door(state, user, event).await? {
        Ok(())
    } else if event.status == EventStatus::Draft {
        Err(ApiError::NotFound("event not found".into()))
    } else {
        Err(ApiError::Forbidden(
            "this needs a place on the event's staff roster, the event's organizer or an admin"
                .into(),
        ))
    }
}

/// Whether `user` may see the door record of `ticket` (door roles of its
/// event, or its owner).
pub async fn may_see_ticket(
    state: &AppState,
    user: &AuthUser,
    event: &EventRecord,
    ticket: &TicketRecord,
) -> ApiResult<bool> {
    Ok(ticket.owner_id == Some(user.id) || at_door(state, user, event).await?)
}

/// The event named by the path, whose door the caller works.
#[derive(Debug, Clone)]
pub struct DoorEvent {
    /// The caller.
    pub user: AuthUser,
    /// The event.
    pub event: EventRecord,
}

impl FromRequestParts<AppState> for DoorEvent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let Path(id) = Path::<EventId>::from_request_parts(parts, state).await?;
        let event = state.store.event(id).await?;
        require_door(state, &user, &event).await?;
        Ok(Self { user, event })
    }
}
