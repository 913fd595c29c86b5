//! Request and response bodies of the orders API.

use crate::commerce::{OrderKind, OrderStatus};
use crate::model::{EventId, ListingId, OrderId, TicketId, TierId, UserId, from_millis};
use crate::store::{OrderItemRecord, OrderRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// One line of a new order.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemInput {
    /// Tier number.
    pub tier: u16,
    /// 1 to 50 tickets.
    #[schema(minimum = 1, maximum = 50)]
    pub quantity: u32,
}

/// A new order: tickets of one event, held until paid or expired.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Lines, one per tier (1 to 10).
    #[schema(min_items = 1, max_items = 10)]
    pub items: Vec<OrderItemInput>,
}

/// One line of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemView {
    /// Tier id.
    pub tier_id: TierId,
    /// Tier number.
    pub tier: u16,
    /// Tickets.
    pub quantity: i64,
    /// Price of one, minor units.
    pub unit_price_minor: i64,
}

impl From<&OrderItemRecord> for OrderItemView {
    fn from(i: &OrderItemRecord) -> Self {
        Self {
            tier_id: i.tier_id,
            tier: i.tier,
            quantity: i.quantity,
            unit_price_minor: i.unit_price_minor,
        }
    }
}

/// An order as the API shows it (to its buyer, its event's organizer, admins).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// Id.
    pub id: OrderId,
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Buyer (box-office sales may have none).
    pub buyer_id: Option<UserId>,
    /// `online`, `resale` or `box_office`.
    pub channel: String,
    /// Primary (new tickets) or resale (one listed ticket).
    pub kind: OrderKind,
    /// pending → paid → fulfilled; pending → expired | cancelled; paid → refunded.
    pub status: OrderStatus,
    /// `none` until paid; then `stripe`, `manual`, `free` (or the box-office method).
    pub payment_method: String,
    /// Lines (empty for box-office sales and resale orders).
    pub items: Vec<OrderItemView>,
    /// The listing a resale order buys.
    pub listing_id: Option<ListingId>,
    /// Total, minor units.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// When a pending order's hold ends.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// Tickets this order paid for (read them at `GET /tickets/{id}`).
    #[schema(value_type = Vec<String>)]
    pub ticket_ids: Vec<TicketId>,
    /// Where each paid ticket's NFT stands (status, latest transaction
    /// hash, error): a failed mint shows here. Empty before payment.
    pub mint: Vec<crate::chain::http::TicketMintView>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Paid.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<OffsetDateTime>,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&OrderRecord> for OrderView {
    fn from(o: &OrderRecord) -> Self {
        Self {
            id: o.id,
            event_id: o.event_id,
            buyer_id: o.buyer_id,
            channel: o.channel.clone(),
            kind: o.kind,
            status: o.status,
            payment_method: o.payment_method.clone(),
            items: o.items.iter().map(OrderItemView::from).collect(),
            listing_id: o.listing_id,
            total_minor: o.total_minor,
            currency: o.currency.clone(),
            expires_at: o.expires_at.map(from_millis),
            ticket_ids: o.ticket_ids.clone(),
            mint: Vec::new(),
            created_at: from_millis(o.created_at),
            paid_at: o.paid_at.map(from_millis),
            updated_at: from_millis(o.updated_at),
        }
    }
}

/// A status change by the event's organizer or an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStatusUpdate {
    /// `paid` (confirms a manual payment), `fulfilled`, `expired`,
    /// `cancelled` or `refunded` (through Stripe when paid by Stripe).
    pub status: OrderStatus,
    /// Audit note, or the bank/cash reference of a manual payment.
    #[serde(default)]
    pub reason: String,
}

/// Filters of `GET /orders/user/{user_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Only this event.
    pub event_id: Option<uuid::Uuid>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last order of the previous page.
    pub cursor: Option<uuid::Uuid>,
}
