//! The two writes every path shares, written once: a ticket's status change
//! and an order row.
//!
//! [`change_ticket`] is the only place a ticket row changes after it was
//! inserted. In the caller's transaction (its event row locked) it writes
//! the row, its audit line, its capacity (a cancelled or refunded ticket
//! gives its slot back), closes the ticket's open resale listings when the
//! ticket is revoked or changes hands, and returns the manifest entry the
//! gates need, if any; the caller appends the entries of one change as one
//! manifest version.

use super::commerce::OrderRecord;
use super::inventory;
use super::manifest::entry_for;
use super::sql::map_err;
use super::tickets::audit;
use super::{StoreResult, TicketRecord};
use crate::model::{TicketStatus, UnixMillis, UserId};
use sqlx::{Any, Transaction};
use sync_protocol::manifest::ManifestEntry;

type Tx = Transaction<'static, Any>;

/// Who changes a ticket and why (the audit line).
#[derive(Debug, Clone, Copy)]
pub(super) struct Why<'a> {
    pub actor: Option<UserId>,
    pub reason: &'a str,
    pub now: UnixMillis,
}

/// Whether a ticket in `status` holds one unit of its tier's capacity.
fn holds_capacity(status: TicketStatus) -> bool {
    !matches!(status, TicketStatus::Cancelled | TicketStatus::Refunded)
}

/// Whether a change from `from` to `t` must be published to the door: the
/// ticket became valid, was revoked, or has a new holder and generation. A
/// reservation cancelled before issue was never published.
fn reaches_door(from: TicketStatus, t: &TicketRecord, generation_before: u16) -> bool {
    use TicketStatus::*;
    if t.generation != generation_before {
        return true;
    }
    matches!(t.status, Issued | Transferred | Cancelled | Refunded)
        && !(from == Reserved && t.status == Cancelled)
}

/// Writes `t` (already holding its new status, owner, name, generation,
/// credential and order) over the stored row that was in status `from` at
/// generation `generation_before`; see the module docs.
pub(super) async fn change_ticket(
    tx: &mut Tx,
    t: &mut TicketRecord,
    from: TicketStatus,
    generation_before: u16,
    why: Why<'_>,
) -> StoreResult<Option<ManifestEntry>> {
    t.updated_at = why.now;
    sqlx::query(
        "UPDATE tickets SET status = $1, owner_id = $2, holder_name = $3, generation = $4, credential = $5, \
         order_id = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(t.status.as_str())
    .bind(t.owner_id.map(|o| o.to_string()))
    .bind(t.holder_name.clone())
    .bind(i64::from(t.generation))
    .bind(t.credential.clone())
    .bind(t.order_id.map(|o| o.to_string()))
    .bind(why.now)
    .bind(t.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if holds_capacity(from) && !holds_capacity(t.status) {
        sqlx::query("UPDATE tiers SET allocated = allocated - 1 WHERE id = $1")
            .bind(t.tier_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        inventory::release_ticket(tx, t.id).await?;
    }
    audit(
        tx,
        t.id,
        Some(from),
        t.status,
        why.actor,
        why.reason,
        why.now,
    )
    .await?;
    if !holds_capacity(t.status) || t.generation != generation_before {
        close_listings(tx, t, why.now).await?;
    }
    Ok(reaches_door(from, t, generation_before).then(|| entry_for(t)))
}

/// Withdraws the ticket's open listings: a revoked ticket, or one that
/// changed hands, is no longer its seller's to sell. (A resale hand-over
/// marks its own listing sold afterwards.)
async fn close_listings(tx: &mut Tx, t: &TicketRecord, now: UnixMillis) -> StoreResult<()> {
    sqlx::query(
        "UPDATE resale_listings SET status = 'cancelled', updated_at = $1 \
         WHERE ticket_id = $2 AND status IN ('active', 'held')",
    )
    .bind(now)
    .bind(t.id.to_string())
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(map_err)
}

/// Inserts an order row (not its items). Returns the driver's error as is,
/// so a caller can tell an idempotency-key collision from other failures.
pub(super) async fn insert_order(
    tx: &mut Tx,
    o: &OrderRecord,
    idempotency_key: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orders (id, event_id, buyer_id, channel, status, payment_method, total_minor, currency, \
         created_at, paid_at, updated_at, kind, quantity, expires_at, listing_id, idempotency_key, request_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(o.id.to_string())
    .bind(o.event_id.to_string())
    .bind(o.buyer_id.map(|b| b.to_string()))
    .bind(o.channel.clone())
    .bind(o.status.as_str())
    .bind(o.payment_method.clone())
    .bind(o.total_minor)
    .bind(o.currency.clone())
    .bind(o.created_at)
    .bind(o.paid_at)
    .bind(o.updated_at)
    .bind(o.kind.as_str())
    .bind(o.quantity)
    .bind(o.expires_at)
    .bind(o.listing_id.map(|l| l.to_string()))
    .bind(idempotency_key.map(str::to_string))
    .bind(o.request_hash.clone())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}
