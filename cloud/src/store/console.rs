//! Read models for the web console and the public shop: published events
//! without an account, user search for admins, an event's orders with
//! filters. Every list is keyset-paginated by id, like the rest of the API.

use super::events::event_from_row;
use super::orders::{attach_items, order_from_row};
use super::sql::{col, map_err};
use super::users::user_from_row;
use super::{Dialect, EventRecord, OrderRecord, SqlStore, StoreResult, UserRecord};
use crate::commerce::OrderStatus;
use crate::model::{EventId, EventStatus, OrderId, UnixMillis, UserId};
use async_trait::async_trait;

/// Filter of the public event list. Drafts are never part of it.
#[derive(Debug, Clone, Default)]
pub struct PublicEventFilter {
    /// One published status (never `draft`).
    pub status: Option<EventStatus>,
    /// Name contains this (case-insensitive).
    pub name: Option<String>,
    /// Starts at or after.
    pub starts_from: Option<UnixMillis>,
    /// Starts before.
    pub starts_before: Option<UnixMillis>,
    /// Events after this id.
    pub after: Option<EventId>,
    /// Page size.
    pub limit: i64,
}

/// Filter of one event's orders.
#[derive(Debug, Clone, Default)]
pub struct EventOrderFilter {
    /// The event.
    pub event_id: Option<EventId>,
    /// One status.
    pub status: Option<OrderStatus>,
    /// Buyer's email contains this (case-insensitive).
    pub buyer_email: Option<String>,
    /// Created at or after.
    pub created_from: Option<UnixMillis>,
    /// Created before.
    pub created_before: Option<UnixMillis>,
    /// Orders after this id.
    pub after: Option<OrderId>,
    /// Page size.
    pub limit: i64,
}

/// An order with its buyer's email (box-office sales may have no buyer).
#[derive(Debug, Clone)]
pub struct OrderWithBuyer {
    /// The order, with its lines.
    pub order: OrderRecord,
    /// The buyer account's email.
    pub buyer_email: Option<String>,
}

/// Console read models.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// A page of published events (with tiers), ascending by id.
    async fn public_events(&self, f: &PublicEventFilter) -> StoreResult<Vec<EventRecord>>;
    /// Accounts whose email contains `fragment`, ascending by id.
    async fn search_users(
        &self,
        fragment: &str,
        after: Option<UserId>,
        limit: i64,
    ) -> StoreResult<Vec<UserRecord>>;
    /// A page of one event's orders, ascending by id.
    async fn event_orders(&self, f: &EventOrderFilter) -> StoreResult<Vec<OrderWithBuyer>>;
}

/// `%fragment%` for `LIKE ... ESCAPE '\'`, lower-cased, with the pattern
/// characters of the fragment taken literally.
fn contains_pattern(fragment: &str) -> String {
    let mut p = String::with_capacity(fragment.len() + 2);
    p.push('%');
    for c in fragment.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[async_trait]
impl<D: Dialect> ConsoleStore for SqlStore<D> {
    async fn public_events(&self, f: &PublicEventFilter) -> StoreResult<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT id, organizer_id, name, description, venue, starts_at, ends_at, currency, status, \
             manifest_version, created_at, updated_at FROM events \
             WHERE status <> 'draft' AND ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR LOWER(name) LIKE $2 ESCAPE '\\') \
             AND ($3 IS NULL OR starts_at >= $3) AND ($4 IS NULL OR starts_at < $4) \
             AND ($5 IS NULL OR id > $5) ORDER BY id LIMIT $6",
        )
        .bind(f.status.map(|s| s.as_str().to_string()))
        .bind(f.name.as_deref().map(contains_pattern))
        .bind(f.starts_from)
        .bind(f.starts_before)
        .bind(f.after.map(|a| a.to_string()))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        self.attach_tiers(&mut events).await?;
        Ok(events)
    }

    async fn search_users(
        &self,
        fragment: &str,
        after: Option<UserId>,
        limit: i64,
    ) -> StoreResult<Vec<UserRecord>> {
        let rows = sqlx::query(
            "SELECT id, email, password_hash, display_name, role, country, birth_year, created_at, \
             updated_at FROM users WHERE LOWER(email) LIKE $1 ESCAPE '\\' \
             AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(contains_pattern(fragment))
        .bind(after.map(|a| a.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn event_orders(&self, f: &EventOrderFilter) -> StoreResult<Vec<OrderWithBuyer>> {
        let rows = sqlx::query(
            "SELECT o.id, o.event_id, o.buyer_id, o.channel, o.kind, o.status, o.payment_method, o.total_minor, \
             o.currency, o.quantity, o.expires_at, o.listing_id, o.request_hash, o.created_at, o.paid_at, o.updated_at, \
             COALESCE(u.email, '') AS buyer_email FROM orders o LEFT JOIN users u ON u.id = o.buyer_id \
             WHERE ($1 IS NULL OR o.event_id = $1) AND ($2 IS NULL OR o.status = $2) \
             AND ($3 IS NULL OR LOWER(u.email) LIKE $3 ESCAPE '\\') \
             AND ($4 IS NULL OR o.created_at >= $4) AND ($5 IS NULL OR o.created_at < $5) \
             AND ($6 IS NULL OR o.id > $6) ORDER BY o.id LIMIT $7",
        )
        .bind(f.event_id.map(|e| e.to_string()))
        .bind(f.status.map(|s| s.as_str().to_string()))
        .bind(f.buyer_email.as_deref().map(contains_pattern))
        .bind(f.created_from)
        .bind(f.created_before)
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
        let emails = rows
            .iter()
            .map(|r| col::<String>(r, "buyer_email"))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(orders
            .into_iter()
            .zip(emails)
            .map(|(order, email)| OrderWithBuyer {
                order,
                buyer_email: (!email.is_empty()).then_some(email),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn pattern_characters_in_a_fragment_are_literal() {
        assert_eq!(contains_pattern("A_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
