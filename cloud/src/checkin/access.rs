//! Who may work the door: staff (any event: there is no per-event staff
//! roster yet), the event's organizer, admins. Customers see only scans of
//! their own tickets.

use crate::auth::extract::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::Path;
use crate::model::{EventId, EventStatus, Role};
use crate::state::AppState;
use crate::store::{EventRecord, TicketRecord};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Whether `user` may check in, validate and see every scan of `event`.
pub fn at_door(user: &AuthUser, event: &EventRecord) -> bool {
    match user.role {
        Role::Admin | Role::Staff => true,
        Role::Organizer => event.organizer_id == user.id,
        Role::Customer => false,
    }
}

/// Refuses callers who may not work `event`'s door (someone else's draft
/// does not exist for them).
pub fn require_door(user: &AuthUser, event: &EventRecord) -> ApiResult<()> {
    if at_door(user, event) {
        Ok(())
    } else if event.status == EventStatus::Draft && user.role != Role::Staff {
        Err(ApiError::NotFound("event not found".into()))
    } else {
        Err(ApiError::Forbidden(
            "this needs the staff role, the event's organizer or an admin".into(),
        ))
    }
}

/// Whether `user` may see the door record of `ticket` (door roles of its
/// event, or its owner).
pub fn may_see_ticket(user: &AuthUser, event: &EventRecord, ticket: &TicketRecord) -> bool {
    at_door(user, event) || ticket.owner_id == Some(user.id)
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
        require_door(&user, &event)?;
        Ok(Self { user, event })
    }
}
