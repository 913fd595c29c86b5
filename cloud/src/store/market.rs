//! Transfers, resale listings and the sellers' ledger.
//!
//! A transfer re-issues the ticket to its new owner under a new credential
//! generation, in one transaction with a manifest version carrying that
//! generation, so gates refuse the old QR as `superseded`. A listing is held
//! by at most one pending order: buyers race on a guarded
//! `UPDATE ... WHERE status = 'active'`, and exactly one of them wins.

use super::commerce::{
    LedgerRecord, ListingFilter, ListingRecord, MarketStore, NewResaleOrder, OrderRecord,
    TransferChange, TransferRecord,
};
use super::inventory::{self, select_listing};
use super::sql::{col, map_err, narrow, not_found, parsed, parsed_opt};
use super::tickets::{select_ticket, ticket_from_row};
use super::writes::{Why, change_ticket, insert_order};
use super::{Dialect, SqlStore, StoreError, StoreResult, TicketRecord};
use crate::commerce::{OrderKind, OrderStatus, TransferKind};
use crate::model::{ListingId, OrderId, TicketId, TicketStatus, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use sync_protocol::manifest::ManifestEntry;

pub(super) fn listing_from_row(row: &AnyRow) -> StoreResult<ListingRecord> {
    Ok(ListingRecord {
        id: parsed(row, "id")?,
        ticket_id: parsed(row, "ticket_id")?,
        event_id: parsed(row, "event_id")?,
        seller_id: parsed(row, "seller_id")?,
        price_minor: col(row, "price_minor")?,
        currency: col(row, "currency")?,
        status: parsed(row, "status")?,
        order_id: parsed_opt(row, "order_id")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn transfer_from_row(row: &AnyRow) -> StoreResult<TransferRecord> {
    Ok(TransferRecord {
        ticket_id: parsed(row, "ticket_id")?,
        from_owner: parsed_opt(row, "from_owner")?,
        to_owner: parsed(row, "to_owner")?,
        generation: narrow(row, "generation")?,
        kind: parsed(row, "kind")?,
        order_id: parsed_opt(row, "order_id")?,
        at: col(row, "created_at")?,
    })
}

/// Writes a ticket that changed hands (`t` holds its new owner, name,
/// generation and credential) through [`change_ticket`], and its link in
/// the chain of owners; returns the manifest entry for the caller to append.
pub(super) async fn record_transfer(
    tx: &mut Transaction<'static, Any>,
    t: &mut TicketRecord,
    from_status: TicketStatus,
    from_owner: UserId,
    kind: TransferKind,
    order: Option<OrderId>,
    now: UnixMillis,
) -> StoreResult<ManifestEntry> {
    let to = t
        .owner_id
        .ok_or(StoreError::Other("transfer without recipient".into()))?;
    let actor = match kind {
        TransferKind::Gift => from_owner,
        TransferKind::Resale => to,
    };
    let reason = format!(
        "{} from {from_owner} to {to} (generation {})",
        kind.as_str(),
        t.generation
    );
    let why = Why {
        actor: Some(actor),
        reason: &reason,
        now,
    };
    let before = t.generation.wrapping_sub(1);
    let entry = change_ticket(tx, t, from_status, before, why)
        .await?
        .ok_or(StoreError::Other(
            "a transfer without a new generation".into(),
        ))?;
    sqlx::query(
        "INSERT INTO ticket_transfers (id, ticket_id, from_owner, to_owner, generation, kind, order_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(t.id.to_string())
    .bind(from_owner.to_string())
    .bind(to.to_string())
    .bind(i64::from(t.generation))
    .bind(kind.as_str())
    .bind(order.map(|o| o.to_string()))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    super::chain::enqueue(tx, t.id, super::chain::JobKind::Transfer, now).await?;
    Ok(entry)
}

async fn has_open_listing(
    tx: &mut Transaction<'static, Any>,
    ticket: TicketId,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM resale_listings WHERE ticket_id = $1 AND status IN ('active', 'held')",
    )
    .bind(ticket.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(n > 0)
}

impl<D: Dialect> SqlStore<D> {
    /// Locks the ticket's event, then reads the ticket and checks that
    /// `owner` holds it and it can change hands.
    async fn owned_ticket(
        &self,
        tx: &mut Transaction<'static, Any>,
        ticket: TicketId,
        owner: UserId,
        now: UnixMillis,
    ) -> StoreResult<(super::manifest::EventHead, TicketRecord)> {
        let t = self.ticket_row(ticket).await?;
        let head = Self::lock_event(tx, t.event_id, now).await?;
        let row = sqlx::query(select_ticket!(" WHERE t.id = $1"))
            .bind(ticket.to_string())
            .fetch_one(&mut **tx)
            .await
            .map_err(not_found("ticket"))?;
        let t = ticket_from_row(&row)?;
        if t.owner_id != Some(owner) {
            return Err(StoreError::InvalidState("the ticket is not yours".into()));
        }
        if !matches!(t.status, TicketStatus::Issued | TicketStatus::Transferred) {
            return Err(StoreError::InvalidState(format!(
                "a {} ticket cannot change hands",
                t.status.as_str()
            )));
        }
        if !head.status.on_sale() {
            return Err(StoreError::NotOnSale(format!(
                "tickets of a {} event cannot change hands",
                head.status.as_str()
            )));
        }
        Ok((head, t))
    }

    async fn ticket_row(&self, id: TicketId) -> StoreResult<TicketRecord> {
        let row = sqlx::query(select_ticket!(" WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("ticket"))?;
        ticket_from_row(&row)
    }
}

#[async_trait]
impl<D: Dialect> MarketStore for SqlStore<D> {
    async fn transfer_ticket(
        &self,
        c: &TransferChange,
        now: UnixMillis,
    ) -> StoreResult<TicketRecord> {
        let mut tx = self.begin_write().await?;
        let (mut head, mut t) = self.owned_ticket(&mut tx, c.ticket_id, c.from, now).await?;
        if t.generation != c.from_generation {
            return Err(StoreError::Gone(
                "the ticket changed meanwhile: reload it".into(),
            ));
        }
        if has_open_listing(&mut tx, t.id).await? {
            return Err(StoreError::InvalidState(
                "the ticket is listed for resale: cancel the listing first".into(),
            ));
        }
        let from_status = t.status;
        t.owner_id = Some(c.to);
        t.holder_name = c.holder_name.clone();
        t.generation = c.from_generation + 1;
        t.credential = Some(c.credential.clone());
        t.status = TicketStatus::Transferred;
        let entry = record_transfer(
            &mut tx,
            &mut t,
            from_status,
            c.from,
            TransferKind::Gift,
            None,
            now,
        )
        .await?;
        Self::append_manifest(&mut tx, t.event_id, &mut head, &[entry], now).await?;
        super::outbox::ticket_transferred(&mut tx, t.id, c.from, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(t)
    }

    async fn ticket_transfers(&self, ticket: TicketId) -> StoreResult<Vec<TransferRecord>> {
        let rows = sqlx::query(
            "SELECT ticket_id, from_owner, to_owner, generation, kind, order_id, created_at \
             FROM ticket_transfers WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(transfer_from_row).collect()
    }

    async fn user_transfers(&self, user: UserId, limit: i64) -> StoreResult<Vec<TransferRecord>> {
        let rows = sqlx::query(
            "SELECT ticket_id, from_owner, to_owner, generation, kind, order_id, created_at \
             FROM ticket_transfers WHERE from_owner = $1 OR to_owner = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(transfer_from_row).collect()
    }

    async fn create_listing(&self, l: &ListingRecord) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        self.owned_ticket(&mut tx, l.ticket_id, l.seller_id, l.created_at)
            .await?;
        if has_open_listing(&mut tx, l.ticket_id).await? {
            return Err(StoreError::Duplicate("the ticket is already listed".into()));
        }
        sqlx::query(
            "INSERT INTO resale_listings (id, ticket_id, event_id, seller_id, price_minor, currency, status, order_id, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', NULL, $7, $7)",
        )
        .bind(l.id.to_string())
        .bind(l.ticket_id.to_string())
        .bind(l.event_id.to_string())
        .bind(l.seller_id.to_string())
        .bind(l.price_minor)
        .bind(l.currency.clone())
        .bind(l.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn listing(&self, id: ListingId) -> StoreResult<ListingRecord> {
        let row = sqlx::query(select_listing!(" WHERE l.id = $1"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("listing"))?;
        listing_from_row(&row)
    }

    async fn list_listings(&self, f: &ListingFilter) -> StoreResult<Vec<ListingRecord>> {
        let rows = sqlx::query(select_listing!(
            " WHERE ($1 IS NULL OR l.event_id = $1) AND ($2 IS NULL OR l.seller_id = $2) \
             AND ($3 IS NULL OR l.status = $3) AND ($4 IS NULL OR l.id > $4) ORDER BY l.id LIMIT $5"
        ))
        .bind(f.event_id.map(|e| e.to_string()))
        .bind(f.seller_id.map(|s| s.to_string()))
        .bind(f.status.map(|s| s.as_str().to_string()))
        .bind(f.after.map(|a| a.to_string()))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(listing_from_row).collect()
    }

    async fn cancel_listing(&self, id: ListingId, now: UnixMillis) -> StoreResult<ListingRecord> {
        let done = sqlx::query(
            "UPDATE resale_listings SET status = 'cancelled', updated_at = $1 WHERE id = $2 AND status = 'active'",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        let listing = self.listing(id).await?;
        if done == 1 {
            return Ok(listing);
        }
        Err(StoreError::illegal(
            "listing",
            listing.status.as_str(),
            "cancelled",
        ))
    }

    async fn create_resale_order(
        &self,
        o: &NewResaleOrder,
        now: UnixMillis,
    ) -> StoreResult<OrderRecord> {
        let listing = self.listing(o.listing_id).await?;
        let mut tx = self.begin_write().await?;
        let won = sqlx::query(
            "UPDATE resale_listings SET status = 'held', order_id = $1, updated_at = $2 WHERE id = $3 AND status = 'active'",
        )
        .bind(o.id.to_string())
        .bind(now)
        .bind(o.listing_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if won != 1 {
            return Err(StoreError::Gone(
                "this listing is no longer for sale".into(),
            ));
        }
        let order = OrderRecord {
            id: o.id,
            event_id: listing.event_id,
            buyer_id: Some(o.buyer_id),
            channel: "resale".into(),
            kind: OrderKind::Resale,
            status: OrderStatus::Pending,
            payment_method: "none".into(),
            total_minor: listing.price_minor,
            currency: listing.currency,
            quantity: 1,
            expires_at: Some(o.expires_at),
            listing_id: Some(o.listing_id),
            request_hash: None,
            created_at: now,
            paid_at: None,
            updated_at: now,
            items: Vec::new(),
            ticket_ids: Vec::new(),
        };
        insert_order(&mut tx, &order, None).await.map_err(map_err)?;
        inventory::count_purchase(&mut tx, order.event_id, o.buyer_id, 1, o.purchase_limit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(order)
    }

    async fn ledger(&self, user: UserId) -> StoreResult<Vec<LedgerRecord>> {
        let rows = sqlx::query(
            "SELECT user_id, order_id, listing_id, kind, amount_minor, currency, created_at \
             FROM ledger_entries WHERE user_id = $1 ORDER BY id",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(LedgerRecord {
                    user_id: parsed(r, "user_id")?,
                    order_id: parsed(r, "order_id")?,
                    listing_id: parsed_opt(r, "listing_id")?,
                    kind: col(r, "kind")?,
                    amount_minor: col(r, "amount_minor")?,
                    currency: col(r, "currency")?,
                    at: col(r, "created_at")?,
                })
            })
            .collect()
    }
}
