//! Events, tiers, signing keys and page views.

use super::sql::{col, map_err, narrow, not_found, parsed};
use super::tickets::ticket_from_row;
use super::writes::{Why, change_ticket};
use super::{
    Dialect, EventChange, EventFilter, EventKeyRecord, EventRecord, EventStore, SealedKey,
    SqlStore, StoreError, StoreResult, TierRecord,
};
use crate::model::{EventId, EventStatus, TicketStatus, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use sync_protocol::manifest::genesis_digest;

macro_rules! select_event {
    ($tail:literal) => {
        concat!(
            "SELECT id, organizer_id, name, description, venue, starts_at, ends_at, currency, status, \
             manifest_version, created_at, updated_at FROM events",
            $tail
        )
    };
}

pub(super) fn event_from_row(row: &AnyRow) -> StoreResult<EventRecord> {
    Ok(EventRecord {
        id: parsed(row, "id")?,
        organizer_id: parsed(row, "organizer_id")?,
        name: col(row, "name")?,
        description: col(row, "description")?,
        venue: col(row, "venue")?,
        starts_at: col(row, "starts_at")?,
        ends_at: col(row, "ends_at")?,
        currency: col(row, "currency")?,
        status: parsed(row, "status")?,
        manifest_version: col(row, "manifest_version")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        tiers: Vec::new(),
        zones: Vec::new(),
    })
}

fn tier_from_row(row: &AnyRow) -> StoreResult<TierRecord> {
    Ok(TierRecord {
        id: parsed(row, "id")?,
        event_id: parsed(row, "event_id")?,
        tier: narrow(row, "tier")?,
        name: col(row, "name")?,
        price_minor: col(row, "price_minor")?,
        currency: col(row, "currency")?,
        capacity: col(row, "capacity")?,
        allocated: col(row, "allocated")?,
        zone_mask: narrow(row, "zone_mask")?,
        zone: col(row, "zone")?,
    })
}

fn sealed_from_row(row: &AnyRow) -> StoreResult<SealedKey> {
    Ok(SealedKey {
        key_id: col(row, "key_id")?,
        public_key: col(row, "public_key")?,
        sealed_seed: col(row, "sealed_seed")?,
    })
}

impl<D: Dialect> SqlStore<D> {
    /// Fills in the tiers of `events` (held places counted as allocated)
    /// and their named zones with one query each, not one per event of a
    /// listed page.
    pub(super) async fn attach_tiers(&self, events: &mut [EventRecord]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let marks: Vec<String> = (1..=events.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, event_id, tier, name, price_minor, currency, capacity, zone_mask, zone, \
             allocated + (SELECT CAST(COALESCE(SUM(h.held), 0) AS BIGINT) FROM tier_holds h \
             WHERE h.tier_id = tiers.id) \
             + (SELECT COUNT(*) FROM manifest_pending p WHERE p.tier_id = tiers.id) AS allocated \
             FROM tiers WHERE event_id IN ({}) ORDER BY tier",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in events.iter() {
            q = q.bind(e.id.to_string());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(map_err)?;
        let mut by_event: HashMap<EventId, Vec<TierRecord>> = HashMap::new();
        for row in &rows {
            let tier = tier_from_row(row)?;
            by_event.entry(tier.event_id).or_default().push(tier);
        }
        for e in events.iter_mut() {
            e.tiers = by_event.remove(&e.id).unwrap_or_default();
        }
        self.attach_zones(events).await
    }

    async fn insert_tier(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        t: &TierRecord,
        now: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tiers (id, event_id, tier, name, price_minor, currency, capacity, allocated, zone_mask, zone, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10)",
        )
        .bind(t.id.to_string())
        .bind(t.event_id.to_string())
        .bind(i64::from(t.tier))
        .bind(t.name.clone())
        .bind(t.price_minor)
        .bind(t.currency.clone())
        .bind(t.capacity)
        .bind(i64::from(t.zone_mask))
        .bind(t.zone.clone())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Duplicate(_) => StoreError::Duplicate(format!(
                "tier number {} or name {:?} is already used in this event",
                t.tier, t.name
            )),
            other => other,
        })?;
        super::inventory::create_slots::<D>(tx, t.id, t.capacity).await
    }

    /// Cancels every live ticket of a cancelled event; returns the manifest
    /// entries to publish.
    async fn cancel_all_tickets(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        event: EventId,
        actor: UserId,
        now: UnixMillis,
    ) -> StoreResult<Vec<sync_protocol::manifest::ManifestEntry>> {
        let rows = sqlx::query(super::tickets::SELECT_TICKETS_OF_EVENT_TO_CANCEL)
            .bind(event.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        let mut changed = Vec::new();
        let why = Why {
            actor: Some(actor),
            reason: "event cancelled",
            now,
        };
        for row in &rows {
            let mut t = ticket_from_row(row)?;
            let (from, generation) = (t.status, t.generation);
            t.status = TicketStatus::Cancelled;
            changed.extend(change_ticket(tx, &mut t, from, generation, why).await?);
        }
        Self::release_cancelled_event(tx, event, now).await?;
        // Their tokens are invalidated on chain, like refunded ones.
        super::chain::enqueue_burns_of_cancelled(tx, event, now).await?;
        Ok(changed)
    }
}

#[async_trait]
impl<D: Dialect> EventStore for SqlStore<D> {
    async fn ensure_organizer_key(
        &self,
        organizer: UserId,
        candidate: &SealedKey,
        now: UnixMillis,
    ) -> StoreResult<SealedKey> {
        sqlx::query(
            "INSERT INTO organizer_keys (organizer_id, key_id, public_key, sealed_seed, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organizer_id) DO NOTHING",
        )
        .bind(organizer.to_string())
        .bind(candidate.key_id.clone())
        .bind(candidate.public_key.clone())
        .bind(candidate.sealed_seed.clone())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        self.organizer_key(organizer).await
    }

    async fn organizer_key(&self, organizer: UserId) -> StoreResult<SealedKey> {
        let row = sqlx::query(
            "SELECT key_id, public_key, sealed_seed FROM organizer_keys WHERE organizer_id = $1",
        )
        .bind(organizer.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("organizer key"))?;
        sealed_from_row(&row)
    }

    async fn create_event(&self, e: &EventRecord, key: &EventKeyRecord) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO events (id, organizer_id, name, description, venue, starts_at, ends_at, currency, status, \
             view_count, manifest_version, manifest_digest, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, $11, $12)",
        )
        .bind(e.id.to_string())
        .bind(e.organizer_id.to_string())
        .bind(e.name.clone())
        .bind(e.description.clone())
        .bind(e.venue.clone())
        .bind(e.starts_at)
        .bind(e.ends_at)
        .bind(e.currency.clone())
        .bind(e.status.as_str())
        .bind(genesis_digest(&e.id).to_vec())
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        Self::insert_zones(&mut tx, e.id, &e.zones, e.created_at).await?;
        for t in &e.tiers {
            Self::insert_tier(&mut tx, t, e.created_at).await?;
        }
        sqlx::query(
            "INSERT INTO event_keys (key_id, event_id, public_key, sealed_seed, certificate, not_before, not_after, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.key.key_id.clone())
        .bind(e.id.to_string())
        .bind(key.key.public_key.clone())
        .bind(key.key.sealed_seed.clone())
        .bind(key.certificate.clone())
        .bind(key.not_before)
        .bind(key.not_after)
        .bind(e.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn event(&self, id: EventId) -> StoreResult<EventRecord> {
        let row = sqlx::query(select_event!(" WHERE id = $1"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("event"))?;
        let mut event = event_from_row(&row)?;
        self.attach_tiers(std::slice::from_mut(&mut event)).await?;
        Ok(event)
    }

    async fn list_events(&self, f: &EventFilter) -> StoreResult<Vec<EventRecord>> {
        let rows = sqlx::query(select_event!(
            " WHERE ($1 IS NULL OR organizer_id = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 = 1 OR status <> 'draft') AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5"
        ))
        .bind(f.organizer_id.map(|u| u.to_string()))
        .bind(f.status.map(|s| s.as_str().to_string()))
        .bind(i64::from(f.include_drafts))
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

    async fn update_event(
        &self,
        id: EventId,
        c: &EventChange,
        now: UnixMillis,
    ) -> StoreResult<EventRecord> {
        let mut tx = self.begin_write().await?;
        let head = Self::lock_event_status(&mut tx, id, now).await?;
        if !head.status.editable() {
            return Err(StoreError::InvalidState(format!(
                "a {} event cannot be edited",
                head.status.as_str()
            )));
        }
        sqlx::query(
            "UPDATE events SET name = $1, description = $2, venue = $3, starts_at = $4, ends_at = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(c.name.clone())
        .bind(c.description.clone())
        .bind(c.venue.clone())
        .bind(c.starts_at)
        .bind(c.ends_at)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        self.event(id).await
    }

    async fn set_event_status(
        &self,
        id: EventId,
        to: EventStatus,
        actor: UserId,
        now: UnixMillis,
    ) -> StoreResult<EventRecord> {
        let mut tx = self.begin_write().await?;
        let mut head = Self::lock_event_status(&mut tx, id, now).await?;
        if !head.status.can_become(to) {
            return Err(StoreError::illegal(
                "event",
                head.status.as_str(),
                to.as_str(),
            ));
        }
        sqlx::query("UPDATE events SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        super::outbox::event_status_changed(&mut tx, id, head.status, to, now).await?;
        // Cancelling revokes every ticket in the same version that tells the
        // gates the door state.
        let revoked = if to == EventStatus::Cancelled {
            Self::cancel_all_tickets(&mut tx, id, actor, now).await?
        } else {
            Vec::new()
        };
        Self::append_version(&mut tx, id, &mut head, &revoked, Some(to.door()), now).await?;
        tx.commit().await.map_err(map_err)?;
        self.event(id).await
    }

    async fn add_tier(&self, tier: &TierRecord, now: UnixMillis) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let head = Self::lock_event(&mut tx, tier.event_id, now).await?;
        if !head.status.editable() {
            return Err(StoreError::InvalidState(format!(
                "tiers cannot be added to a {} event",
                head.status.as_str()
            )));
        }
        Self::insert_tier(&mut tx, tier, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn event_key(&self, id: EventId) -> StoreResult<EventKeyRecord> {
        let row = sqlx::query(
            "SELECT key_id, public_key, sealed_seed, certificate, not_before, not_after FROM event_keys \
             WHERE event_id = $1 AND retired_at IS NULL ORDER BY created_at DESC, key_id LIMIT 1",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("event key"))?;
        Ok(EventKeyRecord {
            key: sealed_from_row(&row)?,
            certificate: col(&row, "certificate")?,
            not_before: col(&row, "not_before")?,
            not_after: col(&row, "not_after")?,
        })
    }

    async fn set_key_certificate(
        &self,
        event: EventId,
        key_id: &str,
        key: &EventKeyRecord,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE event_keys SET certificate = $1, not_before = $2, not_after = $3 WHERE event_id = $4 AND key_id = $5",
        )
        .bind(key.certificate.clone())
        .bind(key.not_before)
        .bind(key.not_after)
        .bind(event.to_string())
        .bind(key_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("event key"));
        }
        Ok(())
    }

    async fn add_views(&self, views: &[(EventId, i64)]) -> StoreResult<()> {
        if views.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (event, n) in views {
            sqlx::query("UPDATE events SET view_count = view_count + $1 WHERE id = $2")
                .bind(*n)
                .bind(event.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
}
