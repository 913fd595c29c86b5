//! Rows as the store hands them out and takes them in. Times are unix
//! milliseconds (UTC); money is minor units plus an ISO 4217 code.

use crate::model::{
    EventId, EventStatus, OrderId, ReportId, Role, SessionId, TicketId, TicketStatus, TierId,
    UnixMillis, UserId,
};

/// A user account, including its password hash (never serialised).
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Lower-cased email, unique.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Shown name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// ISO 3166-1 alpha-2, optional (demographic reports).
    pub country: Option<String>,
    /// Optional (demographic reports).
    pub birth_year: Option<i32>,
    /// Created.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
}

/// Profile fields a user may change; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// New display name.
    pub display_name: Option<String>,
    /// New country.
    pub country: Option<Option<String>>,
    /// New birth year.
    pub birth_year: Option<Option<i32>>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now used, and the new one stored.
    Rotated {
        /// Owner.
        user_id: UserId,
        /// Session (family) it belongs to.
        session_id: SessionId,
    },
    /// The token had already been used: the whole session is now revoked.
    Reused,
    /// Unknown token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Its session was revoked (logout, or earlier reuse).
    Revoked,
}

/// A sealed ed25519 key (organizer root or event key).
#[derive(Debug, Clone)]
pub struct SealedKey {
    /// `SHA-256(public key)[0..8]`, hex.
    pub key_id: String,
    /// 32-byte public key.
    pub public_key: Vec<u8>,
    /// Nonce and ciphertext of the seed (see `crypto::KeyVault`).
    pub sealed_seed: Vec<u8>,
}

/// An event signing key with its certificate.
#[derive(Debug, Clone)]
pub struct EventKeyRecord {
    /// The sealed key.
    pub key: SealedKey,
    /// Encoded `KeyCertificate` by the organizer's root key.
    pub certificate: Vec<u8>,
    /// Certificate start, unix seconds.
    pub not_before: i64,
    /// Certificate end, unix seconds.
    pub not_after: i64,
}

/// A ticket tier.
#[derive(Debug, Clone)]
pub struct TierRecord {
    /// Id.
    pub id: TierId,
    /// Event.
    pub event_id: EventId,
    /// Small number carried in the credential (unique per event).
    pub tier: u16,
    /// Name, unique per event.
    pub name: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Most tickets.
    pub capacity: i64,
    /// Tickets holding capacity (reserved or valid).
    pub allocated: i64,
    /// Zone bit mask carried in the credential.
    pub zone_mask: u32,
    /// Zone label, e.g. "Floor".
    pub zone: String,
}

/// An event with its tiers.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Id.
    pub id: EventId,
    /// Owner.
    pub organizer_id: UserId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Venue.
    pub venue: String,
    /// Start, unix ms.
    pub starts_at: UnixMillis,
    /// End, unix ms.
    pub ends_at: UnixMillis,
    /// Currency of every tier.
    pub currency: String,
    /// Lifecycle state.
    pub status: EventStatus,
    /// Manifest version (0 = nothing published yet).
    pub manifest_version: i64,
    /// Created.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
    /// Tiers by tier number.
    pub tiers: Vec<TierRecord>,
    /// Named zones by number (`store::zones`).
    pub zones: Vec<super::ZoneRecord>,
}

/// Editable event fields.
#[derive(Debug, Clone)]
pub struct EventChange {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Venue.
    pub venue: String,
    /// Start.
    pub starts_at: UnixMillis,
    /// End.
    pub ends_at: UnixMillis,
}

/// Filter for event lists (keyset pagination by id).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this organizer's events.
    pub organizer_id: Option<UserId>,
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Whether drafts are included (organizers and admins listing their own).
    pub include_drafts: bool,
    /// Events after this id.
    pub after: Option<EventId>,
    /// Page size.
    pub limit: i64,
}

/// A ticket.
#[derive(Debug, Clone)]
pub struct TicketRecord {
    /// Id.
    pub id: TicketId,
    /// Event.
    pub event_id: EventId,
    /// Tier id.
    pub tier_id: TierId,
    /// Tier number.
    pub tier: u16,
    /// Zone mask at issue.
    pub zone_mask: u32,
    /// Holder account, if any.
    pub owner_id: Option<UserId>,
    /// The order that paid for it, if any.
    pub order_id: Option<OrderId>,
    /// Name on the ticket (door staff see it).
    pub holder_name: String,
    /// Lifecycle state.
    pub status: TicketStatus,
    /// Credential generation (bumped by transfers).
    pub generation: u16,
    /// `TK1:` QR text, once issued.
    pub credential: Option<String>,
    /// Price paid, minor units.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Created.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
}

/// Filter for ticket lists (keyset pagination by id).
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    /// One event.
    pub event_id: Option<EventId>,
    /// Events of this organizer.
    pub organizer_id: Option<UserId>,
    /// One owner.
    pub owner_id: Option<UserId>,
    /// One status.
    pub status: Option<TicketStatus>,
    /// Tickets after this id.
    pub after: Option<TicketId>,
    /// Page size.
    pub limit: i64,
}

/// An order created together with tickets (box office).
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Id.
    pub id: OrderId,
    /// Buyer account, if known.
    pub buyer_id: Option<UserId>,
    /// `box_office` now; `online` later.
    pub channel: String,
    /// `cash`, `card`, ...
    pub payment_method: String,
    /// Total, minor units.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: String,
}

/// Tickets to create in one transaction.
#[derive(Debug, Clone)]
pub struct NewTickets {
    /// Event.
    pub event_id: EventId,
    /// Tier.
    pub tier_id: TierId,
    /// The tickets (ids, credentials already made).
    pub tickets: Vec<TicketRecord>,
    /// A paid order to record with them.
    pub order: Option<NewOrder>,
    /// Who did it.
    pub actor: Option<UserId>,
    /// Audit note.
    pub reason: String,
}

/// A status change request.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// Ticket.
    pub ticket_id: TicketId,
    /// Target state.
    pub to: TicketStatus,
    /// New credential when issuing a reserved ticket.
    pub credential: Option<String>,
    /// Who did it.
    pub actor: Option<UserId>,
    /// Audit note.
    pub reason: String,
}

/// One line of a ticket's audit trail.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Ticket.
    pub ticket_id: TicketId,
    /// Previous state (none at creation).
    pub from_status: Option<TicketStatus>,
    /// New state.
    pub to_status: TicketStatus,
    /// Who did it.
    pub actor_id: Option<UserId>,
    /// Why.
    pub reason: String,
    /// When.
    pub at: UnixMillis,
}

/// Per-tier sales figures.
#[derive(Debug, Clone)]
pub struct TierStats {
    /// Tier number.
    pub tier: u16,
    /// Tier name.
    pub name: String,
    /// Capacity.
    pub capacity: i64,
    /// Valid tickets (issued, transferred, checked in).
    pub sold: i64,
    /// Reserved tickets.
    pub reserved: i64,
    /// Checked-in tickets.
    pub checked_in: i64,
    /// Revenue from valid tickets, minor units.
    pub revenue_minor: i64,
}

/// Paid orders in one time bucket (the sales-over-time series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalesBucket {
    /// Bucket start, ms since the epoch (a multiple of the bucket width).
    pub start: UnixMillis,
    /// Orders paid in the bucket (and not refunded or cancelled since).
    pub orders: i64,
    /// Tickets in those orders.
    pub tickets: i64,
    /// Their totals, minor units.
    pub revenue_minor: i64,
}

/// The conversion funnel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Funnel {
    /// Event page views.
    pub views: i64,
    /// Orders created.
    pub orders: i64,
    /// Orders paid.
    pub paid: i64,
    /// Tickets checked in.
    pub checked_in: i64,
}

/// Orders grouped by channel and status.
#[derive(Debug, Clone)]
pub struct RevenueLine {
    /// Sales channel.
    pub channel: String,
    /// Order status.
    pub status: String,
    /// Orders.
    pub orders: i64,
    /// Sum, minor units.
    pub total_minor: i64,
}

/// Valid tickets grouped by holder country and birth decade.
#[derive(Debug, Clone)]
pub struct DemographicLine {
    /// Country, or "unknown".
    pub country: String,
    /// e.g. "1990s", or "unknown".
    pub birth_decade: String,
    /// Tickets.
    pub tickets: i64,
}

/// A stored report.
#[derive(Debug, Clone)]
pub struct ReportRecord {
    /// Id.
    pub id: ReportId,
    /// Event.
    pub event_id: EventId,
    /// sales, attendance, revenue, demographic, performance.
    pub kind: String,
    /// Who asked for it.
    pub created_by: UserId,
    /// When.
    pub created_at: UnixMillis,
    /// The report as JSON text.
    pub data: String,
}
