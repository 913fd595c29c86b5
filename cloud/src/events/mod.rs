//! Events and admin analytics: CRUD, the lifecycle, tiers, box-office
//! sales, stats, the conversion funnel and reports.
//!
//! Visibility: published events (active, live, ended, cancelled) are
//! readable by every signed-in user; drafts only by their organizer and
//! admins. Changes need the event's organizer or an admin ([`ManagedEvent`]).

pub mod analytics;
pub mod dto;
pub mod keys;
pub mod public;
pub mod reports;
pub mod staff;
pub mod zones;

use crate::auth::extract::{AuthUser, ManagedEvent, Organizer};
use crate::crypto::signing::{extend_certificate, new_event_key};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{EventId, EventStatus, OrderId, Role, TicketStatus, UserId, new_event_id};
use crate::state::AppState;
use crate::store::{EventChange, EventFilter, EventRecord, NewOrder};
use crate::tickets::dto::TicketView;
use crate::tickets::issue::{IssueSpec, issue};
use axum::extract::State;
use axum::http::StatusCode;
use dto::{
    CreateEvent, EventView, StatusUpdate, TierInput, UpdateEvent, check_fields, check_tier,
    check_tiers, check_zones,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes under `/events`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_event, list_events))
        .routes(routes!(get_event, update_event))
        .routes(routes!(organizer_events))
        .routes(routes!(set_status))
        .routes(routes!(add_tier))
        .routes(routes!(ticket_sale))
        .routes(routes!(keys::signing_keys, keys::rotate_key))
        .routes(routes!(keys::retire_key))
        .routes(routes!(analytics::stats))
        .routes(routes!(analytics::analytics))
        .routes(routes!(analytics::sales_over_time))
        .routes(routes!(reports::create_report, reports::list_reports))
        .routes(routes!(reports::get_report))
        .routes(routes!(staff::list_staff, staff::add_staff))
        .routes(routes!(staff::remove_staff))
        .routes(routes!(staff::roster_events))
        .routes(routes!(zones::list_zones))
        .routes(routes!(zones::set_zone, zones::delete_zone))
        .merge(public::router())
}

/// Filters of `GET /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only this organizer's events.
    pub organizer_id: Option<uuid::Uuid>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last event of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

/// A box-office sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketSale {
    /// Tier number.
    pub tier: u16,
    /// 1 to 50 tickets.
    #[schema(minimum = 1, maximum = 50)]
    pub quantity: u32,
    /// Name on the tickets.
    pub holder_name: String,
    /// Buyer's account email, if they have one (they then own the tickets).
    pub buyer_email: Option<String>,
    /// `cash`, `card` or `other`.
    pub payment_method: String,
    /// Amount taken, minor units; must equal price × quantity when given.
    pub amount_minor: Option<i64>,
}

/// A completed box-office sale.
#[derive(Debug, Serialize, ToSchema)]
pub struct SaleReceipt {
    /// The order recorded.
    pub order_id: OrderId,
    /// Total, minor units.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// The tickets issued, with credentials.
    pub tickets: Vec<TicketView>,
}

fn page(events: Vec<EventRecord>, limit: i64) -> Page<EventView> {
    Page::new(
        events.iter().map(EventView::from).collect(),
        limit,
        |e: &EventView| e.id.to_string(),
    )
}

/// Creates a draft event with its tiers and a signing key certified by the
/// organizer's root key (organizers and admins).
#[utoipa::path(post, path = "/events", tag = "events", security(("bearer" = [])), request_body = CreateEvent,
    responses((status = 201, body = EventView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_event(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Json(req): Json<CreateEvent>,
) -> ApiResult<(StatusCode, Json<EventView>)> {
    let (name, description, venue, starts_at, ends_at) = check_fields(
        &req.name,
        &req.description,
        &req.venue,
        req.starts_at,
        req.ends_at,
        crate::model::from_millis(state.now_ms()),
    )?;
    let id = new_event_id();
    let zones = check_zones(&req.zones)?;
    let tiers = check_tiers(id, &req.currency, &zones, &req.tiers)?;
    let now = state.now_ms();
    let key = new_event_key(
        state.store.as_ref(),
        &state.vault,
        user.id,
        id,
        ends_at,
        now,
    )
    .await
    .map_err(|e| ApiError::Internal(format!("event key: {e}")))?;
    let event = EventRecord {
        id,
        organizer_id: user.id,
        name,
        description,
        venue,
        starts_at,
        ends_at,
        currency: req.currency.clone(),
        status: EventStatus::Draft,
        manifest_version: 0,
        created_at: now,
        updated_at: now,
        tiers,
        zones,
    };
    state.store.create_event(&event, &key).await?;
    Ok((
        StatusCode::CREATED,
        Json(EventView::from(&state.store.event(id).await?)),
    ))
}

/// Events visible to the caller, ascending by id.
#[utoipa::path(get, path = "/events", tag = "events", security(("bearer" = [])), params(EventQuery),
    responses((status = 200, body = Page<EventView>), (status = 400, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<Page<EventView>>> {
    let limit = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let organizer_id = q.organizer_id.map(UserId);
    let filter = EventFilter {
        organizer_id,
        status: q.status,
        include_drafts: user.is_admin()
            || (user.role == Role::Organizer && organizer_id == Some(user.id)),
        after: q.cursor.map(Into::into),
        limit,
    };
    Ok(Json(page(state.store.list_events(&filter).await?, limit)))
}

/// One event. Counts as a page view in the analytics funnel.
#[utoipa::path(get, path = "/events/{id}", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_event(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<EventId>,
) -> ApiResult<Json<EventView>> {
    let event = state.store.event(id).await?;
    if !user.sees(&event) {
        return Err(ApiError::NotFound("event not found".into()));
    }
    state.views.record(id);
    Ok(Json(EventView::from(&event)))
}

/// Every event of one organizer, drafts included (that organizer or an admin).
#[utoipa::path(get, path = "/events/admin/{admin_id}", tag = "events", security(("bearer" = [])),
    params(("admin_id" = String, Path, format = Uuid, description = "organizer's user id"), PageParams),
    responses((status = 200, body = Page<EventView>), (status = 403, body = ErrorBody)))]
async fn organizer_events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(admin_id): Path<UserId>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<EventView>>> {
    if !(user.is_admin() || (user.role == Role::Organizer && user.id == admin_id)) {
        return Err(ApiError::Forbidden(
            "only that organizer or an admin may list these events".into(),
        ));
    }
    let limit = p.limit()?;
    let filter = EventFilter {
        organizer_id: Some(admin_id),
        status: None,
        include_drafts: true,
        after: p.cursor.map(Into::into),
        limit,
    };
    Ok(Json(page(state.store.list_events(&filter).await?, limit)))
}

/// Replaces the editable fields (not once ended or cancelled: 409). Moving
/// the end later also widens the signing key's certificate.
#[utoipa::path(put, path = "/events/{id}", tag = "events", security(("bearer" = [])), request_body = UpdateEvent,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_event(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<UpdateEvent>,
) -> ApiResult<Json<EventView>> {
    let (name, description, venue, starts_at, ends_at) = check_fields(
        &req.name,
        &req.description,
        &req.venue,
        req.starts_at,
        req.ends_at,
        crate::model::from_millis(state.now_ms()),
    )?;
    let change = EventChange {
        name,
        description,
        venue,
        starts_at,
        ends_at,
    };
    let now = state.now_ms();
    let event = state.store.update_event(m.event.id, &change, now).await?;
    // Gates refuse credentials and manifests once the key's certificate has
    // run out, so a postponed event needs a wider one.
    extend_certificate(
        state.store.as_ref(),
        &state.vault,
        event.organizer_id,
        event.id,
        event.ends_at,
        now,
    )
    .await
    .map_err(|e| ApiError::Internal(format!("event key: {e}")))?;
    Ok(Json(EventView::from(&event)))
}

/// Moves the lifecycle: draft → active → live → ended, or → cancelled
/// before it ends (cancelling revokes every ticket). Other steps are 409.
#[utoipa::path(patch, path = "/events/{id}/status", operation_id = "set_event_status", tag = "events", security(("bearer" = [])), request_body = StatusUpdate,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "illegal transition")))]
async fn set_status(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<StatusUpdate>,
) -> ApiResult<Json<EventView>> {
    let event = state
        .store
        .set_event_status(m.event.id, req.status, m.user.id, state.now_ms())
        .await?;
    Ok(Json(EventView::from(&event)))
}

/// Adds a ticket tier.
#[utoipa::path(post, path = "/events/{id}/tiers", tag = "events", security(("bearer" = [])), request_body = TierInput,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 201, body = EventView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_tier(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<TierInput>,
) -> ApiResult<(StatusCode, Json<EventView>)> {
    if m.event.tiers.len() >= 64 {
        return Err(ApiError::Validation("an event has at most 64 tiers".into()));
    }
    let tier = check_tier(m.event.id, &m.event.currency, &m.event.zones, &req)?;
    state.store.add_tier(&tier, state.now_ms()).await?;
    Ok((
        StatusCode::CREATED,
        Json(EventView::from(&state.store.event(m.event.id).await?)),
    ))
}

/// Records a box-office sale: a paid order and its issued tickets, in one
/// transaction; counts in stats and analytics like any sale.
#[utoipa::path(post, path = "/events/{id}/ticket-sale", tag = "events", security(("bearer" = [])), request_body = TicketSale,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 201, body = SaleReceipt), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "sold out or not on sale"), (status = 422, body = ErrorBody)))]
async fn ticket_sale(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<TicketSale>,
) -> ApiResult<(StatusCode, Json<SaleReceipt>)> {
    let tier = m
        .event
        .tiers
        .iter()
        .find(|t| t.tier == req.tier)
        .ok_or_else(|| ApiError::Validation(format!("the event has no tier {}", req.tier)))?;
    if !(1..=50).contains(&req.quantity) {
        return Err(ApiError::Validation(
            "quantity must be between 1 and 50".into(),
        ));
    }
    if !matches!(req.payment_method.as_str(), "cash" | "card" | "other") {
        return Err(ApiError::Validation(
            "payment_method must be cash, card or other".into(),
        ));
    }
    let total = tier.price_minor * i64::from(req.quantity);
    if req.amount_minor.is_some_and(|a| a != total) {
        return Err(ApiError::Validation(format!(
            "amount_minor must be {total} ({} × {})",
            tier.price_minor, req.quantity
        )));
    }
    let holder_name = crate::auth::check_name(&req.holder_name)?;
    let buyer = match &req.buyer_email {
        Some(email) => Some(
            state
                .store
                .user_by_email(&crate::auth::normalize_email(email)?)
                .await
                .map_err(|_| ApiError::Validation("buyer_email does not name an account".into()))?
                .id,
        ),
        None => None,
    };
    let order = NewOrder {
        id: OrderId::new(),
        buyer_id: buyer,
        channel: "box_office".into(),
        payment_method: req.payment_method.clone(),
        total_minor: total,
        currency: tier.currency.clone(),
    };
    let spec = IssueSpec {
        quantity: req.quantity,
        owner: buyer,
        holder_name,
        status: TicketStatus::Issued,
        price_minor: tier.price_minor,
        order: Some(order.clone()),
        actor: m.user.id,
        reason: "box-office sale".into(),
    };
    let tickets = issue(&state, &m.event, tier, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(SaleReceipt {
            order_id: order.id,
            total_minor: total,
            currency: order.currency,
            tickets: tickets.iter().map(TicketView::from).collect(),
        }),
    ))
}
