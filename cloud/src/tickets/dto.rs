//! Ticket bodies.

use crate::model::{EventId, OrderId, TicketId, TicketStatus, TierId, UserId, from_millis};
use crate::store::{AuditRecord, TicketRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// A ticket as the API shows it (only to its owner, its organizer, admins).
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: TicketId,
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Tier id.
    pub tier_id: TierId,
    /// Tier number.
    pub tier: u16,
    /// Zone mask.
    pub zone_mask: u32,
    /// Holder account.
    pub owner_id: Option<UserId>,
    /// Paying order.
    pub order_id: Option<OrderId>,
    /// Name on the ticket.
    pub holder_name: String,
    /// Lifecycle state.
    pub status: TicketStatus,
    /// Credential generation.
    pub generation: u16,
    /// The signed credential (`TK1:` QR text) once issued.
    pub credential: Option<String>,
    /// Price paid, minor units.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&TicketRecord> for TicketView {
    fn from(t: &TicketRecord) -> Self {
        Self {
            id: t.id,
            event_id: t.event_id,
            tier_id: t.tier_id,
            tier: t.tier,
            zone_mask: t.zone_mask,
            owner_id: t.owner_id,
            order_id: t.order_id,
            holder_name: t.holder_name.clone(),
            status: t.status,
            generation: t.generation,
            credential: t.credential.clone(),
            price_minor: t.price_minor,
            currency: t.currency.clone(),
            created_at: from_millis(t.created_at),
            updated_at: from_millis(t.updated_at),
        }
    }
}

/// A ticket created by an organizer (complimentary or manual issuance).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicket {
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Tier number.
    pub tier: u16,
    /// Holder account (must exist).
    pub owner_id: Option<UserId>,
    /// Name on the ticket (default: the owner's display name).
    pub holder_name: Option<String>,
    /// `issued` (default) or `reserved`.
    pub status: Option<TicketStatus>,
}

/// A status change by the organizer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketStatusUpdate {
    /// `issued` (from reserved), `checked_in`, `cancelled` or `refunded`.
    pub status: TicketStatus,
    /// Audit note.
    #[serde(default)]
    pub reason: String,
}

/// Filters of `GET /tickets`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    /// Only this event.
    pub event_id: Option<uuid::Uuid>,
    /// Only this status.
    pub status: Option<TicketStatus>,
    /// Only this owner.
    pub owner_id: Option<uuid::Uuid>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last ticket of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

/// QR image format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QrQuery {
    /// `png` (default) or `svg`.
    #[param(inline)]
    pub format: Option<QrFormat>,
}

/// QR image formats.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QrFormat {
    /// PNG image.
    Png,
    /// SVG document.
    Svg,
}

/// One line of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Previous state.
    pub from_status: Option<TicketStatus>,
    /// New state.
    pub to_status: TicketStatus,
    /// Who.
    pub actor_id: Option<UserId>,
    /// Why.
    pub reason: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<&AuditRecord> for AuditView {
    fn from(a: &AuditRecord) -> Self {
        Self {
            from_status: a.from_status,
            to_status: a.to_status,
            actor_id: a.actor_id,
            reason: a.reason.clone(),
            at: from_millis(a.at),
        }
    }
}
