//! Authentication and authorization as extractors, so no handler repeats a
//! check: [`AuthUser`] (any valid access token), [`Organizer`] (organizer or
//! admin), [`Admin`], and [`ManagedEvent`] (the event in the path, loaded and
//! checked to belong to the caller unless they are an admin).

use crate::error::ApiError;
use crate::http::extract::Path;
use crate::model::{EventId, EventStatus, Role, SessionId, UserId};
use crate::state::AppState;
use crate::store::EventRecord;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// The caller, from a valid access token.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// Their id.
    pub id: UserId,
    /// Their role (as of the token's issue).
    pub role: Role,
    /// Their login session.
    pub session: SessionId,
}

impl AuthUser {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    /// Whether the caller may manage `event` (its organizer, or an admin).
    pub fn manages(&self, event: &EventRecord) -> bool {
        self.is_admin() || (self.role == Role::Organizer && event.organizer_id == self.id)
    }
    /// Whether `event` exists as far as the caller knows: published events
    /// for everyone, drafts only for those who manage them.
    pub fn sees(&self, event: &EventRecord) -> bool {
        event.status != EventStatus::Draft || self.manages(event)
    }
    /// Refuses callers who may not manage `event`: someone else's draft is
    /// 404 (it does not exist for them), anything else 403 `forbidden`.
    pub fn require_manager(&self, event: &EventRecord, forbidden: &str) -> Result<(), ApiError> {
        if self.manages(event) {
            Ok(())
        } else if !self.sees(event) {
            Err(ApiError::NotFound("event not found".into()))
        } else {
            Err(ApiError::Forbidden(forbidden.into()))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "an `Authorization: Bearer` access token is required",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid_token",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        let claims = state.tokens.verify(token.trim()).map_err(|_| {
            ApiError::unauthorized("invalid_token", "the access token is invalid or expired")
        })?;
        // A well-signed token can outlive its account (deleted, or a token
        // minted by another deployment with the same key): the subject must
        // exist, or nothing the handler does with it makes sense.
        match state.store.user(claims.sub).await {
            Ok(_) => {}
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(ApiError::unauthorized(
                    "unknown_subject",
                    "the account this token was issued to no longer exists: sign in again",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Self {
            id: claims.sub,
            role: claims.role,
            session: claims.sid,
        })
    }
}

/// `Option<AuthUser>`: `None` without an `Authorization` header (public
/// reads); a header that is there must be valid (401 otherwise).
impl axum::extract::OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// An organizer or an admin.
#[derive(Debug, Clone, Copy)]
pub struct Organizer(pub AuthUser);

impl FromRequestParts<AppState> for Organizer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        match user.role {
            Role::Organizer | Role::Admin => Ok(Self(user)),
            _ => Err(ApiError::Forbidden("this needs the organizer role".into())),
        }
    }
}

/// An admin.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub AuthUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(Self(user))
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }
}

/// The event named by the path's `{id}`, which the caller manages.
#[derive(Debug, Clone)]
pub struct ManagedEvent {
    /// The caller.
    pub user: AuthUser,
    /// The event, with tiers.
    pub event: EventRecord,
}

impl FromRequestParts<AppState> for ManagedEvent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let Path(id) = Path::<EventId>::from_request_parts(parts, state).await?;
        let event = state.store.event(id).await?;
        user.require_manager(&event, "only the event's organizer or an admin may do this")?;
        Ok(Self { user, event })
    }
}
