//! Inventory: one `tier_slots` row per unit of a tier's capacity, and the
//! per-buyer purchase counters.
//!
//! A slot is free (no order, no ticket), held by a pending order
//! (`order_id`), or taken by a ticket (`ticket_id`). Claiming `n` units
//! updates `n` free rows; on PostgreSQL the rows are picked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent buyers of one hot tier take
//! different rows and commit in parallel instead of queueing on one counter
//! row (which caps out near one sale per WAL flush). SQLite serialises
//! writers (`BEGIN IMMEDIATE`), so the same update is simply exact there.
//!
//! Invariants: a slot is never both free and referenced; the slots taken by
//! tickets number `tiers.allocated` plus the tier's entries waiting in
//! `manifest_pending` (the sequencer moves them into the count); the slots held by orders number the sum
//! of the tier's `tier_holds` shards (so the event view reads holds in O(1));
//! the slots held by an order number its quantity of that tier. Every change
//! below runs inside the caller's write transaction.

use super::sql::{map_err, parsed};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, OrderId, TicketId, TierId, UserId};
use sqlx::{Any, Transaction};
use std::collections::BTreeMap;

/// `SELECT` of an order row, with a tail.
macro_rules! select_order {
    ($tail:literal) => {
        concat!(
            "SELECT o.id, o.event_id, o.buyer_id, o.channel, o.kind, o.status, o.payment_method, o.total_minor, \
             o.currency, o.quantity, o.expires_at, o.listing_id, o.request_hash, o.created_at, o.paid_at, o.updated_at \
             FROM orders o",
            $tail
        )
    };
}
pub(super) use select_order;

/// `SELECT` of a listing row, with a tail.
macro_rules! select_listing {
    ($tail:literal) => {
        concat!(
            "SELECT l.id, l.ticket_id, l.event_id, l.seller_id, l.price_minor, l.currency, l.status, l.order_id, \
             l.created_at, l.updated_at FROM resale_listings l",
            $tail
        )
    };
}
pub(super) use select_listing;

/// The commerce statements that differ between backends.
#[derive(Debug)]
pub struct CommerceSql {
    /// Creates slots `0..$2` of tier `$1`.
    pub create_slots: &'static str,
    /// Marks up to `$3` free slots of tier `$2` as held by `$1`, skipping
    /// rows other transactions hold; `RETURNING slot`.
    pub claim_free: &'static str,
    /// Like `claim_free` but waits for rows other transactions hold, taking
    /// them in slot order (PostgreSQL only: the exact retry when skipping
    /// came up short).
    pub claim_waiting: Option<&'static str>,
    /// An order by id (`$1`), locked until commit.
    pub lock_order: &'static str,
    /// A listing by id (`$1`), locked until commit.
    pub lock_listing: &'static str,
}

/// PostgreSQL statements.
pub static POSTGRES: CommerceSql = CommerceSql {
    create_slots: "INSERT INTO tier_slots (tier_id, slot) SELECT $1, g FROM generate_series(0, $2 - 1) AS g",
    claim_free: "UPDATE tier_slots SET order_id = $1 WHERE tier_id = $2 AND slot IN \
                 (SELECT slot FROM tier_slots WHERE tier_id = $2 AND order_id IS NULL AND ticket_id IS NULL \
                  LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING slot",
    claim_waiting: Some(
        "UPDATE tier_slots SET order_id = $1 WHERE tier_id = $2 AND slot IN \
         (SELECT slot FROM tier_slots WHERE tier_id = $2 AND order_id IS NULL AND ticket_id IS NULL \
          ORDER BY slot LIMIT $3 FOR UPDATE) RETURNING slot",
    ),
    lock_order: concat!(select_order!(" WHERE o.id = $1"), " FOR UPDATE"),
    lock_listing: concat!(select_listing!(" WHERE l.id = $1"), " FOR UPDATE"),
};

/// SQLite statements.
pub static SQLITE: CommerceSql = CommerceSql {
    create_slots: "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                   INSERT INTO tier_slots (tier_id, slot) SELECT $1, i FROM n WHERE i < $2",
    claim_free: "UPDATE tier_slots SET order_id = $1 WHERE tier_id = $2 AND slot IN \
                 (SELECT slot FROM tier_slots WHERE tier_id = $2 AND order_id IS NULL AND ticket_id IS NULL \
                  ORDER BY slot LIMIT $3) RETURNING slot",
    claim_waiting: None,
    lock_order: select_order!(" WHERE o.id = $1"),
    lock_listing: select_listing!(" WHERE l.id = $1"),
};

/// Slots for a new tier.
pub(super) async fn create_slots<D: Dialect>(
    tx: &mut Transaction<'static, Any>,
    tier: TierId,
    capacity: i64,
) -> StoreResult<()> {
    if capacity > 0 {
        sqlx::query(D::COMMERCE.create_slots)
            .bind(tier.to_string())
            .bind(capacity)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

async fn claim_with(
    tx: &mut Transaction<'static, Any>,
    sql: &'static str,
    holder: &str,
    tier: TierId,
    n: i64,
) -> StoreResult<i64> {
    let rows = sqlx::query(sql)
        .bind(holder.to_string())
        .bind(tier.to_string())
        .bind(n)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(rows.len() as i64)
}

/// Free slots of the tier, from its counters (O(1) in the tier's size,
/// where counting the free rows is O(capacity)): capacity less the tickets
/// counted, those issued and still waiting for the sequencer, and the holds.
async fn free_slots(tx: &mut Transaction<'static, Any>, tier: TierId) -> StoreResult<i64> {
    sqlx::query_scalar(
        "SELECT CAST(t.capacity - t.allocated \
           - (SELECT COUNT(*) FROM manifest_pending p WHERE p.tier_id = t.id) \
           - (SELECT COALESCE(SUM(h.held), 0) FROM tier_holds h WHERE h.tier_id = t.id) AS BIGINT) \
         FROM tiers t WHERE t.id = $1",
    )
    .bind(tier.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)
}

/// Holds `n` free slots of `tier` for `holder` (an order id), or fails with
/// `SoldOut` (or `Retryable` when contention outlasts three waits) leaving
/// nothing held.
///
/// PostgreSQL: first skip rows other transactions hold (no waiting, the hot
/// path). If that comes up short, those rows may still come free (their
/// transaction can roll back), so the attempt is undone to a savepoint,
/// letting go of every row it locked, and retried waiting for rows in slot
/// order: exact, and two waiting claimers lock in the same order.
pub(super) async fn claim<D: Dialect>(
    tx: &mut Transaction<'static, Any>,
    holder: &str,
    tier: TierId,
    n: i64,
) -> StoreResult<()> {
    claim_slots::<D>(tx, holder, tier, n).await?;
    add_held(tx, tier, n, holder).await
}

/// [`claim`] without counting the hold (slots about to be taken by tickets
/// in the same transaction).
async fn claim_slots<D: Dialect>(
    tx: &mut Transaction<'static, Any>,
    holder: &str,
    tier: TierId,
    n: i64,
) -> StoreResult<()> {
    let sql = D::COMMERCE;
    let Some(waiting) = sql.claim_waiting else {
        if claim_with(tx, sql.claim_free, holder, tier, n).await? == n {
            return Ok(());
        }
        return Err(sold_out(n, free_slots(tx, tier).await?));
    };
    // A one-unit claim that comes up short holds nothing, so only larger
    // claims pay for the savepoint.
    let partial = n > 1;
    if partial {
        savepoint(tx, "SAVEPOINT slot_claim").await?;
    }
    if claim_with(tx, sql.claim_free, holder, tier, n).await? == n {
        if partial {
            savepoint(tx, "RELEASE SAVEPOINT slot_claim").await?;
        }
        return Ok(());
    }
    if partial {
        savepoint(tx, "ROLLBACK TO SAVEPOINT slot_claim").await?;
    }
    let mut got = 0;
    for _ in 0..3 {
        let free = free_slots(tx, tier).await?;
        if free < n - got {
            return Err(sold_out(n, free + got));
        }
        got += claim_with(tx, waiting, holder, tier, n - got).await?;
        if got == n {
            return Ok(());
        }
    }
    Err(StoreError::Retryable(
        "the tier is too busy to reserve from right now; try again".into(),
    ))
}

async fn savepoint(tx: &mut Transaction<'static, Any>, stmt: &'static str) -> StoreResult<()> {
    sqlx::query(stmt)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(map_err)
}

fn sold_out(asked: i64, left: i64) -> StoreError {
    StoreError::SoldOut { asked, left }
}

/// Claims one slot per ticket and assigns it (box office, comps).
pub(super) async fn take_for_tickets<D: Dialect>(
    tx: &mut Transaction<'static, Any>,
    tier: TierId,
    tickets: &[(TicketId, Option<OrderId>)],
) -> StoreResult<()> {
    let Some((first, _)) = tickets.first() else {
        return Ok(());
    };
    let marker = format!("ticket:{first}");
    claim_slots::<D>(tx, &marker, tier, tickets.len() as i64).await?;
    let mut held = held_slots(tx, &marker).await?;
    for (ticket, order) in tickets {
        take_held(tx, &mut held, tier, *ticket, order.map(|o| o.to_string())).await?;
    }
    Ok(())
}

/// The slots `holder` holds and no ticket has taken yet, as (tier, slot).
///
/// Found by the holder alone, through `tier_slots_order`: a condition on
/// the tier as well lets the planner, when a big new tier has no statistics
/// yet, intersect it with the whole tier's primary-key range, which costs
/// O(capacity) per ticket (57 ms at 500,000 slots against 0.5 ms at 5,000,
/// see `docs/cloud.md`).
pub(super) async fn held_slots(
    tx: &mut Transaction<'static, Any>,
    holder: &str,
) -> StoreResult<Vec<(TierId, i64)>> {
    let rows = sqlx::query(
        "SELECT tier_id, slot FROM tier_slots WHERE order_id = $1 AND ticket_id IS NULL ORDER BY slot",
    )
    .bind(holder.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| Ok((parsed(r, "tier_id")?, super::sql::col(r, "slot")?)))
        .collect()
}

/// Turns one of the `held` slots of `tier` into `ticket`'s, by primary key
/// (the caller takes it off the hold count).
pub(super) async fn take_held(
    tx: &mut Transaction<'static, Any>,
    held: &mut Vec<(TierId, i64)>,
    tier: TierId,
    ticket: TicketId,
    order: Option<String>,
) -> StoreResult<()> {
    let Some(i) = held.iter().position(|(t, _)| *t == tier) else {
        return Err(StoreError::Other(format!(
            "no held slot of tier {tier} left for ticket {ticket}"
        )));
    };
    let (_, slot) = held.remove(i);
    sqlx::query(
        "UPDATE tier_slots SET ticket_id = $1, order_id = $2 WHERE tier_id = $3 AND slot = $4",
    )
    .bind(ticket.to_string())
    .bind(order)
    .bind(tier.to_string())
    .bind(slot)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(map_err)
}

/// Returns the slots an order still holds (not turned into tickets).
pub(super) async fn release_order(
    tx: &mut Transaction<'static, Any>,
    order: OrderId,
) -> StoreResult<()> {
    let rows = sqlx::query(
        "UPDATE tier_slots SET order_id = NULL WHERE order_id = $1 AND ticket_id IS NULL RETURNING tier_id",
    )
    .bind(order.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    unhold(tx, &rows, &order.to_string()).await
}

/// Takes released slots (rows with a `tier_id`) off their tiers' hold counts.
async fn unhold(
    tx: &mut Transaction<'static, Any>,
    rows: &[sqlx::any::AnyRow],
    salt: &str,
) -> StoreResult<()> {
    let mut per_tier: BTreeMap<TierId, i64> = BTreeMap::new();
    for row in rows {
        *per_tier.entry(parsed(row, "tier_id")?).or_default() += 1;
    }
    for (tier, n) in per_tier {
        add_held(tx, tier, -n, salt).await?;
    }
    Ok(())
}

/// Shards of a tier's hold count: concurrent orders add to different rows.
const HOLD_SHARDS: u32 = 32;

/// Adds `delta` to the tier's hold count, on a shard picked from `salt` (an
/// order id: random bits). Only the sum over shards means anything, so a
/// release may land on another shard than its hold.
pub(super) async fn add_held(
    tx: &mut Transaction<'static, Any>,
    tier: TierId,
    delta: i64,
    salt: &str,
) -> StoreResult<()> {
    let shard = salt
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % HOLD_SHARDS;
    sqlx::query(
        "INSERT INTO tier_holds (tier_id, shard, held) VALUES ($1, $2, $3) \
         ON CONFLICT (tier_id, shard) DO UPDATE SET held = tier_holds.held + excluded.held",
    )
    .bind(tier.to_string())
    .bind(i64::from(shard))
    .bind(delta)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(map_err)
}

/// Returns a cancelled or refunded ticket's slot to stock.
pub(super) async fn release_ticket(
    tx: &mut Transaction<'static, Any>,
    ticket: TicketId,
) -> StoreResult<()> {
    sqlx::query("UPDATE tier_slots SET order_id = NULL, ticket_id = NULL WHERE ticket_id = $1")
        .bind(ticket.to_string())
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(map_err)
}

/// Adds `n` to what the buyer holds at the event, unless that passes `limit`.
pub(super) async fn count_purchase(
    tx: &mut Transaction<'static, Any>,
    event: EventId,
    buyer: UserId,
    n: i64,
    limit: i64,
) -> StoreResult<()> {
    let refused = || StoreError::PurchaseLimit { limit };
    if n > limit {
        return Err(refused());
    }
    let done = sqlx::query(
        "INSERT INTO purchase_counts (event_id, buyer_id, quantity) VALUES ($1, $2, $3) \
         ON CONFLICT (event_id, buyer_id) DO UPDATE SET quantity = purchase_counts.quantity + excluded.quantity \
         WHERE purchase_counts.quantity + excluded.quantity <= $4",
    )
    .bind(event.to_string())
    .bind(buyer.to_string())
    .bind(n)
    .bind(limit)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if done == 1 { Ok(()) } else { Err(refused()) }
}

/// Takes `n` back from what the buyer holds at the event.
pub(super) async fn uncount_purchase(
    tx: &mut Transaction<'static, Any>,
    event: EventId,
    buyer: Option<UserId>,
    n: i64,
) -> StoreResult<()> {
    let Some(buyer) = buyer else { return Ok(()) };
    sqlx::query(
        "UPDATE purchase_counts SET quantity = CASE WHEN quantity > $3 THEN quantity - $3 ELSE 0 END \
         WHERE event_id = $1 AND buyer_id = $2",
    )
    .bind(event.to_string())
    .bind(buyer.to_string())
    .bind(n)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(map_err)
}

impl<D: Dialect> SqlStore<D> {
    /// After an event is cancelled (its tickets already cancelled, their
    /// slots returned): ends its pending orders and open listings.
    pub(super) async fn release_cancelled_event(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE purchase_counts SET quantity = 0 WHERE event_id = $1")
            .bind(event.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        let released = sqlx::query(
            "UPDATE tier_slots SET order_id = NULL WHERE ticket_id IS NULL AND order_id IN \
             (SELECT id FROM orders WHERE event_id = $1 AND status = 'pending') RETURNING tier_id",
        )
        .bind(event.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        unhold(tx, &released, &event.to_string()).await?;
        let stamped = [
            "UPDATE orders SET status = 'cancelled', updated_at = $2 WHERE event_id = $1 AND status = 'pending'",
            "UPDATE resale_listings SET status = 'cancelled', updated_at = $2 WHERE event_id = $1 \
             AND status IN ('active', 'held')",
        ];
        for stmt in stamped {
            sqlx::query(stmt)
                .bind(event.to_string())
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}
