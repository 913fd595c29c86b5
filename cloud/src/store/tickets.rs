//! Tickets, their audit trail, and reads of the manifest log.
//!
//! Every ticket write locks its event row first, so ticket changes of one
//! event and their manifest versions are serialised. Tier capacity is taken
//! with a conditional `UPDATE ... WHERE allocated + n <= capacity` and one
//! inventory slot per ticket (`inventory`), which online orders hold too:
//! no oversell across channels whatever the concurrency.

use super::manifest::{ManifestSnapshot, entry_for};
use super::sql::{col, map_err, narrow, not_found, parsed, parsed_opt};
use super::writes::{Why, change_ticket};
use super::{
    AuditRecord, Dialect, NewTickets, SqlStore, StatusChange, StoreError, StoreResult,
    TicketFilter, TicketRecord, TicketStore,
};
use crate::model::{EventId, TicketId, TicketStatus, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

macro_rules! select_ticket {
    ($tail:literal) => {
        concat!(
            "SELECT t.id, t.event_id, t.tier_id, t.tier, t.zone_mask, t.owner_id, t.order_id, t.holder_name, \
             t.status, t.generation, t.credential, t.price_minor, t.currency, t.created_at, t.updated_at \
             FROM tickets t",
            $tail
        )
    };
}
pub(super) use select_ticket;

/// Tickets a cancelled event revokes (checked-in holders are already in).
pub(super) const SELECT_TICKETS_OF_EVENT_TO_CANCEL: &str = select_ticket!(
    " WHERE t.event_id = $1 AND t.status IN ('reserved', 'issued', 'transferred') ORDER BY t.id"
);

pub(super) fn ticket_from_row(row: &AnyRow) -> StoreResult<TicketRecord> {
    Ok(TicketRecord {
        id: parsed(row, "id")?,
        event_id: parsed(row, "event_id")?,
        tier_id: parsed(row, "tier_id")?,
        tier: narrow(row, "tier")?,
        zone_mask: narrow(row, "zone_mask")?,
        owner_id: parsed_opt(row, "owner_id")?,
        order_id: parsed_opt(row, "order_id")?,
        holder_name: col(row, "holder_name")?,
        status: parsed(row, "status")?,
        generation: narrow(row, "generation")?,
        credential: col(row, "credential")?,
        price_minor: col(row, "price_minor")?,
        currency: col(row, "currency")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Appends one line to a ticket's audit trail.
pub(super) async fn audit(
    tx: &mut Transaction<'static, Any>,
    ticket: TicketId,
    from: Option<TicketStatus>,
    to: TicketStatus,
    actor: Option<UserId>,
    reason: &str,
    now: UnixMillis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ticket_audit (id, ticket_id, from_status, to_status, actor_id, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(ticket.to_string())
    .bind(from.map(|s| s.as_str().to_string()))
    .bind(to.as_str())
    .bind(actor.map(|a| a.to_string()))
    .bind(reason.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

impl<D: Dialect> SqlStore<D> {
    async fn take_capacity(
        tx: &mut Transaction<'static, Any>,
        new: &NewTickets,
    ) -> StoreResult<()> {
        let n = new.tickets.len() as i64;
        let taken = sqlx::query(
            "UPDATE tiers SET allocated = allocated + $1 WHERE id = $2 AND event_id = $3 AND allocated + $1 <= capacity",
        )
        .bind(n)
        .bind(new.tier_id.to_string())
        .bind(new.event_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if taken == 1 {
            let tickets: Vec<_> = new.tickets.iter().map(|t| (t.id, t.order_id)).collect();
            return super::inventory::take_for_tickets::<D>(tx, new.tier_id, &tickets).await;
        }
        let left: Option<i64> = sqlx::query_scalar(
            "SELECT capacity - allocated FROM tiers WHERE id = $1 AND event_id = $2",
        )
        .bind(new.tier_id.to_string())
        .bind(new.event_id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
        match left {
            None => Err(StoreError::NotFound("tier")),
            Some(left) => Err(StoreError::SoldOut { asked: n, left }),
        }
    }

    pub(super) async fn insert_ticket(
        tx: &mut Transaction<'static, Any>,
        t: &TicketRecord,
    ) -> StoreResult<()> {
        bind_ticket(
            sqlx::query(
                "INSERT INTO tickets (id, event_id, tier_id, tier, zone_mask, owner_id, order_id, holder_name, status, \
                 generation, credential, price_minor, currency, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            ),
            t,
        )
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> TicketStore for SqlStore<D> {
    async fn create_tickets(&self, new: &NewTickets, now: UnixMillis) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let mut head = Self::lock_event(&mut tx, new.event_id, now).await?;
        if !head.status.on_sale() {
            return Err(StoreError::NotOnSale(format!(
                "tickets cannot be issued for a {} event",
                head.status.as_str()
            )));
        }
        if head.ends_at <= now {
            return Err(StoreError::NotOnSale(
                "tickets cannot be issued: the event is over".into(),
            ));
        }
        Self::take_capacity(&mut tx, new).await?;
        if let Some(o) = &new.order {
            let order = crate::store::OrderRecord {
                id: o.id,
                event_id: new.event_id,
                buyer_id: o.buyer_id,
                channel: o.channel.clone(),
                kind: crate::commerce::OrderKind::Primary,
                status: crate::commerce::OrderStatus::Paid,
                payment_method: o.payment_method.clone(),
                total_minor: o.total_minor,
                currency: o.currency.clone(),
                quantity: 0,
                expires_at: None,
                listing_id: None,
                request_hash: None,
                created_at: now,
                paid_at: Some(now),
                updated_at: now,
                items: Vec::new(),
                ticket_ids: Vec::new(),
            };
            super::writes::insert_order(&mut tx, &order, None)
                .await
                .map_err(map_err)?;
        }
        let mut changed = Vec::new();
        for t in &new.tickets {
            Self::insert_ticket(&mut tx, t).await?;
            audit(&mut tx, t.id, None, t.status, new.actor, &new.reason, now).await?;
            if t.status != TicketStatus::Reserved {
                changed.push(entry_for(t));
            }
            if t.status != TicketStatus::Reserved && t.owner_id.is_some() {
                super::chain::enqueue(&mut tx, t.id, super::chain::JobKind::Mint, now).await?;
            }
        }
        Self::append_manifest(&mut tx, new.event_id, &mut head, &changed, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn ticket(&self, id: TicketId) -> StoreResult<TicketRecord> {
        let row = sqlx::query(select_ticket!(" WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("ticket"))?;
        ticket_from_row(&row)
    }

    async fn list_tickets(&self, f: &TicketFilter) -> StoreResult<Vec<TicketRecord>> {
        let rows = sqlx::query(select_ticket!(
            " JOIN events e ON e.id = t.event_id \
             WHERE ($1 IS NULL OR t.event_id = $1) AND ($2 IS NULL OR e.organizer_id = $2) \
             AND ($3 IS NULL OR t.owner_id = $3) AND ($4 IS NULL OR t.status = $4) \
             AND ($5 IS NULL OR t.id > $5) ORDER BY t.id LIMIT $6"
        ))
        .bind(f.event_id.map(|e| e.to_string()))
        .bind(f.organizer_id.map(|o| o.to_string()))
        .bind(f.owner_id.map(|o| o.to_string()))
        .bind(f.status.map(|s| s.as_str().to_string()))
        .bind(f.after.map(|a| a.to_string()))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(ticket_from_row).collect()
    }

    async fn change_ticket_status(
        &self,
        c: &StatusChange,
        now: UnixMillis,
    ) -> StoreResult<TicketRecord> {
        let event = self.ticket(c.ticket_id).await?.event_id;
        let mut tx = self.begin_write().await?;
        let mut head = Self::lock_event(&mut tx, event, now).await?;
        let row = sqlx::query(select_ticket!(" WHERE t.id = $1"))
            .bind(c.ticket_id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(not_found("ticket"))?;
        let mut t = ticket_from_row(&row)?;
        let from = t.status;
        if !from.can_become(c.to) {
            return Err(StoreError::illegal("ticket", from.as_str(), c.to.as_str()));
        }
        if c.credential.is_some() {
            t.credential = c.credential.clone();
        }
        t.status = c.to;
        let why = Why {
            actor: c.actor,
            reason: &c.reason,
            now,
        };
        let generation = t.generation;
        if let Some(entry) = change_ticket(&mut tx, &mut t, from, generation, why).await? {
            Self::append_manifest(&mut tx, event, &mut head, &[entry], now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(t)
    }

    async fn ticket_history(&self, id: TicketId) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT ticket_id, from_status, to_status, actor_id, reason, created_at FROM ticket_audit \
             WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    ticket_id: parsed(r, "ticket_id")?,
                    from_status: parsed_opt(r, "from_status")?,
                    to_status: parsed(r, "to_status")?,
                    actor_id: parsed_opt(r, "actor_id")?,
                    reason: col(r, "reason")?,
                    at: col(r, "created_at")?,
                })
            })
            .collect()
    }

    async fn manifest_snapshot(&self, event: EventId) -> StoreResult<ManifestSnapshot> {
        let (version, digest, door) = self.manifest_head(event).await?;
        let entries = self.manifest_entries(event, 0, version).await?;
        Ok(ManifestSnapshot {
            event_id: event,
            version,
            digest,
            door,
            entries,
        })
    }

    async fn manifest_changes_since(
        &self,
        event: EventId,
        since: u64,
    ) -> StoreResult<(ManifestSnapshot, [u8; 32])> {
        let (version, digest, door) = self.manifest_head(event).await?;
        if since > version {
            return Err(StoreError::NotFound("manifest version"));
        }
        // A node that is current (the usual poll) needs nothing from the log.
        let (base, entries) = if since == version {
            (digest, Vec::new())
        } else {
            (
                self.digest_at(event, since).await?,
                self.manifest_entries(event, since, version).await?,
            )
        };
        Ok((
            ManifestSnapshot {
                event_id: event,
                version,
                digest,
                door,
                entries,
            },
            base,
        ))
    }
}

/// Binds a ticket row's 15 columns, in `INSERT INTO tickets`' order (the
/// one-order insert and the group commit's multi-row insert).
pub(super) fn bind_ticket(q: super::group::Q, t: &TicketRecord) -> super::group::Q {
    q.bind(t.id.to_string())
        .bind(t.event_id.to_string())
        .bind(t.tier_id.to_string())
        .bind(i64::from(t.tier))
        .bind(i64::from(t.zone_mask))
        .bind(t.owner_id.map(|o| o.to_string()))
        .bind(t.order_id.map(|o| o.to_string()))
        .bind(t.holder_name.clone())
        .bind(t.status.as_str())
        .bind(i64::from(t.generation))
        .bind(t.credential.clone())
        .bind(t.price_minor)
        .bind(t.currency.clone())
        .bind(t.created_at)
        .bind(t.updated_at)
}
