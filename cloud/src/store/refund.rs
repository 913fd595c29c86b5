//! Refunding orders: in one transaction, every valid ticket of the order is
//! revoked (the next manifest version carries it), its slots return to
//! stock, the payment and the order are marked, the buyer's purchase count
//! drops, and a resale's seller credit is reversed. A provider event is
//! recorded with it, so a replay changes nothing.

use super::commerce::{OrderStore, RefundChange, RefundOutcome};
use super::inventory::{self, select_listing};
use super::market::listing_from_row;
use super::orders::{lock_order, set_order_status};
use super::settle::record_event;
use super::sql::map_err;
use super::tickets::{select_ticket, ticket_from_row};
use super::writes::{Why, change_ticket};
use super::{Dialect, SqlStore, StoreError, StoreResult, TicketRecord};
use crate::commerce::{OrderKind, OrderStatus};
use crate::model::{TicketStatus, UnixMillis, UserId};
use sqlx::{Any, Transaction};
use sync_protocol::manifest::ManifestEntry;

type Tx = Transaction<'static, Any>;

/// Revokes one ticket of a refunded order (its slot returns, its listings
/// close).
async fn revoke(
    tx: &mut Tx,
    mut t: TicketRecord,
    actor: Option<UserId>,
    reason: &str,
    now: UnixMillis,
) -> StoreResult<Option<ManifestEntry>> {
    let (from, generation) = (t.status, t.generation);
    t.status = TicketStatus::Refunded;
    let why = Why { actor, reason, now };
    let entry = change_ticket(tx, &mut t, from, generation, why).await?;
    super::chain::enqueue(tx, t.id, super::chain::JobKind::Burn, now).await?;
    Ok(entry)
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn refund(
        &self,
        r: &RefundChange,
        now: UnixMillis,
    ) -> StoreResult<RefundOutcome> {
        let event_id = self.order_event(r.order_id).await?;
        let mut tx = self.begin_write().await?;
        if let Some(ev) = &r.event
            && !record_event(&mut tx, ev, "refunded", now).await?
        {
            drop(tx);
            return Ok(RefundOutcome::Unchanged(self.order(r.order_id).await?));
        }
        let mut head = Self::lock_event(&mut tx, event_id, now).await?;
        let mut order = lock_order::<D>(&mut tx, r.order_id).await?;
        match order.status {
            OrderStatus::Paid => {}
            OrderStatus::Refunded => {
                tx.commit().await.map_err(map_err)?;
                return Ok(RefundOutcome::Unchanged(order));
            }
            other if r.event.is_some() => {
                // Money returned for an order that did not take it (or was
                // fulfilled): record it on the payment, change nothing else.
                tracing::warn!(order = %order.id, status = other.as_str(), "refund reported for an order that is not paid");
                if let Some(p) = &r.payment_ref {
                    sqlx::query(
                        "UPDATE payments SET status = 'refunded', updated_at = $1 WHERE provider = 'stripe' \
                         AND provider_ref = $2 AND status IN ('succeeded', 'refund_due')",
                    )
                    .bind(now)
                    .bind(p.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                return Ok(RefundOutcome::Unchanged(order));
            }
            other => {
                return Err(StoreError::illegal("order", other.as_str(), "refunded"));
            }
        }
        let rows = sqlx::query(select_ticket!(
            " WHERE t.order_id = $1 AND t.status IN ('reserved', 'issued', 'transferred', 'checked_in') ORDER BY t.id"
        ))
        .bind(order.id.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut changed = Vec::with_capacity(rows.len());
        for row in &rows {
            let t = ticket_from_row(row)?;
            changed.extend(revoke(&mut tx, t, r.actor, &r.reason, now).await?);
        }
        if order.kind == OrderKind::Resale
            && let Some(listing) = order.listing_id
        {
            let row = sqlx::query(select_listing!(" WHERE l.id = $1"))
                .bind(listing.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            let listing = listing_from_row(&row)?;
            Self::ledger_line(
                &mut tx,
                &listing,
                order.id,
                "resale_reversal",
                -listing.price_minor,
                now,
            )
            .await?;
        }
        Self::append_manifest(&mut tx, event_id, &mut head, &changed, now).await?;
        set_order_status(&mut tx, order.id, OrderStatus::Refunded, now).await?;
        sqlx::query(
            "UPDATE payments SET status = 'refunded', refund_ref = COALESCE($1, refund_ref), updated_at = $2 \
             WHERE order_id = $3 AND status = 'succeeded'",
        )
        .bind(r.refund_ref.clone())
        .bind(now)
        .bind(order.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        inventory::uncount_purchase(&mut tx, order.event_id, order.buyer_id, order.quantity)
            .await?;
        super::outbox::order_refunded(&mut tx, order.id, now).await?;
        tx.commit().await.map_err(map_err)?;
        order.status = OrderStatus::Refunded;
        order.updated_at = now;
        Ok(RefundOutcome::Refunded(order))
    }
}
