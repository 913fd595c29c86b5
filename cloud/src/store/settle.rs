//! Paying orders. Each payment is one transaction that changes the payment,
//! the order, the inventory, the tickets and the manifest together: no order
//! is paid without its tickets, no ticket exists without its paid order.
//! (Refunds, the reverse, are in `refund.rs`.)
//!
//! A provider event (webhook) is recorded in the same transaction as its
//! effect; a replay finds it recorded and changes nothing. Effects are also
//! guarded by the state machines (a payment succeeds once, an order is paid
//! once), so events arriving out of order change nothing either.

use super::commerce::{
    OrderRecord, OrderStore, ResaleHandover, SettleOutcome, Settlement, WebhookEventRef,
};
use super::inventory;
use super::manifest::{EventHead, entry_for};
use super::market::{listing_from_row, record_transfer};
use super::orders::lock_order;
use super::sql::{map_err, not_found};
use super::tickets::{audit, select_ticket, ticket_from_row};
use super::{Dialect, SqlStore, StoreError, StoreResult, TicketRecord};
use crate::commerce::{
    ListingStatus, OrderKind, OrderStatus, PaymentProvider, PaymentStatus, TransferKind,
};
use crate::model::{EventId, OrderId, TicketStatus, UnixMillis, UserId};
use sqlx::{Any, Transaction};
use sync_protocol::manifest::ManifestEntry;

type Tx = Transaction<'static, Any>;

/// Records a provider event; false if it was already recorded.
pub(super) async fn record_event(
    tx: &mut Tx,
    event: &WebhookEventRef,
    outcome: &str,
    now: UnixMillis,
) -> StoreResult<bool> {
    let n = sqlx::query(
        "INSERT INTO webhook_events (id, kind, outcome, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id.clone())
    .bind(event.kind.clone())
    .bind(outcome.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    Ok(n == 1)
}

/// Sets the status of an order's payment (a Stripe one by its intent, a
/// manual or free one: the order's open one), creating the row if there is
/// none.
pub(super) async fn upsert_payment(
    tx: &mut Tx,
    order: &OrderRecord,
    provider: PaymentProvider,
    provider_ref: Option<&str>,
    status: PaymentStatus,
    now: UnixMillis,
) -> StoreResult<()> {
    let scope = ref_scope(tx, provider, order.event_id).await?;
    let updated = match (provider, provider_ref) {
        (PaymentProvider::Stripe, Some(r)) => sqlx::query(
            "UPDATE payments SET status = $1, updated_at = $2 WHERE provider = $3 AND provider_ref = $4",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(provider.as_str())
        .bind(r.to_string()),
        // Manual and free: the order's open payment of that kind, which
        // takes the organizer's reference (bank transfer id, receipt).
        _ => sqlx::query(
            "UPDATE payments SET status = $1, updated_at = $2, provider_ref = COALESCE($3, provider_ref), \
             ref_scope = $6 WHERE provider = $4 AND order_id = $5 AND status IN ('pending', 'failed')",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(provider_ref.map(str::to_string))
        .bind(provider.as_str())
        .bind(order.id.to_string())
        .bind(scope.clone()),
    }
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO payments (id, order_id, provider, provider_ref, status, amount_minor, currency, created_at, updated_at, ref_scope) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
        )
        .bind(crate::model::PaymentId::new().to_string())
        .bind(order.id.to_string())
        .bind(provider.as_str())
        .bind(provider_ref.map(str::to_string))
        .bind(status.as_str())
        .bind(order.total_minor)
        .bind(order.currency.clone())
        .bind(now)
        .bind(scope)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Where a payment reference must be unique: a manual payment's reference
/// within its organizer's books (one organizer's `REF-1` is not another's),
/// a provider's id globally (`''`).
async fn ref_scope(tx: &mut Tx, provider: PaymentProvider, event: EventId) -> StoreResult<String> {
    if provider != PaymentProvider::Manual {
        return Ok(String::new());
    }
    sqlx::query_scalar("SELECT organizer_id FROM events WHERE id = $1")
        .bind(event.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound("event"))
}

async fn payment_status_of(
    tx: &mut Tx,
    provider: PaymentProvider,
    provider_ref: &str,
    event: EventId,
) -> StoreResult<Option<PaymentStatus>> {
    let scope = ref_scope(tx, provider, event).await?;
    let s: Option<String> = sqlx::query_scalar(
        "SELECT status FROM payments WHERE provider = $1 AND provider_ref = $2 AND ref_scope = $3",
    )
    .bind(provider.as_str())
    .bind(provider_ref.to_string())
    .bind(scope)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    s.map(|s| s.parse().map_err(StoreError::Other)).transpose()
}

async fn lock_ticket(tx: &mut Tx, id: crate::model::TicketId) -> StoreResult<TicketRecord> {
    let row = sqlx::query(select_ticket!(" WHERE t.id = $1"))
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await
        .map_err(not_found("ticket"))?;
    ticket_from_row(&row)
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn order_event(&self, id: OrderId) -> StoreResult<EventId> {
        let e: Option<String> = sqlx::query_scalar("SELECT event_id FROM orders WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        e.ok_or(StoreError::NotFound("order"))?
            .parse()
            .map_err(|e| StoreError::Other(format!("event id: {e}")))
    }

    /// Why `order` cannot take the payment, if it cannot. An expired order
    /// takes it when its inventory (or listing) can be held again.
    async fn refusal(
        tx: &mut Tx,
        order: &OrderRecord,
        head: &EventHead,
        s: &Settlement,
    ) -> StoreResult<Option<String>> {
        if !head.status.on_sale() {
            return Ok(Some(format!("the event is {}", head.status.as_str())));
        }
        if s.payment.amount_minor != order.total_minor
            || !s.payment.currency.eq_ignore_ascii_case(&order.currency)
        {
            return Ok(Some(format!(
                "paid {} {}, the order costs {} {}",
                s.payment.amount_minor, s.payment.currency, order.total_minor, order.currency
            )));
        }
        match order.status {
            OrderStatus::Pending => {}
            OrderStatus::Expired => {
                if let Some(why) = Self::hold_again(tx, order).await? {
                    return Ok(Some(why));
                }
            }
            other => return Ok(Some(format!("the order is {}", other.as_str()))),
        }
        if let Some(h) = &s.handover {
            let t = lock_ticket(tx, h.ticket_id).await?;
            let seller = Self::held_listing(tx, order).await?.map(|l| l.seller_id);
            if seller.is_none()
                || t.owner_id != seller
                || t.generation != h.from_generation
                || !matches!(t.status, TicketStatus::Issued | TicketStatus::Transferred)
            {
                return Ok(Some("the listed ticket changed since it was listed".into()));
            }
        }
        Ok(None)
    }

    /// Holds an expired order's inventory again (a late payment).
    async fn hold_again(tx: &mut Tx, order: &OrderRecord) -> StoreResult<Option<String>> {
        sqlx::query("SAVEPOINT hold_again")
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        let held = match order.kind {
            OrderKind::Primary => {
                let mut held = Ok(());
                for item in &order.items {
                    held = inventory::claim::<D>(
                        tx,
                        &order.id.to_string(),
                        item.tier_id,
                        item.quantity,
                    )
                    .await;
                    if held.is_err() {
                        break;
                    }
                }
                held
            }
            OrderKind::Resale => {
                let n = sqlx::query(
                    "UPDATE resale_listings SET status = 'held', order_id = $1 WHERE id = $2 AND status = 'active'",
                )
                .bind(order.id.to_string())
                .bind(order.listing_id.map(|l| l.to_string()))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                if n == 1 {
                    Ok(())
                } else {
                    Err(StoreError::Gone("the listing is gone".into()))
                }
            }
        };
        match held {
            Ok(()) => {
                let buyer = order
                    .buyer_id
                    .ok_or(StoreError::Other("order without buyer".into()))?;
                inventory::count_purchase(tx, order.event_id, buyer, order.quantity, i64::MAX)
                    .await?;
                Ok(None)
            }
            // Only a real lack of stock means the payment is owed back; a
            // transient failure (deadlock, too busy) fails the whole
            // settlement, which the provider retries.
            Err(e) if e.is_gone_or_sold_out() => {
                sqlx::query("ROLLBACK TO SAVEPOINT hold_again")
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                Ok(Some(format!("the hold expired and {e}")))
            }
            Err(e) => Err(e),
        }
    }

    async fn held_listing(
        tx: &mut Tx,
        order: &OrderRecord,
    ) -> StoreResult<Option<super::commerce::ListingRecord>> {
        let Some(id) = order.listing_id else {
            return Ok(None);
        };
        let row = sqlx::query(D::COMMERCE.lock_listing)
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
        let listing = row.as_ref().map(listing_from_row).transpose()?;
        Ok(listing.filter(|l| l.status == ListingStatus::Held && l.order_id == Some(order.id)))
    }

    /// Turns a primary order's held slots into its tickets, and queues
    /// their manifest entries for the sequencer (`sequencer.rs`), which
    /// also counts them into `tiers.allocated`.
    async fn issue_tickets(
        tx: &mut Tx,
        order: &OrderRecord,
        tickets: &[TicketRecord],
        actor: Option<UserId>,
        now: UnixMillis,
    ) -> StoreResult<()> {
        for item in &order.items {
            let n = tickets.iter().filter(|t| t.tier_id == item.tier_id).count() as i64;
            if n != item.quantity || tickets.iter().any(|t| t.order_id != Some(order.id)) {
                return Err(StoreError::Other(format!(
                    "settlement of order {} does not match its items",
                    order.id
                )));
            }
        }
        let holder = order.id.to_string();
        let reason = format!("paid order {}", order.id);
        let mut held = inventory::held_slots(tx, &holder).await?;
        for t in tickets {
            inventory::take_held(tx, &mut held, t.tier_id, t.id, Some(holder.clone())).await?;
            Self::insert_ticket(tx, t).await?;
            audit(tx, t.id, None, t.status, actor, &reason, now).await?;
            super::chain::enqueue(tx, t.id, super::chain::JobKind::Mint, now).await?;
            super::sequencer::queue(tx, t, &entry_for(t)).await?;
        }
        for item in &order.items {
            inventory::add_held(tx, item.tier_id, -item.quantity, &holder).await?;
        }
        Ok(())
    }

    /// Moves a resale order's ticket to its buyer and credits the seller.
    async fn hand_over(
        tx: &mut Tx,
        order: &OrderRecord,
        h: &ResaleHandover,
        now: UnixMillis,
    ) -> StoreResult<ManifestEntry> {
        let listing = Self::held_listing(tx, order)
            .await?
            .ok_or(StoreError::Other("resale order without its listing".into()))?;
        let buyer = order
            .buyer_id
            .ok_or(StoreError::Other("order without buyer".into()))?;
        let mut t = lock_ticket(tx, h.ticket_id).await?;
        let from = t.status;
        t.owner_id = Some(buyer);
        t.holder_name = h.holder_name.clone();
        t.generation = h.from_generation + 1;
        t.credential = Some(h.credential.clone());
        t.status = TicketStatus::Transferred;
        t.order_id = Some(order.id);
        let entry = record_transfer(
            tx,
            &mut t,
            from,
            listing.seller_id,
            TransferKind::Resale,
            Some(order.id),
            now,
        )
        .await?;
        sqlx::query("UPDATE resale_listings SET status = 'sold', updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(listing.id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Self::ledger_line(
            tx,
            &listing,
            order.id,
            "resale_credit",
            listing.price_minor,
            now,
        )
        .await?;
        Ok(entry)
    }

    pub(super) async fn ledger_line(
        tx: &mut Tx,
        listing: &super::commerce::ListingRecord,
        order: OrderId,
        kind: &str,
        amount: i64,
        now: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO ledger_entries (id, user_id, order_id, listing_id, kind, amount_minor, currency, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(listing.seller_id.to_string())
        .bind(order.to_string())
        .bind(listing.id.to_string())
        .bind(kind.to_string())
        .bind(amount)
        .bind(listing.currency.clone())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    pub(super) async fn settle(
        &self,
        s: &Settlement,
        now: UnixMillis,
    ) -> StoreResult<SettleOutcome> {
        let event_id = self.order_event(s.order_id).await?;
        let mut tx = self.begin_write().await?;
        if let Some(ev) = &s.event
            && !record_event(&mut tx, ev, "payment_succeeded", now).await?
        {
            drop(tx);
            return Ok(SettleOutcome::Unchanged(self.order(s.order_id).await?));
        }
        // Issuing new tickets only needs the event's status to hold still
        // (their entries go through the sequencer); a resale hand-over
        // changes an existing ticket and takes the event lock.
        let issuing = s.handover.is_none();
        let mut head = if issuing {
            Self::share_event(&mut tx, event_id).await?
        } else {
            Self::lock_event(&mut tx, event_id, now).await?
        };
        let mut order = lock_order::<D>(&mut tx, s.order_id).await?;
        let provider = s.payment.provider;
        let reference = s.payment.provider_ref.as_deref();
        if let Some(r) = reference
            && matches!(
                payment_status_of(&mut tx, provider, r, event_id).await?,
                Some(PaymentStatus::Succeeded | PaymentStatus::RefundDue | PaymentStatus::Refunded)
            )
        {
            tx.commit().await.map_err(map_err)?;
            return Ok(SettleOutcome::Unchanged(order));
        }
        if let Some(why) = Self::refusal(&mut tx, &order, &head, s).await? {
            if provider == PaymentProvider::Stripe {
                upsert_payment(
                    &mut tx,
                    &order,
                    provider,
                    reference,
                    PaymentStatus::RefundDue,
                    now,
                )
                .await?;
                tx.commit().await.map_err(map_err)?;
            }
            return Ok(SettleOutcome::NotPayable(order, why));
        }
        match (&s.handover, order.kind) {
            (None, OrderKind::Primary) => {
                Self::issue_tickets(&mut tx, &order, &s.tickets, s.actor, now).await?
            }
            (Some(h), OrderKind::Resale) => {
                let changed = [Self::hand_over(&mut tx, &order, h, now).await?];
                Self::append_manifest(&mut tx, event_id, &mut head, &changed, now).await?;
            }
            _ => return Err(StoreError::Other("settlement of the wrong kind".into())),
        }
        sqlx::query(
            "UPDATE orders SET status = 'paid', paid_at = $1, updated_at = $1, payment_method = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(provider.as_str())
        .bind(order.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        upsert_payment(
            &mut tx,
            &order,
            provider,
            reference,
            PaymentStatus::Succeeded,
            now,
        )
        .await?;
        super::outbox::order_paid(&mut tx, order.id, now).await?;
        tx.commit().await.map_err(map_err)?;
        if let Some(first) = s.tickets.first().filter(|_| issuing) {
            // The order is paid either way; an entry not published now stays
            // pending and the next writer or the sweeper publishes it.
            if let Err(e) = self.publish(event_id, first.id, now).await {
                tracing::warn!(order = %order.id, error = %e, "manifest publish deferred");
            }
        }
        order.status = OrderStatus::Paid;
        order.paid_at = Some(now);
        order.updated_at = now;
        order.payment_method = provider.as_str().into();
        Ok(SettleOutcome::Paid(order))
    }
}
