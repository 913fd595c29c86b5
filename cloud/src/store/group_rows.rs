//! The statements of a group-committed batch (`group.rs`), one per table
//! (chunked only by the parameter limit), each writing what the one-order
//! path writes for every order of the batch.

use super::commerce::{OrderItemRecord, WebhookEventRef};
use super::group::{
    BatchError, BatchOrder, BatchResult, IssueBatch, MAX_PARAMS, Q, insert_rows, marks,
    placeholders, refuse, select_in,
};
use super::sql::{col, map_err, parsed};
use super::{StoreResult, TicketRecord};
use crate::commerce::{OrderStatus, PaymentProvider};
use crate::model::{OrderId, TierId, UnixMillis, UserId};
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};

type Tx = Transaction<'static, Any>;

/// Stripe: records each order's provider event; refuses when any was seen.
pub(super) async fn record_events(tx: &mut Tx, b: &IssueBatch, now: UnixMillis) -> BatchResult<()> {
    let events: Vec<&WebhookEventRef> = b
        .orders
        .iter()
        .filter_map(|o| o.stripe.as_ref().map(|(_, e)| e))
        .collect();
    if events.len() != b.orders.len() {
        return refuse("a Stripe order without its provider event");
    }
    let rows = insert_rows(
        tx,
        "INSERT INTO webhook_events (id, kind, outcome, received_at)",
        "ON CONFLICT (id) DO NOTHING RETURNING id",
        4,
        &events,
        |q, e| {
            q.bind(e.id.clone())
                .bind(e.kind.clone())
                .bind("payment_succeeded")
                .bind(now)
        },
    )
    .await?;
    if rows.len() != events.len() {
        return refuse("a provider event was already recorded");
    }
    Ok(())
}

/// Free: the orders (already paid), their items and the buyers' purchase
/// counts.
pub(super) async fn insert_new(tx: &mut Tx, b: &IssueBatch, now: UnixMillis) -> BatchResult<()> {
    let rows = insert_rows(
        tx,
        "INSERT INTO orders (id, event_id, buyer_id, channel, status, payment_method, total_minor, currency, \
         created_at, paid_at, updated_at, kind, quantity, expires_at, listing_id, idempotency_key, request_hash)",
        "ON CONFLICT DO NOTHING RETURNING id",
        17,
        &b.orders,
        |q, bo| {
            let o = &bo.order;
            q.bind(o.id.to_string())
                .bind(o.event_id.to_string())
                .bind(o.buyer_id.map(|u| u.to_string()))
                .bind(o.channel.clone())
                .bind(OrderStatus::Paid.as_str())
                .bind(PaymentProvider::Free.as_str())
                .bind(o.total_minor)
                .bind(o.currency.clone())
                .bind(now)
                .bind(Some(now))
                .bind(now)
                .bind(o.kind.as_str())
                .bind(o.quantity)
                .bind(o.expires_at)
                .bind(None::<String>)
                .bind(bo.idempotency_key.clone())
                .bind(o.request_hash.clone())
        },
    )
    .await?;
    if rows.len() != b.orders.len() {
        return refuse("an idempotency key was already used");
    }
    let items: Vec<(OrderId, &OrderItemRecord)> = b
        .orders
        .iter()
        .flat_map(|o| o.order.items.iter().map(move |i| (o.order.id, i)))
        .collect();
    insert_rows(
        tx,
        "INSERT INTO order_items (order_id, tier_id, tier, quantity, unit_price_minor)",
        "",
        5,
        &items,
        |q, (order, i)| {
            q.bind(order.to_string())
                .bind(i.tier_id.to_string())
                .bind(i64::from(i.tier))
                .bind(i.quantity)
                .bind(i.unit_price_minor)
        },
    )
    .await?;
    let mut counts: BTreeMap<UserId, (i64, i64)> = BTreeMap::new();
    for o in &b.orders {
        let buyer = o
            .order
            .buyer_id
            .ok_or_else(|| BatchError::Refused("an order without a buyer".into()))?;
        let c = counts.entry(buyer).or_insert((0, i64::MAX));
        c.0 += o.order.quantity;
        c.1 = c.1.min(o.purchase_limit);
    }
    if counts.values().any(|(n, limit)| n > limit) {
        return refuse("a buyer would pass the purchase limit");
    }
    let limit = counts.values().map(|(_, l)| *l).min().unwrap_or(i64::MAX);
    let sql = format!(
        "INSERT INTO purchase_counts (event_id, buyer_id, quantity) VALUES {} \
         ON CONFLICT (event_id, buyer_id) DO UPDATE SET quantity = purchase_counts.quantity + excluded.quantity \
         WHERE purchase_counts.quantity + excluded.quantity <= ${} RETURNING buyer_id",
        placeholders(counts.len(), 3, 0),
        counts.len() * 3 + 1,
    );
    let mut q: Q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (u, (n, _)) in &counts {
        q = q.bind(b.event_id.to_string()).bind(u.to_string()).bind(*n);
    }
    let q = q.bind(limit);
    let done = q.fetch_all(&mut **tx).await.map_err(map_err)?;
    if done.len() != counts.len() {
        return refuse("a buyer would pass the purchase limit");
    }
    Ok(())
}

/// Free: one free slot per ticket, taken by it, one statement per tier
/// (skipping slots other transactions hold; short means refused).
pub(super) async fn claim_slots(tx: &mut Tx, b: &IssueBatch) -> BatchResult<()> {
    let mut per_tier: BTreeMap<TierId, Vec<&TicketRecord>> = BTreeMap::new();
    for o in &b.orders {
        for t in &o.tickets {
            per_tier.entry(t.tier_id).or_default().push(t);
        }
    }
    for (tier, tickets) in per_tier {
        for chunk in tickets.chunks(MAX_PARAMS / 3) {
            let sql = format!(
                "WITH free AS (SELECT slot, ROW_NUMBER() OVER () AS rn FROM ( \
                   SELECT slot FROM tier_slots WHERE tier_id = $1 AND order_id IS NULL AND ticket_id IS NULL \
                   LIMIT $2 FOR UPDATE SKIP LOCKED) AS s), \
                 want (rn, ticket_id, order_id) AS (VALUES {}) \
                 UPDATE tier_slots t SET ticket_id = w.ticket_id, order_id = w.order_id \
                 FROM free f JOIN want w ON w.rn = f.rn \
                 WHERE t.tier_id = $1 AND t.slot = f.slot RETURNING t.slot",
                placeholders(chunk.len(), 3, 2)
            );
            let mut q: Q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tier.to_string())
                .bind(chunk.len() as i64);
            for (i, t) in chunk.iter().enumerate() {
                q = q
                    .bind(i as i64 + 1)
                    .bind(t.id.to_string())
                    .bind(t.order_id.map(|o| o.to_string()));
            }
            let taken = q.fetch_all(&mut **tx).await.map_err(map_err)?;
            if taken.len() != chunk.len() {
                return refuse("not enough free slots to skip to");
            }
        }
    }
    Ok(())
}

/// Stripe: locks the orders, checks they are still pending at their price
/// with their holds and no settled payment, and turns their held slots into
/// their tickets'.
pub(super) async fn take_pending(tx: &mut Tx, b: &IssueBatch) -> BatchResult<()> {
    let mut ids: Vec<String> = b.orders.iter().map(|o| o.order.id.to_string()).collect();
    ids.sort();
    let rows = select_in(
        tx,
        "SELECT id, status, total_minor, currency FROM orders WHERE id IN ({}) ORDER BY id FOR UPDATE",
        &[],
        &ids,
    )
    .await?;
    let mut locked = HashMap::new();
    for r in &rows {
        let id: OrderId = parsed(r, "id")?;
        let status: OrderStatus = parsed(r, "status")?;
        locked.insert(
            id,
            (
                status,
                col::<i64>(r, "total_minor")?,
                col::<String>(r, "currency")?,
            ),
        );
    }
    for o in &b.orders {
        match locked.get(&o.order.id) {
            Some((OrderStatus::Pending, total, currency))
                if *total == o.order.total_minor && *currency == o.order.currency => {}
            _ => return refuse("an order is no longer pending at its price"),
        }
    }
    let intents: Vec<String> = b
        .orders
        .iter()
        .filter_map(|o| o.stripe.as_ref().map(|(i, _)| i.clone()))
        .collect();
    let settled = select_in(
        tx,
        "SELECT provider_ref FROM payments WHERE provider = $1 AND ref_scope = '' \
         AND status IN ('succeeded', 'refund_due', 'refunded') AND provider_ref IN ({})",
        &[PaymentProvider::Stripe.as_str().to_string()],
        &intents,
    )
    .await?;
    if !settled.is_empty() {
        return refuse("a payment intent was already settled");
    }
    let held = select_in(
        tx,
        "SELECT order_id, tier_id, slot FROM tier_slots WHERE order_id IN ({}) AND ticket_id IS NULL ORDER BY slot",
        &[],
        &ids,
    )
    .await?;
    let mut slots: HashMap<(OrderId, TierId), Vec<i64>> = HashMap::new();
    for r in &held {
        slots
            .entry((parsed(r, "order_id")?, parsed(r, "tier_id")?))
            .or_default()
            .push(col(r, "slot")?);
    }
    let mut takes: Vec<(TierId, i64, String)> = Vec::new();
    for o in &b.orders {
        for t in &o.tickets {
            let slot = slots
                .get_mut(&(o.order.id, t.tier_id))
                .and_then(Vec::pop)
                .ok_or_else(|| BatchError::Refused("an order lost its held slots".into()))?;
            takes.push((t.tier_id, slot, t.id.to_string()));
        }
    }
    if slots.values().any(|s| !s.is_empty()) {
        return refuse("an order holds more slots than it has tickets");
    }
    for chunk in takes.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "UPDATE tier_slots t SET ticket_id = v.ticket_id FROM (VALUES {}) AS v(tier_id, slot, ticket_id) \
             WHERE t.tier_id = v.tier_id AND t.slot = CAST(v.slot AS BIGINT)",
            placeholders(chunk.len(), 3, 0)
        );
        let mut q: Q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (tier, slot, ticket) in chunk {
            q = q.bind(tier.to_string()).bind(*slot).bind(ticket.clone());
        }
        let n = q.execute(&mut **tx).await.map_err(map_err)?.rows_affected();
        if n != chunk.len() as u64 {
            return refuse("a held slot moved");
        }
    }
    Ok(())
}

/// The tickets, their audit lines and their mint jobs.
pub(super) async fn write_tickets(
    tx: &mut Tx,
    b: &IssueBatch,
    tickets: &[TicketRecord],
    now: UnixMillis,
) -> BatchResult<()> {
    insert_rows(
        tx,
        "INSERT INTO tickets (id, event_id, tier_id, tier, zone_mask, owner_id, order_id, holder_name, status, \
         generation, credential, price_minor, currency, created_at, updated_at)",
        "",
        15,
        tickets,
        super::tickets::bind_ticket,
    )
    .await?;
    // The one-order path records the buyer as the actor of a free order and
    // nobody for a provider's payment.
    let free = b.provider == PaymentProvider::Free;
    let buyer_of: HashMap<OrderId, Option<UserId>> = b
        .orders
        .iter()
        .map(|o| (o.order.id, o.order.buyer_id))
        .collect();
    insert_rows(
        tx,
        "INSERT INTO ticket_audit (id, ticket_id, from_status, to_status, actor_id, reason, created_at)",
        "",
        7,
        tickets,
        |q, t| {
            let order = t.order_id.map(|o| o.to_string()).unwrap_or_default();
            let actor = t
                .order_id
                .and_then(|o| buyer_of.get(&o).copied().flatten())
                .filter(|_| free);
            q.bind(uuid::Uuid::now_v7().to_string())
                .bind(t.id.to_string())
                .bind(None::<String>)
                .bind(t.status.as_str())
                .bind(actor.map(|a| a.to_string()))
                .bind(format!("paid order {order}"))
                .bind(now)
        },
    )
    .await?;
    insert_rows(
        tx,
        "INSERT INTO chain_jobs (id, ticket_id, kind, status, next_at, created_at, updated_at)",
        "ON CONFLICT DO NOTHING",
        7,
        tickets,
        |q, t| {
            q.bind(uuid::Uuid::now_v7().to_string())
                .bind(t.id.to_string())
                .bind(super::chain::JobKind::Mint.as_str())
                .bind("pending")
                .bind(now)
                .bind(now)
                .bind(now)
        },
    )
    .await?;
    Ok(())
}

/// The succeeded payments: new rows for free orders; for Stripe the rows of
/// the intents (created when an intent has none, as the one-order path
/// does).
pub(super) async fn write_payments(
    tx: &mut Tx,
    b: &IssueBatch,
    now: UnixMillis,
) -> BatchResult<()> {
    let mut missing: Vec<&BatchOrder> = b.orders.iter().collect();
    if b.provider == PaymentProvider::Stripe {
        let ids: Vec<String> = b.orders.iter().map(|o| o.order.id.to_string()).collect();
        let sql = format!(
            "UPDATE orders SET status = 'paid', paid_at = $1, updated_at = $1, payment_method = $2 WHERE id IN ({})",
            marks(3, ids.len())
        );
        let mut q: Q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(PaymentProvider::Stripe.as_str());
        for id in &ids {
            q = q.bind(id.clone());
        }
        q.execute(&mut **tx).await.map_err(map_err)?;
        let intents: Vec<String> = b
            .orders
            .iter()
            .filter_map(|o| o.stripe.as_ref().map(|(i, _)| i.clone()))
            .collect();
        let sql = format!(
            "UPDATE payments SET status = 'succeeded', updated_at = $1 WHERE provider = $2 \
             AND provider_ref IN ({}) RETURNING provider_ref",
            marks(3, intents.len())
        );
        let mut q: Q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(PaymentProvider::Stripe.as_str());
        for i in &intents {
            q = q.bind(i.clone());
        }
        let updated: HashSet<String> = q
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| col::<String>(r, "provider_ref"))
            .collect::<StoreResult<_>>()?;
        missing.retain(|o| o.stripe.as_ref().is_some_and(|(i, _)| !updated.contains(i)));
    }
    insert_rows(
        tx,
        "INSERT INTO payments (id, order_id, provider, provider_ref, status, amount_minor, currency, created_at, updated_at, ref_scope)",
        "",
        10,
        &missing,
        |q, o| {
            q.bind(crate::model::PaymentId::new().to_string())
                .bind(o.order.id.to_string())
                .bind(b.provider.as_str())
                .bind(o.stripe.as_ref().map(|(i, _)| i.clone()))
                .bind("succeeded")
                .bind(o.order.total_minor)
                .bind(o.order.currency.clone())
                .bind(now)
                .bind(now)
                .bind(String::new())
        },
    )
    .await?;
    Ok(())
}
