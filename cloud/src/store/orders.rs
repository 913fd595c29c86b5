//! Orders: creation with inventory holds, reads, expiry and cancellation,
//! fulfilment, and the per-event sales policy. Payment and refund (which
//! issue and revoke tickets) are in `settle.rs`.
//!
//! Lock order, everywhere: the event row (`lock_event`, only where tickets
//! or the manifest change), then the order row, then slots. Creating an
//! order takes no event lock at all, so holds on a hot tier never queue
//! behind ticket issuing.

use super::commerce::{
    IdempotencyRecord, NewOnlineOrder, OrderCreated, OrderFilter, OrderItemRecord, OrderRecord,
    OrderStore, RefundChange, RefundOutcome, SalesPolicy, SettleOutcome, Settlement,
};
use super::inventory::{self, select_order};
use super::sql::{col, map_err, narrow, not_found, parsed, parsed_opt};
use super::writes::insert_order;
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::commerce::OrderStatus;
use crate::model::{EventId, EventStatus, OrderId, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use std::collections::HashMap;

pub(super) fn order_from_row(row: &AnyRow) -> StoreResult<OrderRecord> {
    Ok(OrderRecord {
        id: parsed(row, "id")?,
        event_id: parsed(row, "event_id")?,
        buyer_id: parsed_opt(row, "buyer_id")?,
        channel: col(row, "channel")?,
        kind: parsed(row, "kind")?,
        status: parsed(row, "status")?,
        payment_method: col(row, "payment_method")?,
        total_minor: col(row, "total_minor")?,
        currency: col(row, "currency")?,
        quantity: col(row, "quantity")?,
        expires_at: col(row, "expires_at")?,
        listing_id: parsed_opt(row, "listing_id")?,
        request_hash: col(row, "request_hash")?,
        created_at: col(row, "created_at")?,
        paid_at: col(row, "paid_at")?,
        updated_at: col(row, "updated_at")?,
        items: Vec::new(),
        ticket_ids: Vec::new(),
    })
}

/// The order row, locked until commit.
pub(super) async fn lock_order<D: Dialect>(
    tx: &mut Transaction<'static, Any>,
    id: OrderId,
) -> StoreResult<OrderRecord> {
    let row = sqlx::query(D::COMMERCE.lock_order)
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound("order"))?;
    let mut order = order_from_row(&row)?;
    order.items = items_of(tx, id).await?;
    Ok(order)
}

pub(super) async fn items_of(
    conn: &mut sqlx::AnyConnection,
    order: OrderId,
) -> StoreResult<Vec<OrderItemRecord>> {
    let rows = sqlx::query(
        "SELECT tier_id, tier, quantity, unit_price_minor FROM order_items WHERE order_id = $1 ORDER BY tier",
    )
    .bind(order.to_string())
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(item_from_row).collect()
}

fn item_from_row(r: &AnyRow) -> StoreResult<OrderItemRecord> {
    Ok(OrderItemRecord {
        tier_id: parsed(r, "tier_id")?,
        tier: narrow(r, "tier")?,
        quantity: col(r, "quantity")?,
        unit_price_minor: col(r, "unit_price_minor")?,
    })
}

/// Fills the items of a page of orders with one query (not one per order).
pub(super) async fn attach_items(
    pool: &sqlx::AnyPool,
    orders: &mut [OrderRecord],
) -> StoreResult<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=orders.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT order_id, tier_id, tier, quantity, unit_price_minor FROM order_items \
         WHERE order_id IN ({}) ORDER BY tier",
        marks.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for o in orders.iter() {
        q = q.bind(o.id.to_string());
    }
    let rows = q.fetch_all(pool).await.map_err(map_err)?;
    let mut by_order: HashMap<OrderId, Vec<OrderItemRecord>> = HashMap::new();
    for r in &rows {
        by_order
            .entry(parsed(r, "order_id")?)
            .or_default()
            .push(item_from_row(r)?);
    }
    for o in orders {
        o.items = by_order.remove(&o.id).unwrap_or_default();
    }
    Ok(())
}

/// Sets an order's status (and `updated_at`).
pub(super) async fn set_order_status(
    tx: &mut Transaction<'static, Any>,
    id: OrderId,
    to: OrderStatus,
    now: UnixMillis,
) -> StoreResult<()> {
    sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(to.as_str())
        .bind(now)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(map_err)
}

/// Returns what a pending order holds: its slots, or its resale listing, and
/// the buyer's purchase count.
pub(super) async fn release_hold(
    tx: &mut Transaction<'static, Any>,
    order: &OrderRecord,
    now: UnixMillis,
) -> StoreResult<()> {
    inventory::release_order(tx, order.id).await?;
    if let Some(listing) = order.listing_id {
        sqlx::query(
            "UPDATE resale_listings SET status = 'active', order_id = NULL, updated_at = $1 \
             WHERE id = $2 AND status = 'held' AND order_id = $3",
        )
        .bind(now)
        .bind(listing.to_string())
        .bind(order.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    inventory::uncount_purchase(tx, order.event_id, order.buyer_id, order.quantity).await
}

fn illegal(from: OrderStatus, to: OrderStatus) -> StoreError {
    StoreError::illegal("order", from.as_str(), to.as_str())
}

/// Why creating an order did not finish.
enum CreateFailure {
    /// Another request with the same idempotency key got there first.
    KeyTaken,
    Store(StoreError),
}

impl From<StoreError> for CreateFailure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl<D: Dialect> SqlStore<D> {
    async fn order_by_key(&self, buyer: UserId, key: &str) -> StoreResult<Option<OrderRecord>> {
        let row = sqlx::query(select_order!(
            " WHERE o.buyer_id = $1 AND o.idempotency_key = $2"
        ))
        .bind(buyer.to_string())
        .bind(key.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match row {
            Some(row) => Ok(Some(self.order(parsed(&row, "id")?).await?)),
            None => Ok(None),
        }
    }

    async fn replay(
        &self,
        new: &NewOnlineOrder,
        idem: &IdempotencyRecord,
    ) -> StoreResult<Option<OrderCreated>> {
        let Some(existing) = self.order_by_key(new.buyer_id, &idem.key).await? else {
            return Ok(None);
        };
        if existing.request_hash.as_deref() != Some(idem.request_hash.as_str()) {
            return Ok(Some(OrderCreated::KeyReused));
        }
        Ok(Some(OrderCreated::Replayed(existing)))
    }

    async fn try_create_order(
        &self,
        new: &NewOnlineOrder,
        now: UnixMillis,
    ) -> Result<OrderRecord, CreateFailure> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT status, ends_at FROM events WHERE id = $1")
            .bind(new.event_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound("event"))?;
        let status: EventStatus = parsed(&row, "status")?;
        if !status.on_sale() {
            return Err(StoreError::NotOnSale(format!(
                "tickets are not on sale for a {} event",
                status.as_str()
            ))
            .into());
        }
        if col::<i64>(&row, "ends_at")? <= now {
            return Err(
                StoreError::NotOnSale("tickets are not on sale: the event is over".into()).into(),
            );
        }
        let order = new.pending_record(now);
        let key = new.idempotency.as_ref().map(|i| i.key.as_str());
        let inserted = insert_order(&mut tx, &order, key).await;
        if let Err(e) = inserted {
            let unique = matches!(&e, sqlx::Error::Database(db)
                if db.kind() == sqlx::error::ErrorKind::UniqueViolation);
            return Err(if unique && new.idempotency.is_some() {
                CreateFailure::KeyTaken
            } else {
                map_err(e).into()
            });
        }
        for item in &new.items {
            sqlx::query(
                "INSERT INTO order_items (order_id, tier_id, tier, quantity, unit_price_minor) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(new.id.to_string())
            .bind(item.tier_id.to_string())
            .bind(i64::from(item.tier))
            .bind(item.quantity)
            .bind(item.unit_price_minor)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        inventory::count_purchase(
            &mut tx,
            new.event_id,
            new.buyer_id,
            order.quantity,
            new.purchase_limit,
        )
        .await?;
        let holder = new.id.to_string();
        for item in &new.items {
            inventory::claim::<D>(&mut tx, &holder, item.tier_id, item.quantity).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(order)
    }
}

#[async_trait]
impl<D: Dialect> OrderStore for SqlStore<D> {
    async fn create_order(
        &self,
        new: &NewOnlineOrder,
        now: UnixMillis,
    ) -> StoreResult<OrderCreated> {
        if let Some(idem) = &new.idempotency
            && let Some(replayed) = self.replay(new, idem).await?
        {
            return Ok(replayed);
        }
        match self.try_create_order(new, now).await {
            Ok(order) => Ok(OrderCreated::New(order)),
            Err(CreateFailure::Store(e)) => Err(e),
            Err(CreateFailure::KeyTaken) => match &new.idempotency {
                Some(idem) => self.replay(new, idem).await?.ok_or_else(|| {
                    StoreError::Other("idempotency key taken but no order found".into())
                }),
                None => Err(StoreError::Other("unexpected unique violation".into())),
            },
        }
    }

    async fn order(&self, id: OrderId) -> StoreResult<OrderRecord> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let row = sqlx::query(select_order!(" WHERE o.id = $1"))
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await
            .map_err(not_found("order"))?;
        let mut order = order_from_row(&row)?;
        order.items = items_of(&mut conn, id).await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM tickets WHERE order_id = $1 ORDER BY id")
                .bind(id.to_string())
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?;
        order.ticket_ids = ids
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| StoreError::Other(format!("ticket id: {e}")))
            })
            .collect::<StoreResult<_>>()?;
        Ok(order)
    }

    async fn list_orders(&self, f: &OrderFilter) -> StoreResult<Vec<OrderRecord>> {
        let rows = sqlx::query(select_order!(
            " JOIN events e ON e.id = o.event_id \
             WHERE ($1 IS NULL OR o.buyer_id = $1) AND ($2 IS NULL OR e.organizer_id = $2) \
             AND ($3 IS NULL OR o.event_id = $3) AND ($4 IS NULL OR o.status = $4) \
             AND ($5 IS NULL OR o.id > $5) ORDER BY o.id LIMIT $6"
        ))
        .bind(f.buyer_id.map(|b| b.to_string()))
        .bind(f.organizer_id.map(|o| o.to_string()))
        .bind(f.event_id.map(|e| e.to_string()))
        .bind(f.status.map(|s| s.as_str().to_string()))
        .bind(f.after.map(|a| a.to_string()))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut orders = rows
            .iter()
            .map(order_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        attach_items(&self.pool, &mut orders).await?;
        Ok(orders)
    }

    async fn publish_pending(&self, now: UnixMillis) -> StoreResult<usize> {
        self.publish_all_pending(now).await
    }

    async fn due_orders(&self, now: UnixMillis, limit: i64) -> StoreResult<Vec<OrderId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'pending' AND expires_at < $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| StoreError::Other(format!("order id: {e}")))
            })
            .collect()
    }

    async fn close_order(
        &self,
        id: OrderId,
        to: OrderStatus,
        _actor: Option<UserId>,
        only_if_due: bool,
        now: UnixMillis,
    ) -> StoreResult<OrderRecord> {
        if !matches!(to, OrderStatus::Expired | OrderStatus::Cancelled) {
            return Err(StoreError::Other(format!("close_order to {}", to.as_str())));
        }
        let mut tx = self.begin_write().await?;
        let mut order = lock_order::<D>(&mut tx, id).await?;
        let due = order.expires_at.is_some_and(|e| e <= now);
        if only_if_due && (order.status != OrderStatus::Pending || !due) {
            return Ok(order);
        }
        if !order.status.can_become(to) {
            return Err(illegal(order.status, to));
        }
        set_order_status(&mut tx, id, to, now).await?;
        release_hold(&mut tx, &order, now).await?;
        tx.commit().await.map_err(map_err)?;
        order.status = to;
        order.updated_at = now;
        Ok(order)
    }

    fn group_commit(&self) -> bool {
        D::GROUP_COMMIT
    }

    async fn issue_batch(
        &self,
        batch: &super::IssueBatch,
        now: UnixMillis,
    ) -> Result<Vec<OrderRecord>, super::BatchError> {
        self.pay_batch(batch, now).await
    }

    async fn settle_order(&self, s: &Settlement, now: UnixMillis) -> StoreResult<SettleOutcome> {
        self.settle(s, now).await
    }

    async fn fulfil_order(
        &self,
        id: OrderId,
        _actor: UserId,
        now: UnixMillis,
    ) -> StoreResult<OrderRecord> {
        let mut tx = self.begin_write().await?;
        let mut order = lock_order::<D>(&mut tx, id).await?;
        if !order.status.can_become(OrderStatus::Fulfilled) {
            return Err(illegal(order.status, OrderStatus::Fulfilled));
        }
        set_order_status(&mut tx, id, OrderStatus::Fulfilled, now).await?;
        tx.commit().await.map_err(map_err)?;
        order.status = OrderStatus::Fulfilled;
        order.updated_at = now;
        Ok(order)
    }

    async fn refund_order(&self, r: &RefundChange, now: UnixMillis) -> StoreResult<RefundOutcome> {
        self.refund(r, now).await
    }

    async fn sales_policy(&self, event: EventId) -> StoreResult<Option<SalesPolicy>> {
        let row = sqlx::query(
            "SELECT max_tickets_per_customer, resale_enabled, resale_max_percent FROM sales_policies WHERE event_id = $1",
        )
        .bind(event.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| {
            let enabled: i64 = col(&r, "resale_enabled")?;
            Ok(SalesPolicy {
                max_tickets_per_customer: col(&r, "max_tickets_per_customer")?,
                resale_enabled: enabled != 0,
                resale_max_percent: col(&r, "resale_max_percent")?,
            })
        })
        .transpose()
    }

    async fn set_sales_policy(
        &self,
        event: EventId,
        p: &SalesPolicy,
        now: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sales_policies (event_id, max_tickets_per_customer, resale_enabled, resale_max_percent, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO UPDATE SET \
             max_tickets_per_customer = excluded.max_tickets_per_customer, resale_enabled = excluded.resale_enabled, \
             resale_max_percent = excluded.resale_max_percent, updated_at = excluded.updated_at",
        )
        .bind(event.to_string())
        .bind(p.max_tickets_per_customer)
        .bind(i64::from(p.resale_enabled))
        .bind(p.resale_max_percent)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }
}
