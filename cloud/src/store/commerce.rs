//! Commerce storage: the [`OrderStore`], [`PaymentStore`] and [`MarketStore`]
//! sub-traits and the rows they take and hand out. The SQL lives in
//! `orders.rs`, `payments.rs`, `market.rs` and `inventory.rs`.

use super::{StoreResult, TicketRecord};
use crate::commerce::{
    ListingStatus, OrderKind, OrderStatus, PaymentProvider, PaymentStatus, TransferKind,
};
use crate::model::{EventId, ListingId, OrderId, PaymentId, TicketId, TierId, UnixMillis, UserId};
use async_trait::async_trait;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItemRecord {
    /// Tier id.
    pub tier_id: TierId,
    /// Tier number.
    pub tier: u16,
    /// How many tickets.
    pub quantity: i64,
    /// Price of one, minor units.
    pub unit_price_minor: i64,
}

/// An order (online, resale, or a box-office sale).
#[derive(Debug, Clone)]
pub struct OrderRecord {
    /// Id.
    pub id: OrderId,
    /// Event.
    pub event_id: EventId,
    /// Buyer account (box-office sales may have none).
    pub buyer_id: Option<UserId>,
    /// `online`, `resale` or `box_office`.
    pub channel: String,
    /// Primary or resale.
    pub kind: OrderKind,
    /// Lifecycle state.
    pub status: OrderStatus,
    /// How it was paid (`none` until paid online).
    pub payment_method: String,
    /// Total, minor units.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Tickets counted against the buyer's purchase limit.
    pub quantity: i64,
    /// End of the hold of a pending order.
    pub expires_at: Option<UnixMillis>,
    /// The listing a resale order buys.
    pub listing_id: Option<ListingId>,
    /// SHA-256 of the request that created it (idempotent retries).
    pub request_hash: Option<String>,
    /// Created.
    pub created_at: UnixMillis,
    /// Paid.
    pub paid_at: Option<UnixMillis>,
    /// Last changed.
    pub updated_at: UnixMillis,
    /// Lines (empty for box-office sales).
    pub items: Vec<OrderItemRecord>,
    /// Tickets this order paid for (only filled by [`OrderStore::order`]).
    pub ticket_ids: Vec<TicketId>,
}

/// The `Idempotency-Key` of a request and a digest of its body.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// The caller's key.
    pub key: String,
    /// SHA-256 (hex) of the canonical request.
    pub request_hash: String,
}

/// A new online order: its inventory is held until `expires_at`.
#[derive(Debug, Clone)]
pub struct NewOnlineOrder {
    /// Id.
    pub id: OrderId,
    /// Event.
    pub event_id: EventId,
    /// Buyer.
    pub buyer_id: UserId,
    /// Lines (distinct tiers).
    pub items: Vec<OrderItemRecord>,
    /// Total, minor units.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// End of the hold.
    pub expires_at: UnixMillis,
    /// Idempotent retries.
    pub idempotency: Option<IdempotencyRecord>,
    /// Most tickets the buyer may hold or be paying for at this event.
    pub purchase_limit: i64,
}

impl NewOnlineOrder {
    /// The order as it is first written: pending, holding its lines.
    pub fn pending_record(&self, now: UnixMillis) -> OrderRecord {
        OrderRecord {
            id: self.id,
            event_id: self.event_id,
            buyer_id: Some(self.buyer_id),
            channel: "online".into(),
            kind: OrderKind::Primary,
            status: OrderStatus::Pending,
            payment_method: "none".into(),
            total_minor: self.total_minor,
            currency: self.currency.clone(),
            quantity: self.items.iter().map(|i| i.quantity).sum(),
            expires_at: Some(self.expires_at),
            listing_id: None,
            request_hash: self.idempotency.as_ref().map(|i| i.request_hash.clone()),
            created_at: now,
            paid_at: None,
            updated_at: now,
            items: self.items.clone(),
            ticket_ids: Vec::new(),
        }
    }
}

/// A new order for a resale listing.
#[derive(Debug, Clone)]
pub struct NewResaleOrder {
    /// Id.
    pub id: OrderId,
    /// The listing.
    pub listing_id: ListingId,
    /// Buyer.
    pub buyer_id: UserId,
    /// End of the hold.
    pub expires_at: UnixMillis,
    /// Most tickets the buyer may hold or be paying for at this event.
    pub purchase_limit: i64,
}

/// What creating an order led to.
#[derive(Debug, Clone)]
pub enum OrderCreated {
    /// A new order.
    New(OrderRecord),
    /// The order an earlier request with the same idempotency key created.
    Replayed(OrderRecord),
    /// The idempotency key was used by this buyer for a different request.
    KeyReused,
}

/// Filter for order lists (keyset pagination by id).
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// One buyer.
    pub buyer_id: Option<UserId>,
    /// Events of this organizer.
    pub organizer_id: Option<UserId>,
    /// One event.
    pub event_id: Option<EventId>,
    /// One status.
    pub status: Option<OrderStatus>,
    /// Orders after this id.
    pub after: Option<OrderId>,
    /// Page size.
    pub limit: i64,
}

/// A provider event (webhook) that a change applies, recorded with it so a
/// replay changes nothing.
#[derive(Debug, Clone)]
pub struct WebhookEventRef {
    /// Provider's event id (`evt_...`).
    pub id: String,
    /// Event type.
    pub kind: String,
}

/// The payment that pays an order.
#[derive(Debug, Clone)]
pub struct SettlePayment {
    /// Provider.
    pub provider: PaymentProvider,
    /// Provider's reference (PaymentIntent id, bank reference).
    pub provider_ref: Option<String>,
    /// Amount received, minor units.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
}

/// A resale order's ticket, re-issued to the buyer.
#[derive(Debug, Clone)]
pub struct ResaleHandover {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its generation before the sale (checked).
    pub from_generation: u16,
    /// Credential of generation `from_generation + 1`.
    pub credential: String,
    /// The buyer's name for the door.
    pub holder_name: String,
}

/// Pays an order: payment recorded, inventory turned into tickets with
/// credentials (or the resale ticket handed over), all in one transaction.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The order.
    pub order_id: OrderId,
    /// Primary order: its new tickets (one per held unit, credentials made).
    pub tickets: Vec<TicketRecord>,
    /// Resale order: the ticket handed over.
    pub handover: Option<ResaleHandover>,
    /// The payment.
    pub payment: SettlePayment,
    /// The webhook event that reported it.
    pub event: Option<WebhookEventRef>,
    /// Who confirmed it (manual payments).
    pub actor: Option<UserId>,
}

/// What a settlement led to.
#[derive(Debug, Clone)]
pub enum SettleOutcome {
    /// The order is now paid.
    Paid(OrderRecord),
    /// Nothing changed: this event or this payment was already applied.
    Unchanged(OrderRecord),
    /// The order cannot take this payment (why); a provider payment is now
    /// `refund_due`.
    NotPayable(OrderRecord, String),
}

/// A full refund of a paid order.
#[derive(Debug, Clone)]
pub struct RefundChange {
    /// The order.
    pub order_id: OrderId,
    /// The provider's refund id.
    pub refund_ref: Option<String>,
    /// The provider payment refunded (a webhook names it).
    pub payment_ref: Option<String>,
    /// The webhook event that reported it.
    pub event: Option<WebhookEventRef>,
    /// Who asked for it.
    pub actor: Option<UserId>,
    /// Audit note.
    pub reason: String,
}

/// What a refund led to.
#[derive(Debug, Clone)]
pub enum RefundOutcome {
    /// Refunded now: tickets revoked, inventory returned.
    Refunded(OrderRecord),
    /// Nothing changed (already refunded, or the event was already applied).
    Unchanged(OrderRecord),
}

/// A payment attempt.
#[derive(Debug, Clone)]
pub struct PaymentRecord {
    /// Id.
    pub id: PaymentId,
    /// Order.
    pub order_id: OrderId,
    /// Provider.
    pub provider: PaymentProvider,
    /// Provider's reference (PaymentIntent id).
    pub provider_ref: Option<String>,
    /// For the payer's browser (Stripe.js); never logged.
    pub client_secret: Option<String>,
    /// Lifecycle state.
    pub status: PaymentStatus,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Why the last attempt failed.
    pub failure_reason: Option<String>,
    /// Provider's refund id.
    pub refund_ref: Option<String>,
    /// Created.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
}

/// Per-event sales rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalesPolicy {
    /// Most tickets one customer may hold or be paying for.
    pub max_tickets_per_customer: i64,
    /// Whether tickets may be resold.
    pub resale_enabled: bool,
    /// Resale price cap, percent of the tier's face value.
    pub resale_max_percent: i64,
}

/// A ticket given or sold to another account.
#[derive(Debug, Clone)]
pub struct TransferChange {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its owner (checked).
    pub from: UserId,
    /// The recipient.
    pub to: UserId,
    /// The recipient's name for the door.
    pub holder_name: String,
    /// Generation before the transfer (checked).
    pub from_generation: u16,
    /// Credential of generation `from_generation + 1`.
    pub credential: String,
}

/// One link of a ticket's chain of owners.
#[derive(Debug, Clone)]
pub struct TransferRecord {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Previous owner.
    pub from_owner: Option<UserId>,
    /// New owner.
    pub to_owner: UserId,
    /// Credential generation from then on.
    pub generation: u16,
    /// Gift or resale.
    pub kind: TransferKind,
    /// The resale order, if sold.
    pub order_id: Option<OrderId>,
    /// When.
    pub at: UnixMillis,
}

/// A resale listing.
#[derive(Debug, Clone)]
pub struct ListingRecord {
    /// Id.
    pub id: ListingId,
    /// The ticket for sale.
    pub ticket_id: TicketId,
    /// Its event.
    pub event_id: EventId,
    /// Its owner.
    pub seller_id: UserId,
    /// Asking price, minor units.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Lifecycle state.
    pub status: ListingStatus,
    /// The order holding or having bought it.
    pub order_id: Option<OrderId>,
    /// Created.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
}

/// Filter for listing lists (keyset pagination by id).
#[derive(Debug, Clone, Default)]
pub struct ListingFilter {
    /// One event.
    pub event_id: Option<EventId>,
    /// One seller.
    pub seller_id: Option<UserId>,
    /// One status.
    pub status: Option<ListingStatus>,
    /// Listings after this id.
    pub after: Option<ListingId>,
    /// Page size.
    pub limit: i64,
}

/// A line of a seller's ledger.
#[derive(Debug, Clone)]
pub struct LedgerRecord {
    /// Seller.
    pub user_id: UserId,
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
    pub at: UnixMillis,
}

/// Orders, inventory holds and their settlement.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Creates a pending order holding inventory until `expires_at`; with an
    /// idempotency key already used by this buyer, returns that order.
    /// `SoldOut`, `PurchaseLimit` or `NotOnSale`.
    async fn create_order(
        &self,
        new: &NewOnlineOrder,
        now: UnixMillis,
    ) -> StoreResult<OrderCreated>;
    /// By id, with items and tickets.
    async fn order(&self, id: OrderId) -> StoreResult<OrderRecord>;
    /// A page of orders, ascending by id (without tickets).
    async fn list_orders(&self, filter: &OrderFilter) -> StoreResult<Vec<OrderRecord>>;
    /// Publishes issued tickets still waiting for a manifest version (left
    /// by a process that died between an order's commit and its publish);
    /// returns how many events had some.
    async fn publish_pending(&self, now: UnixMillis) -> StoreResult<usize>;
    /// Pending orders whose hold ended before `now`.
    async fn due_orders(&self, now: UnixMillis, limit: i64) -> StoreResult<Vec<OrderId>>;
    /// Ends a pending order (`Expired` or `Cancelled`) and returns its
    /// inventory. With `only_if_due`, does nothing unless its hold ended.
    async fn close_order(
        &self,
        id: OrderId,
        to: OrderStatus,
        actor: Option<UserId>,
        only_if_due: bool,
        now: UnixMillis,
    ) -> StoreResult<OrderRecord>;
    /// Whether [`Self::issue_batch`] can take batches (PostgreSQL).
    fn group_commit(&self) -> bool;
    /// Pays a batch of orders of one event in one transaction (group
    /// commit, `docs/cloud.md`), or refuses it writing nothing.
    async fn issue_batch(
        &self,
        batch: &super::IssueBatch,
        now: UnixMillis,
    ) -> Result<Vec<OrderRecord>, super::BatchError>;
    /// Pays an order (see [`Settlement`]).
    async fn settle_order(&self, s: &Settlement, now: UnixMillis) -> StoreResult<SettleOutcome>;
    /// Paid → fulfilled.
    async fn fulfil_order(
        &self,
        id: OrderId,
        actor: UserId,
        now: UnixMillis,
    ) -> StoreResult<OrderRecord>;
    /// Paid → refunded: revokes its tickets (next manifest version) and
    /// returns the inventory.
    async fn refund_order(&self, r: &RefundChange, now: UnixMillis) -> StoreResult<RefundOutcome>;
    /// The event's sales rules, if the organizer set any.
    async fn sales_policy(&self, event: EventId) -> StoreResult<Option<SalesPolicy>>;
    /// Sets the event's sales rules.
    async fn set_sales_policy(
        &self,
        event: EventId,
        policy: &SalesPolicy,
        now: UnixMillis,
    ) -> StoreResult<()>;
}

/// Payments and provider webhook events.
#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Records a payment; when the order already has its one Stripe intent (or
    /// the reference is known), returns the stored one instead.
    async fn insert_payment(&self, p: &PaymentRecord) -> StoreResult<PaymentRecord>;
    /// An order's payments, oldest first.
    async fn payments_of(&self, order: OrderId) -> StoreResult<Vec<PaymentRecord>>;
    /// By provider reference.
    async fn payment_by_ref(
        &self,
        provider: PaymentProvider,
        provider_ref: &str,
    ) -> StoreResult<PaymentRecord>;
    /// A failed attempt reported by `event`: pending → failed. Returns false
    /// when the event was already applied.
    async fn payment_failed(
        &self,
        provider_ref: &str,
        reason: &str,
        event: &WebhookEventRef,
        now: UnixMillis,
    ) -> StoreResult<bool>;
    /// Records an event that changes nothing; false if already recorded.
    async fn record_webhook_event(
        &self,
        event: &WebhookEventRef,
        outcome: &str,
        now: UnixMillis,
    ) -> StoreResult<bool>;
    /// Whether the event was already applied.
    async fn webhook_seen(&self, id: &str) -> StoreResult<bool>;
    /// Provider payments that must be returned.
    async fn refunds_due(&self, limit: i64) -> StoreResult<Vec<PaymentRecord>>;
    /// Takes the right to attempt a due refund now: false while another
    /// caller's attempt (started less than `lease_ms` ago) may be running.
    async fn lease_refund(
        &self,
        id: PaymentId,
        now: UnixMillis,
        lease_ms: i64,
    ) -> StoreResult<bool>;
    /// refund_due → refunded.
    async fn payment_refunded(
        &self,
        id: PaymentId,
        refund_ref: &str,
        now: UnixMillis,
    ) -> StoreResult<()>;
}

/// Transfers, resale listings and the sellers' ledger.
#[async_trait]
pub trait MarketStore: Send + Sync {
    /// Gives a ticket to another account: new generation and credential, the
    /// old one superseded in the next manifest version.
    async fn transfer_ticket(
        &self,
        t: &TransferChange,
        now: UnixMillis,
    ) -> StoreResult<TicketRecord>;
    /// A ticket's chain of owners, oldest first.
    async fn ticket_transfers(&self, ticket: TicketId) -> StoreResult<Vec<TransferRecord>>;
    /// Transfers from or to a user, newest first.
    async fn user_transfers(&self, user: UserId, limit: i64) -> StoreResult<Vec<TransferRecord>>;
    /// Lists a ticket for resale (its owner's, valid, not already listed).
    async fn create_listing(&self, l: &ListingRecord) -> StoreResult<()>;
    /// By id.
    async fn listing(&self, id: ListingId) -> StoreResult<ListingRecord>;
    /// A page of listings, ascending by id.
    async fn list_listings(&self, f: &ListingFilter) -> StoreResult<Vec<ListingRecord>>;
    /// Active → cancelled.
    async fn cancel_listing(&self, id: ListingId, now: UnixMillis) -> StoreResult<ListingRecord>;
    /// Holds an active listing for a buyer's new pending order; exactly one
    /// of racing buyers wins, the others get `Gone`.
    async fn create_resale_order(
        &self,
        o: &NewResaleOrder,
        now: UnixMillis,
    ) -> StoreResult<OrderRecord>;
    /// A seller's ledger, oldest first.
    async fn ledger(&self, user: UserId) -> StoreResult<Vec<LedgerRecord>>;
}
