//! Published events for everyone, signed in or not: the shop's listing and
//! event page. Drafts never appear here (a draft's id answers 404, the same
//! as an id that does not exist).

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{EventId, EventStatus, to_millis};
use crate::state::AppState;
use crate::store::PublicEventFilter;
use axum::extract::State;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::EventView;

/// Routes under `/public/events`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(public_events))
        .routes(routes!(public_event))
}

/// Filters of `GET /public/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PublicEventQuery {
    /// Only this status (`active`, `live`, `ended` or `cancelled`; never `draft`).
    pub status: Option<EventStatus>,
    /// Name contains this, case-insensitive (1 to 100 characters).
    #[param(min_length = 1, max_length = 100)]
    pub q: Option<String>,
    /// Starts at or after this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub starts_from: Option<OffsetDateTime>,
    /// Starts before this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub starts_before: Option<OffsetDateTime>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last event of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

/// Published events (no account needed), ascending by id, with tiers and
/// how many places each still has.
#[utoipa::path(get, path = "/public/events", tag = "events", params(PublicEventQuery),
    responses((status = 200, body = Page<EventView>),
              (status = 400, body = ErrorBody, description = "bad query (limit, dates, unknown parameter)"),
              (status = 422, body = ErrorBody, description = "`status=draft` or an empty name filter")))]
async fn public_events(
    State(state): State<AppState>,
    Query(q): Query<PublicEventQuery>,
) -> ApiResult<Json<Page<EventView>>> {
    let limit = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    if q.status == Some(EventStatus::Draft) {
        return Err(ApiError::Validation(
            "drafts are not public: status must be active, live, ended or cancelled".into(),
        ));
    }
    let name = q.q.as_deref().map(str::trim);
    if name.is_some_and(|n| n.is_empty() || n.chars().count() > 100) {
        return Err(ApiError::Validation("q must be 1 to 100 characters".into()));
    }
    let filter = PublicEventFilter {
        status: q.status,
        name: name.map(str::to_owned),
        starts_from: q.starts_from.map(to_millis),
        starts_before: q.starts_before.map(to_millis),
        after: q.cursor.map(Into::into),
        limit,
    };
    let events = state.store.public_events(&filter).await?;
    Ok(Json(Page::new(
        events.iter().map(EventView::from).collect(),
        limit,
        |e: &EventView| e.id.to_string(),
    )))
}

/// One published event (no account needed), with its tiers and their
/// availability. Counts as a page view in the analytics funnel.
#[utoipa::path(get, path = "/public/events/{id}", tag = "events",
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventView), (status = 400, body = ErrorBody, description = "the id is not a UUID"),
              (status = 404, body = ErrorBody, description = "no such published event")))]
async fn public_event(
    State(state): State<AppState>,
    Path(id): Path<EventId>,
) -> ApiResult<Json<EventView>> {
    let event = state.store.event(id).await?;
    if event.status == EventStatus::Draft {
        return Err(ApiError::NotFound("event not found".into()));
    }
    state.views.record(id);
    Ok(Json(EventView::from(&event)))
}
