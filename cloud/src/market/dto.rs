//! Request and response bodies of transfers, the resale market and sales
//! policies.

use crate::commerce::{ListingStatus, TransferKind};
use crate::model::{EventId, ListingId, OrderId, TicketId, UserId, from_millis};
use crate::store::{LedgerRecord, ListingRecord, SalesPolicy, TransferRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Gives a ticket to another account: name it by id or by email (one of).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The recipient's user id.
    pub to_user_id: Option<UserId>,
    /// The recipient's account email.
    pub to_email: Option<String>,
}

/// One link of a ticket's chain of owners.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    /// The ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Previous owner.
    pub from_user_id: Option<UserId>,
    /// New owner.
    pub to_user_id: UserId,
    /// Credential generation from then on (older QR codes are refused).
    pub generation: u16,
    /// `gift` or `resale`.
    pub kind: TransferKind,
    /// The resale order.
    pub order_id: Option<OrderId>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<&TransferRecord> for TransferView {
    fn from(t: &TransferRecord) -> Self {
        Self {
            ticket_id: t.ticket_id,
            from_user_id: t.from_owner,
            to_user_id: t.to_owner,
            generation: t.generation,
            kind: t.kind,
            order_id: t.order_id,
            at: from_millis(t.at),
        }
    }
}

/// A new resale listing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateListing {
    /// The caller's ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Asking price, minor units, at most the event's cap (face value by default).
    pub price_minor: i64,
}

/// A resale listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListingView {
    /// Id.
    pub id: ListingId,
    /// The ticket for sale.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Its event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// The seller.
    pub seller_id: UserId,
    /// Price, minor units.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// active, held (a buyer is paying), sold, cancelled.
    pub status: ListingStatus,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&ListingRecord> for ListingView {
    fn from(l: &ListingRecord) -> Self {
        Self {
            id: l.id,
            ticket_id: l.ticket_id,
            event_id: l.event_id,
            seller_id: l.seller_id,
            price_minor: l.price_minor,
            currency: l.currency.clone(),
            status: l.status,
            created_at: from_millis(l.created_at),
        }
    }
}

/// Filters of `GET /market/listings`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListingQuery {
    /// Only this event.
    pub event_id: Option<uuid::Uuid>,
    /// Only this seller.
    pub seller_id: Option<uuid::Uuid>,
    /// Only this status (default `active`).
    pub status: Option<ListingStatus>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last listing of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

/// An event's sales rules.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesPolicyBody {
    /// Most tickets one customer may hold or be paying for (1 to 1,000,000).
    pub max_tickets_per_customer: i64,
    /// Whether tickets may be resold.
    pub resale_enabled: bool,
    /// Resale price cap, percent of the tier's face value (0 to 1000; 100 = face value).
    pub resale_max_percent: i64,
}

impl From<SalesPolicy> for SalesPolicyBody {
    fn from(p: SalesPolicy) -> Self {
        Self {
            max_tickets_per_customer: p.max_tickets_per_customer,
            resale_enabled: p.resale_enabled,
            resale_max_percent: p.resale_max_percent,
        }
    }
}

/// A line of a seller's ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerLineView {
    /// The resale order.
    pub order_id: OrderId,
    /// The listing.
    pub listing_id: Option<ListingId>,
    /// `resale_credit` or `resale_reversal`.
    pub kind: String,
    /// Signed amount, minor units.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<&LedgerRecord> for LedgerLineView {
    fn from(l: &LedgerRecord) -> Self {
        Self {
            order_id: l.order_id,
            listing_id: l.listing_id,
            kind: l.kind.clone(),
            amount_minor: l.amount_minor,
            currency: l.currency.clone(),
            at: from_millis(l.at),
        }
    }
}

/// A balance in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Balance {
    /// ISO 4217.
    pub currency: String,
    /// Owed to the seller, minor units.
    pub amount_minor: i64,
}

/// The caller's resale earnings.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerView {
    /// Sums per currency.
    pub balances: Vec<Balance>,
    /// Every line, oldest first.
    pub entries: Vec<LedgerLineView>,
}
