//! Group commit: many orders of one event paid in one transaction
//! (PostgreSQL), with one statement per table, the event row locked once and
//! one manifest version for the whole batch (`docs/cloud.md`, "Group
//! commit").
//!
//! A batch only takes the plain case: the event on sale, enough free slots
//! (free orders) or the orders still pending with their holds (Stripe), every
//! buyer within the purchase limit, no idempotency key or provider event seen
//! before, the credentials signed by the key that signs now. Anything else
//! refuses the whole batch ([`BatchError::Refused`]) before anything commits:
//! the caller then runs every order of it through the one-order path, which
//! answers the exceptions exactly as without batching.
//!
//! The batch writes exactly the rows the one-order path would (orders,
//! items, purchase counts, slots, tickets, audit lines, mint jobs, manifest
//! changes, payments, outbox rows), so nothing downstream can tell them
//! apart, and all of them in one transaction: a crash leaves all or none.

use super::commerce::{OrderRecord, WebhookEventRef};
use super::manifest::entry_for;
use super::sql::{col, map_err, parsed};
use super::{Dialect, SqlStore, StoreError, StoreResult, TicketRecord};
use crate::commerce::{OrderStatus, PaymentProvider};
use crate::model::{EventId, TierId, UnixMillis, UserId};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};

type Tx = Transaction<'static, Any>;
pub(super) type Q = sqlx::query::Query<'static, Any, AnyArguments>;

/// Most bound parameters in one statement (PostgreSQL allows 65,535).
pub(super) const MAX_PARAMS: usize = 30_000;

/// One order of a batch.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    /// Free: the new order as it reads once paid. Stripe: the pending order
    /// as loaded (re-checked under its row lock).
    pub order: OrderRecord,
    /// Free: the request's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Its new tickets with signed credentials (holder names are filled in
    /// from the buyer's account inside the transaction).
    pub tickets: Vec<TicketRecord>,
    /// Free: the most tickets the buyer may hold at the event.
    pub purchase_limit: i64,
    /// Stripe: the payment intent and the provider event that paid it.
    pub stripe: Option<(String, WebhookEventRef)>,
}

/// Orders of one event to pay together.
#[derive(Debug, Clone)]
pub struct IssueBatch {
    /// The event.
    pub event_id: EventId,
    /// `Free` (new orders, `POST /orders`) or `Stripe` (pending orders, the
    /// webhook).
    pub provider: PaymentProvider,
    /// The event key that signed the credentials.
    pub key_id: String,
    /// The orders.
    pub orders: Vec<BatchOrder>,
}

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Nothing was written: pay each order alone.
    #[error("batch refused: {0}")]
    Refused(String),
    /// Nothing was written; the event's signing key changed since the
    /// credentials were signed.
    #[error("the event's signing key changed")]
    KeyChanged,
    /// The commit failed: whether it took effect is unknown.
    #[error("batch commit failed: {0}")]
    Commit(StoreError),
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        Self::Refused(e.to_string())
    }
}

pub(super) type BatchResult<T> = Result<T, BatchError>;

pub(super) fn refuse<T>(why: impl Into<String>) -> BatchResult<T> {
    Err(BatchError::Refused(why.into()))
}

/// `($o+1, ..., $o+cols), (...)` for `rows` rows.
pub(super) fn placeholders(rows: usize, cols: usize, offset: usize) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=cols)
                .map(|c| format!("${}", offset + r * cols + c))
                .collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$from, ..., $from+n-1`.
pub(super) fn marks(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `{head} VALUES (..), (..) {tail}` over `rows`, `cols` parameters each, in
/// as few statements as the parameter limit allows; the rows a `RETURNING`
/// tail gave.
pub(super) async fn insert_rows<T>(
    tx: &mut Tx,
    head: &str,
    tail: &str,
    cols: usize,
    rows: &[T],
    bind: impl Fn(Q, &T) -> Q,
) -> StoreResult<Vec<AnyRow>> {
    let mut out = Vec::new();
    for chunk in rows.chunks((MAX_PARAMS / cols).max(1)) {
        let sql = format!(
            "{head} VALUES {} {tail}",
            placeholders(chunk.len(), cols, 0)
        );
        let mut q: Q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = bind(q, r);
        }
        out.extend(q.fetch_all(&mut **tx).await.map_err(map_err)?);
    }
    Ok(out)
}

/// `SELECT {cols} FROM ... WHERE {column} IN (ids) {tail}`: `sql` holds one
/// `{}` where the marks go, after `fixed` leading parameters.
pub(super) async fn select_in(
    tx: &mut Tx,
    sql: &str,
    fixed: &[String],
    ids: &[String],
) -> StoreResult<Vec<AnyRow>> {
    let sql = sql.replace("{}", &marks(fixed.len() + 1, ids.len()));
    let mut q: Q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for f in fixed.iter().chain(ids) {
        q = q.bind(f.clone());
    }
    q.fetch_all(&mut **tx).await.map_err(map_err)
}

/// A buyer as the batch needs them: the name on their tickets and what the
/// confirmation goes to.
#[derive(Debug, Clone)]
pub(super) struct Buyer {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub sms: bool,
}

impl<D: Dialect> SqlStore<D> {
    /// Pays every order of `b` in one transaction, or none (see the module
    /// docs); returns the orders as paid, in `b`'s order.
    pub(super) async fn pay_batch(
        &self,
        b: &IssueBatch,
        now: UnixMillis,
    ) -> BatchResult<Vec<OrderRecord>> {
        if !D::GROUP_COMMIT {
            return refuse("group commit needs PostgreSQL");
        }
        if b.orders.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let paid = Self::batch_body(&mut tx, b, now).await?;
        tx.commit()
            .await
            .map_err(|e| BatchError::Commit(map_err(e)))?;
        Ok(paid)
    }

    async fn batch_body(
        tx: &mut Tx,
        b: &IssueBatch,
        now: UnixMillis,
    ) -> BatchResult<Vec<OrderRecord>> {
        let stripe = b.provider == PaymentProvider::Stripe;
        if stripe {
            super::group_rows::record_events(tx, b, now).await?;
        }
        let mut head = Self::lock_event(tx, b.event_id, now).await?;
        if !head.status.on_sale() {
            return refuse(format!("the event is {}", head.status.as_str()));
        }
        if !stripe && head.ends_at <= now {
            return refuse("the event is over");
        }
        let key: Option<String> = sqlx::query_scalar(
            "SELECT key_id FROM event_keys WHERE event_id = $1 AND retired_at IS NULL \
             ORDER BY created_at DESC, key_id DESC LIMIT 1",
        )
        .bind(b.event_id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
        if key.as_deref() != Some(b.key_id.as_str()) {
            return Err(BatchError::KeyChanged);
        }
        let tiers = tier_names(tx, b).await?;
        let buyers = buyers(tx, b).await?;
        if stripe {
            super::group_rows::take_pending(tx, b).await?;
        } else {
            super::group_rows::insert_new(tx, b, now).await?;
        }
        let mut tickets: Vec<TicketRecord> = Vec::new();
        for o in &b.orders {
            let buyer = o
                .order
                .buyer_id
                .and_then(|id| buyers.get(&id))
                .ok_or_else(|| BatchError::Refused("an order's buyer is gone".into()))?;
            for t in &o.tickets {
                let mut t = t.clone();
                t.holder_name = buyer.name.clone();
                tickets.push(t);
            }
        }
        if !stripe {
            super::group_rows::claim_slots(tx, b).await?;
        }
        super::group_rows::write_tickets(tx, b, &tickets, now).await?;
        let entries: Vec<_> = tickets.iter().map(entry_for).collect();
        Self::append_version(tx, b.event_id, &mut head, &entries, None, now).await?;
        let mut per_tier: BTreeMap<TierId, i64> = BTreeMap::new();
        for t in &tickets {
            *per_tier.entry(t.tier_id).or_default() += 1;
        }
        for (tier, n) in &per_tier {
            sqlx::query("UPDATE tiers SET allocated = allocated + $1 WHERE id = $2")
                .bind(*n)
                .bind(tier.to_string())
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            if stripe {
                super::inventory::add_held(tx, *tier, -n, &b.orders[0].order.id.to_string())
                    .await?;
            }
        }
        super::group_rows::write_payments(tx, b, now).await?;
        let paid: Vec<OrderRecord> = b
            .orders
            .iter()
            .map(|o| {
                let mut order = o.order.clone();
                order.status = OrderStatus::Paid;
                order.paid_at = Some(now);
                order.updated_at = now;
                order.payment_method = b.provider.as_str().into();
                let mut ids: Vec<_> = tickets
                    .iter()
                    .filter(|t| t.order_id == Some(order.id))
                    .map(|t| t.id)
                    .collect();
                ids.sort_by_key(|id| id.to_string());
                order.ticket_ids = ids;
                order
            })
            .collect();
        super::outbox_batch::orders_paid(tx, b.event_id, &paid, &tickets, &tiers, &buyers, now)
            .await?;
        Ok(paid)
    }
}

/// The event's tiers' names, checking every order's prices against them.
async fn tier_names(tx: &mut Tx, b: &IssueBatch) -> BatchResult<HashMap<TierId, String>> {
    let rows = sqlx::query("SELECT id, name, price_minor FROM tiers WHERE event_id = $1")
        .bind(b.event_id.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
    let mut names = HashMap::new();
    let mut prices = HashMap::new();
    for r in &rows {
        let id: TierId = parsed(r, "id")?;
        names.insert(id, col::<String>(r, "name")?);
        prices.insert(id, col::<i64>(r, "price_minor")?);
    }
    if b.provider == PaymentProvider::Free {
        for o in &b.orders {
            for i in &o.order.items {
                if prices.get(&i.tier_id) != Some(&i.unit_price_minor) {
                    return refuse("a tier's price changed");
                }
            }
        }
    }
    Ok(names)
}

/// The batch's buyers, by id.
async fn buyers(tx: &mut Tx, b: &IssueBatch) -> BatchResult<HashMap<UserId, Buyer>> {
    let ids: Vec<String> = b
        .orders
        .iter()
        .filter_map(|o| o.order.buyer_id)
        .map(|u| u.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let rows = select_in(
        tx,
        "SELECT u.id, u.email, u.display_name, p.phone, p.sms FROM users u \
         LEFT JOIN notification_prefs p ON p.user_id = u.id WHERE u.id IN ({})",
        &[],
        &ids,
    )
    .await?;
    let mut out = HashMap::new();
    for r in &rows {
        let id: UserId = parsed(r, "id")?;
        out.insert(
            id,
            Buyer {
                id,
                email: col(r, "email")?,
                name: col(r, "display_name")?,
                phone: col(r, "phone")?,
                sms: col::<Option<i64>>(r, "sms")?.unwrap_or(0) != 0,
            },
        );
    }
    Ok(out)
}
