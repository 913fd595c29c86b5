//! `GET /events/{id}/orders`: an event's orders for its organizer (and
//! admins), filtered by status, buyer email and creation time, so the box
//! office can find the order to confirm or refund without an id sent by hand.

use crate::auth::extract::ManagedEvent;
use crate::commerce::OrderStatus;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Query};
use crate::model::{OrderId, to_millis};
use crate::state::AppState;
use crate::store::EventOrderFilter;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::OrderView;

/// The route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(event_orders))
}

/// Filters of `GET /events/{id}/orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventOrderQuery {
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// The buyer's email contains this, case-insensitive (1 to 254 characters).
    #[param(min_length = 1, max_length = 254)]
    pub buyer_email: Option<String>,
    /// Created at or after this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_from: Option<OffsetDateTime>,
    /// Created before this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<OffsetDateTime>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last order of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

/// An order in the organizer's list: the order and who bought it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOrderView {
    /// The order.
    #[serde(flatten)]
    pub order: OrderView,
    /// The buyer account's email (absent for box-office sales without one).
    pub buyer_email: Option<String>,
}

/// An event's orders, ascending by id (the event's organizer or an admin).
#[utoipa::path(get, path = "/events/{id}/orders", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"), EventOrderQuery),
    responses((status = 200, body = Page<EventOrderView>),
              (status = 400, body = ErrorBody, description = "bad query or path"),
              (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "not the event's organizer"),
              (status = 404, body = ErrorBody, description = "no such event"),
              (status = 422, body = ErrorBody, description = "empty email filter or an empty time range")))]
async fn event_orders(
    State(state): State<AppState>,
    m: ManagedEvent,
    Query(q): Query<EventOrderQuery>,
) -> ApiResult<Json<Page<EventOrderView>>> {
    let limit = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let email = q.buyer_email.as_deref().map(str::trim);
    if email.is_some_and(|e| e.is_empty() || e.chars().count() > 254) {
        return Err(ApiError::Validation(
            "buyer_email must be 1 to 254 characters".into(),
        ));
    }
    if let (Some(from), Some(before)) = (q.created_from, q.created_before)
        && from >= before
    {
        return Err(ApiError::Validation(
            "created_from must be before created_before".into(),
        ));
    }
    let filter = EventOrderFilter {
        event_id: Some(m.event.id),
        status: q.status,
        buyer_email: email.map(str::to_owned),
        created_from: q.created_from.map(to_millis),
        created_before: q.created_before.map(to_millis),
        after: q.cursor.map(OrderId),
        limit,
    };
    let rows = state.store.event_orders(&filter).await?;
    let mut views: Vec<EventOrderView> = rows
        .iter()
        .map(|r| EventOrderView {
            order: OrderView::from(&r.order),
            buyer_email: r.buyer_email.clone(),
        })
        .collect();
    crate::chain::http::attach_mint(&state, views.iter_mut().map(|v| &mut v.order)).await?;
    Ok(Json(Page::new(views, limit, |o: &EventOrderView| {
        o.order.id.to_string()
    })))
}
