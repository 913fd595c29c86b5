//! Stats (sold, revenue, capacity, sell-out rate) and the conversion funnel
//! (views → orders → paid → checked in). Orders and check-ins are read from
//! the `orders` and `checkins` tables that the commerce and device-sync
//! modules fill; box-office sales are orders too.

use crate::auth::extract::ManagedEvent;
use crate::error::{ApiResult, ErrorBody};
use crate::http::extract::{Json, Query};
use crate::model::{EventId, from_millis};
use crate::state::AppState;
use crate::store::{Funnel, TierStats};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Sales of one tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierStatsView {
    /// Tier number.
    pub tier: u16,
    /// Name.
    pub name: String,
    /// Capacity.
    pub capacity: i64,
    /// Valid tickets (issued, transferred, checked in).
    pub sold: i64,
    /// Reserved, not yet issued.
    pub reserved: i64,
    /// Checked in.
    pub checked_in: i64,
    /// Revenue, minor units.
    pub revenue_minor: i64,
}

/// An event's sales figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventStats {
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// ISO 4217.
    pub currency: String,
    /// Sum of tier capacities.
    pub capacity: i64,
    /// Valid tickets.
    pub sold: i64,
    /// Reserved tickets.
    pub reserved: i64,
    /// Capacity left.
    pub available: i64,
    /// Checked-in tickets.
    pub checked_in: i64,
    /// Revenue, minor units.
    pub revenue_minor: i64,
    /// sold / capacity (0 when capacity is 0).
    pub sell_out_rate: f64,
    /// Per tier.
    pub tiers: Vec<TierStatsView>,
}

/// The conversion funnel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Analytics {
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Event page views.
    pub views: i64,
    /// Orders.
    pub orders: i64,
    /// Paid orders.
    pub paid: i64,
    /// Checked-in tickets.
    pub checked_in: i64,
    /// orders / views.
    pub view_to_order_rate: Option<f64>,
    /// paid / orders.
    pub order_to_paid_rate: Option<f64>,
    /// checked_in / sold tickets.
    pub attendance_rate: Option<f64>,
}

fn rate(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// Builds the stats from per-tier figures.
pub fn stats_from(event: EventId, currency: &str, tiers: &[TierStats]) -> EventStats {
    let capacity = tiers.iter().map(|t| t.capacity).sum();
    let sold = tiers.iter().map(|t| t.sold).sum();
    let reserved = tiers.iter().map(|t| t.reserved).sum::<i64>();
    EventStats {
        event_id: event,
        currency: currency.to_string(),
        capacity,
        sold,
        reserved,
        available: (capacity - sold - reserved).max(0),
        checked_in: tiers.iter().map(|t| t.checked_in).sum(),
        revenue_minor: tiers.iter().map(|t| t.revenue_minor).sum(),
        sell_out_rate: rate(sold, capacity).unwrap_or(0.0),
        tiers: tiers
            .iter()
            .map(|t| TierStatsView {
                tier: t.tier,
                name: t.name.clone(),
                capacity: t.capacity,
                sold: t.sold,
                reserved: t.reserved,
                checked_in: t.checked_in,
                revenue_minor: t.revenue_minor,
            })
            .collect(),
    }
}

/// Builds the funnel view.
pub fn analytics_from(event: EventId, f: Funnel, sold: i64) -> Analytics {
    Analytics {
        event_id: event,
        views: f.views,
        orders: f.orders,
        paid: f.paid,
        checked_in: f.checked_in,
        view_to_order_rate: rate(f.orders, f.views),
        order_to_paid_rate: rate(f.paid, f.orders),
        attendance_rate: rate(f.checked_in, sold),
    }
}

/// Sales figures (organizer of the event, admin).
#[utoipa::path(get, path = "/events/{id}/stats", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventStats), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stats(State(state): State<AppState>, m: ManagedEvent) -> ApiResult<Json<EventStats>> {
    let tiers = state.store.tier_stats(m.event.id).await?;
    Ok(Json(stats_from(m.event.id, &m.event.currency, &tiers)))
}

/// Conversion funnel (organizer of the event, admin).
#[utoipa::path(get, path = "/events/{id}/analytics", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = Analytics), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn analytics(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> ApiResult<Json<Analytics>> {
    state.views.flush(state.store.as_ref()).await;
    let funnel = state.store.funnel(m.event.id).await?;
    let sold = state
        .store
        .tier_stats(m.event.id)
        .await?
        .iter()
        .map(|t| t.sold)
        .sum();
    Ok(Json(analytics_from(m.event.id, funnel, sold)))
}

/// Bucket width of the sales-over-time series.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SalesBucketWidth {
    /// One hour.
    Hour,
    /// One day (UTC).
    #[default]
    Day,
}

impl SalesBucketWidth {
    fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }
}

/// `?bucket=hour|day`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SalesQuery {
    /// Bucket width (default `day`).
    #[serde(default)]
    #[param(inline)]
    pub bucket: Option<SalesBucketWidth>,
}

/// Paid orders in one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesPoint {
    /// Bucket start (UTC, on the hour or at midnight).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: OffsetDateTime,
    /// Orders paid in the bucket (still paid or fulfilled).
    pub orders: i64,
    /// Tickets in them.
    pub tickets: i64,
    /// Their totals, minor units.
    pub revenue_minor: i64,
}

/// Revenue and tickets sold over time, aggregated in the database (every
/// paid order of the event, however many).
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesOverTime {
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// ISO 4217.
    pub currency: String,
    /// Bucket width.
    #[schema(value_type = String, example = "day")]
    pub bucket: &'static str,
    /// Buckets with at least one paid order, ascending.
    pub points: Vec<SalesPoint>,
}

/// Revenue and tickets sold per hour or day (organizer of the event,
/// admin): the paid orders (status paid or fulfilled) by payment time.
#[utoipa::path(get, path = "/events/{id}/sales-over-time", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"), SalesQuery),
    responses((status = 200, body = SalesOverTime), (status = 400, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn sales_over_time(
    State(state): State<AppState>,
    m: ManagedEvent,
    Query(q): Query<SalesQuery>,
) -> ApiResult<Json<SalesOverTime>> {
    let width = q.bucket.unwrap_or_default();
    let points = state
        .store
        .sales_over_time(m.event.id, width.millis())
        .await?
        .into_iter()
        .map(|b| SalesPoint {
            start: from_millis(b.start),
            orders: b.orders,
            tickets: b.tickets,
            revenue_minor: b.revenue_minor,
        })
        .collect();
    Ok(Json(SalesOverTime {
        event_id: m.event.id,
        currency: m.event.currency.clone(),
        bucket: match width {
            SalesBucketWidth::Hour => "hour",
            SalesBucketWidth::Day => "day",
        },
        points,
    }))
}
