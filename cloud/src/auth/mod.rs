//! Identity: registration, login, refresh-token rotation with reuse
//! detection, logout. Every account registers as a customer; organizer,
//! staff and admin roles are granted by an admin (`PATCH /users/{id}/role`),
//! and the first admin comes from configuration (see [`bootstrap_admin`]).

pub mod extract;
pub mod guard;
pub mod jwt;
pub mod password;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Json;
use crate::http::ratelimit::{ClientIp, retry_after_secs};
use crate::model::{Role, SessionId, UserId};
use crate::state::AppState;
use crate::store::{RefreshOutcome, StoreError, UserRecord};
use crate::users::UserView;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes under `/auth`, in their three rate-limit groups.
pub fn router() -> OpenApiRouter<AppState> {
    registration_router()
        .merge(login_router())
        .merge(session_router())
}

/// `POST /auth/register` (limited per address).
pub fn registration_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register))
}

/// `POST /auth/login` (limited by failed logins, see [`guard`]).
pub fn login_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

/// `POST /auth/refresh` and `POST /auth/logout` (their own bucket).
pub fn session_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// Registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email (case-insensitive, unique).
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Shown name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub display_name: String,
}

/// Login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A refresh token presented for rotation or logout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: String,
}

/// Tokens for a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// HS256 JWT, valid for `expires_in` seconds.
    pub access_token: String,
    /// Opaque; valid 7 days, single use (each refresh returns a new one).
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime, seconds.
    pub expires_in: u64,
    /// The account.
    pub user: UserView,
}

pub(crate) fn normalize_email(email: &str) -> ApiResult<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(ApiError::Validation("email is not a valid address".into()))
    }
}

fn check_password(password: &str) -> ApiResult<()> {
    match password.chars().count() {
        8..=128 => Ok(()),
        _ => Err(ApiError::Validation(
            "password must be 8 to 128 characters".into(),
        )),
    }
}

pub(crate) fn check_name(name: &str) -> ApiResult<String> {
    crate::validate::text("display_name", name, 1, 100, false)
}

async fn start_session(state: &AppState, user: &UserRecord) -> ApiResult<TokenResponse> {
    let session = SessionId::new();
    let refresh = jwt::new_refresh_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = state.now_ms();
    let expires = now + (state.config.auth.refresh_ttl_secs as i64) * 1000;
    state
        .store
        .create_session(user.id, session, &jwt::refresh_hash(&refresh), now, expires)
        .await?;
    tokens_for(state, user, session, refresh)
}

fn tokens_for(
    state: &AppState,
    user: &UserRecord,
    session: SessionId,
    refresh: String,
) -> ApiResult<TokenResponse> {
    let access = state
        .tokens
        .issue(user.id, user.role, session, state.now_secs())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(TokenResponse {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl(),
        user: UserView::from(user),
    })
}

/// Creates a customer account and logs it in.
#[utoipa::path(post, path = "/auth/register", tag = "identity", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 409, body = ErrorBody, description = "email taken"),
               (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let email = normalize_email(&req.email)?;
    check_password(&req.password)?;
    let display_name = check_name(&req.display_name)?;
    let hash = state
        .passwords
        .hash(&req.password)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = state.now_ms();
    let user = UserRecord {
        id: UserId::new(),
        email,
        password_hash: hash,
        display_name,
        role: Role::Customer,
        country: None,
        birth_year: None,
        created_at: now,
        updated_at: now,
    };
    state.store.create_user(&user).await?;
    Ok((
        StatusCode::CREATED,
        Json(start_session(&state, &user).await?),
    ))
}

/// Exchanges email and password for tokens.
#[utoipa::path(post, path = "/auth/login", tag = "identity", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ip: Option<Extension<ClientIp>>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let email = req.email.trim().to_lowercase();
    let ip = ip.map(|Extension(ClientIp(ip))| ip);
    let shared = state.shared_limits.as_ref();
    match state
        .login_guard
        .check(shared, ip, &email, Instant::now())
        .await
    {
        Ok(None) => {}
        Ok(Some(wait)) => return Err(ApiError::TooManyRequests(retry_after_secs(wait))),
        Err(e) => return Err(crate::http::ratelimit::store_down(&e)),
    }
    let user = match state.store.user_by_email(&email).await {
        Ok(u) => Some(u),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let ok = state
        .passwords
        .verify(
            &req.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match user {
        Some(user) if ok => {
            if let Err(e) = state.login_guard.record_success(shared, &email).await {
                tracing::warn!(error = %e, "login: the account's failures could not be forgiven");
            }
            Ok(Json(start_session(&state, &user).await?))
        }
        _ => {
            if let Err(e) = state
                .login_guard
                .record_failure(shared, ip, &email, Instant::now())
                .await
            {
                tracing::warn!(error = %e, "login: a failure could not be counted");
            }
            Err(ApiError::unauthorized(
                "invalid_credentials",
                "email or password is wrong",
            ))
        }
    }
}

/// Rotates a refresh token: the presented one is spent and a new pair is
/// returned. Presenting a spent token again revokes the whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "identity", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody, description = "invalid, expired, revoked or reused token")))]
async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let new = jwt::new_refresh_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = state.now_ms();
    let expires = now + (state.config.auth.refresh_ttl_secs as i64) * 1000;
    let outcome = state
        .store
        .rotate_refresh(
            &jwt::refresh_hash(&req.refresh_token),
            &jwt::refresh_hash(&new),
            now,
            expires,
        )
        .await?;
    match outcome {
        RefreshOutcome::Rotated {
            user_id,
            session_id,
        } => {
            // Re-read the account so a role change takes effect at refresh.
            let user = state.store.user(user_id).await?;
            Ok(Json(tokens_for(&state, &user, session_id, new)?))
        }
        RefreshOutcome::Reused => {
            tracing::warn!("refresh token reused: session revoked");
            Err(ApiError::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked",
            ))
        }
        RefreshOutcome::Expired => Err(ApiError::unauthorized(
            "refresh_token_expired",
            "the refresh token has expired",
        )),
        RefreshOutcome::Revoked => Err(ApiError::unauthorized(
            "session_revoked",
            "the session has been revoked",
        )),
        RefreshOutcome::Unknown => Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "unknown refresh token",
        )),
    }
}

/// Ends the session of a refresh token (idempotent).
#[utoipa::path(post, path = "/auth/logout", tag = "identity", request_body = RefreshRequest,
    responses((status = 204, description = "session revoked")))]
async fn logout(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    state
        .store
        .revoke_session_by_token(&jwt::refresh_hash(&req.refresh_token), state.now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What start-up did about the bootstrap admin (it is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapAdmin {
    /// `auth.bootstrap_admin_email`/`_password` are not both set.
    NotConfigured,
    /// The account was created now.
    Created(String),
    /// An account with that email already exists (left as it is).
    Exists(String),
}

/// Creates the configured bootstrap admin if no account has its email yet.
pub async fn bootstrap_admin(state: &AppState) -> Result<BootstrapAdmin, ApiError> {
    let (Some(email), Some(password)) = (
        state.config.auth.bootstrap_admin_email.as_deref(),
        state.config.auth.bootstrap_admin_password.as_ref(),
    ) else {
        return Ok(BootstrapAdmin::NotConfigured);
    };
    let email = normalize_email(email)?;
    match state.store.user_by_email(&email).await {
        Ok(_) => return Ok(BootstrapAdmin::Exists(email)),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    check_password(password.expose())?;
    let now = state.now_ms();
    let user = UserRecord {
        id: UserId::new(),
        email: email.clone(),
        password_hash: state
            .passwords
            .hash(password.expose())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        display_name: "Administrator".into(),
        role: Role::Admin,
        country: None,
        birth_year: None,
        created_at: now,
        updated_at: now,
    };
    match state.store.create_user(&user).await {
        Ok(()) => Ok(BootstrapAdmin::Created(email)),
        Err(StoreError::Duplicate(_)) => Ok(BootstrapAdmin::Exists(email)),
        Err(e) => Err(e.into()),
    }
}
