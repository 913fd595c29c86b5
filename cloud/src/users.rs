//! Profiles: `GET/PATCH /users/me`, and role grants by admins.

use crate::auth::extract::{Admin, AuthUser};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{Role, UserId, from_millis};
use crate::state::AppState;
use crate::store::{ProfileChange, UserRecord};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes under `/users`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(get_user))
        .routes(routes!(set_role))
        .routes(routes!(search_users))
}

/// An account as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: UserId,
    /// Email.
    pub email: String,
    /// Shown name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Birth year.
    pub birth_year: Option<i32>,
    /// Created (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            country: u.country.clone(),
            birth_year: u.birth_year,
            created_at: from_millis(u.created_at),
        }
    }
}

/// Profile changes; omitted fields stay, `null` clears optional ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// Shown name.
    pub display_name: Option<String>,
    /// ISO 3166-1 alpha-2 (two uppercase letters), or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    /// 1900 to the current year, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub birth_year: Option<Option<i32>>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A role grant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    /// The new role.
    pub role: Role,
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&state.store.user(user.id).await?)))
}

/// Changes the caller's profile.
#[utoipa::path(patch, path = "/users/me", tag = "identity", security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<ProfileUpdate>,
) -> ApiResult<Json<UserView>> {
    let display_name = req
        .display_name
        .as_deref()
        .map(crate::auth::check_name)
        .transpose()?;
    if let Some(Some(c)) = &req.country
        && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(ApiError::Validation(
            "country must be an ISO 3166-1 alpha-2 code such as \"DK\"".into(),
        ));
    }
    let this_year = state.clock.now().year();
    if let Some(Some(y)) = req.birth_year
        && !(1900..=this_year).contains(&y)
    {
        return Err(ApiError::Validation(format!(
            "birth_year must be between 1900 and {this_year}"
        )));
    }
    let change = ProfileChange {
        display_name,
        country: req.country,
        birth_year: req.birth_year,
    };
    let updated = state
        .store
        .update_profile(user.id, &change, state.now_ms())
        .await?;
    Ok(Json(UserView::from(&updated)))
}

/// Any account (admins only).
#[utoipa::path(get, path = "/users/{id}", tag = "identity", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&state.store.user(id).await?)))
}

/// Grants a role (admins only); takes effect at the user's next login or refresh.
#[utoipa::path(patch, path = "/users/{id}/role", tag = "identity", security(("bearer" = [])), request_body = RoleUpdate,
    params(("id" = UserId, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "an admin cannot demote themselves")))]
async fn set_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<UserId>,
    Json(req): Json<RoleUpdate>,
) -> ApiResult<Json<UserView>> {
    if id == admin.id && req.role != Role::Admin {
        return Err(ApiError::Conflict("admins cannot demote themselves".into()));
    }
    let user = state.store.set_role(id, req.role, state.now_ms()).await?;
    tracing::info!(admin = %admin.id, user = %id, role = req.role.as_str(), "role granted");
    Ok(Json(UserView::from(&user)))
}

/// Filters of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Email contains this, case-insensitive (1 to 254 characters).
    #[param(min_length = 1, max_length = 254)]
    pub email: String,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last user of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

/// Finds accounts by email (admins only), ascending by id: the way to a
/// user's id before granting a role.
#[utoipa::path(get, path = "/users", tag = "identity", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = Page<UserView>),
              (status = 400, body = ErrorBody, description = "bad query (missing email, limit)"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not an admin"),
              (status = 422, body = ErrorBody, description = "empty or too long email filter")))]
async fn search_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<UserQuery>,
) -> ApiResult<Json<Page<UserView>>> {
    let limit = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let fragment = q.email.trim();
    if fragment.is_empty() || fragment.chars().count() > 254 {
        return Err(ApiError::Validation(
            "email must be 1 to 254 characters".into(),
        ));
    }
    let users = state
        .store
        .search_users(fragment, q.cursor.map(UserId), limit)
        .await?;
    Ok(Json(Page::new(
        users.iter().map(UserView::from).collect(),
        limit,
        |u: &UserView| u.id.to_string(),
    )))
}
