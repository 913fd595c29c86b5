//! The manifest sequencer: how issued tickets reach the manifest without
//! one event-row lock per order.
//!
//! A transaction that issues tickets holds the event row only in a shared
//! mode (its status cannot change under it) and writes each new ticket's
//! entry to `manifest_pending` ([`queue`]). After it commits, its caller
//! runs [`SqlStore::publish`]: under the event row lock, every committed
//! pending entry of the event (its own and those of every other order that
//! committed meanwhile) becomes one new version, and the tickets are
//! counted into `tiers.allocated`. So versions stay ordered, gap-free and
//! signed exactly as before, but many orders share one version and one
//! lock hold, and issuing orders run in parallel.
//!
//! Within a process, publishers of one event queue on an in-memory mutex
//! and one drains what all of them committed; across replicas the event row
//! lock does the same. A pending entry is never lost: a crash between an
//! order's commit and its publish leaves the entry in the table, and the
//! next writer that locks the event (any change, or the sweeper's
//! [`SqlStore::publish_all_pending`]) publishes it first.

use super::manifest::{EventHead, entry_from_row};
use super::sql::{map_err, parsed};
use super::{Dialect, SqlStore, StoreResult, TicketRecord};
use crate::model::{EventId, TicketId, TierId, UnixMillis};
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use sync_protocol::manifest::{EntryStatus, ManifestEntry};

type Tx = Transaction<'static, Any>;

/// One in-process queue per event that publishers wait in.
#[derive(Debug, Default)]
pub(super) struct Publishers(Mutex<HashMap<EventId, Arc<tokio::sync::Mutex<()>>>>);

impl Publishers {
    fn of(&self, event: EventId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forget events nobody is publishing (the map stays small).
        if map.len() > 1024 {
            map.retain(|_, m| Arc::strong_count(m) > 1);
        }
        map.entry(event).or_default().clone()
    }
}

/// Writes the entry of a newly issued ticket to be published.
pub(super) async fn queue(tx: &mut Tx, t: &TicketRecord, e: &ManifestEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO manifest_pending (event_id, ticket_id, tier_id, generation, tier, zones, revoked, reentry, display_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(t.event_id.to_string())
    .bind(e.ticket_id.to_string())
    .bind(t.tier_id.to_string())
    .bind(i64::from(e.generation))
    .bind(i64::from(e.tier))
    .bind(i64::from(e.zones))
    .bind(i64::from(e.status == EntryStatus::Revoked))
    .bind(i64::from(e.reentry))
    .bind(e.display_name.clone())
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(map_err)
}

impl<D: Dialect> SqlStore<D> {
    /// Under the event lock (held by the caller): turns every committed
    /// pending entry of the event into one version and counts its tickets
    /// into their tiers. No-op when nothing is pending.
    pub(super) async fn publish_pending(
        tx: &mut Tx,
        event: EventId,
        head: &mut EventHead,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let rows = sqlx::query(
            "DELETE FROM manifest_pending WHERE event_id = $1 \
             RETURNING ticket_id, tier_id, generation, tier, zones, revoked, reentry, display_name",
        )
        .bind(event.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut per_tier: BTreeMap<TierId, i64> = BTreeMap::new();
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            *per_tier.entry(parsed(row, "tier_id")?).or_default() += 1;
            entries.push(entry_from_row(row)?);
        }
        Self::append_version(tx, event, head, &entries, None, now).await?;
        for (tier, n) in per_tier {
            sqlx::query("UPDATE tiers SET allocated = allocated + $1 WHERE id = $2")
                .bind(n)
                .bind(tier.to_string())
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// After the commit that queued `probe` (one of the tickets it issued):
    /// publishes it, with whatever else is pending for the event, unless a
    /// concurrent publisher already did. When this returns `Ok`, `probe` is
    /// in a committed version.
    pub(super) async fn publish(
        &self,
        event: EventId,
        probe: TicketId,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let queue = self.publishers.of(event);
        let _turn = queue.lock().await;
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM manifest_pending WHERE event_id = $1 AND ticket_id = $2",
        )
        .bind(event.to_string())
        .bind(probe.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if pending.is_none() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        Self::lock_event(&mut tx, event, now).await?;
        tx.commit().await.map_err(map_err)
    }

    /// Publishes every event's pending entries (the sweeper's backstop for
    /// an order whose process died between its commit and its publish);
    /// returns how many events had some.
    pub(super) async fn publish_all_pending(&self, now: UnixMillis) -> StoreResult<usize> {
        let events: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT event_id FROM manifest_pending")
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        for e in &events {
            let event: EventId = e
                .parse()
                .map_err(|e| super::StoreError::Other(format!("event id: {e}")))?;
            let queue = self.publishers.of(event);
            let _turn = queue.lock().await;
            let mut tx = self.begin_write().await?;
            Self::lock_event(&mut tx, event, now).await?;
            tx.commit().await.map_err(map_err)?;
        }
        Ok(events.len())
    }
}
