//! Aggregates for stats, analytics and reports, and stored reports.
//! Sums are cast to BIGINT because PostgreSQL widens `SUM(bigint)` to numeric.

use super::sql::{col, map_err, not_found, parsed};
use super::{
    DemographicLine, Dialect, Funnel, ReportRecord, ReportStore, RevenueLine, SalesBucket,
    SqlStore, StoreError, StoreResult, TierStats,
};
use crate::model::{EventId, ReportId};
use async_trait::async_trait;
use sqlx::any::AnyRow;

fn report_from_row(row: &AnyRow) -> StoreResult<ReportRecord> {
    Ok(ReportRecord {
        id: parsed(row, "id")?,
        event_id: parsed(row, "event_id")?,
        kind: col(row, "kind")?,
        created_by: parsed(row, "created_by")?,
        created_at: col(row, "created_at")?,
        data: col(row, "data")?,
    })
}

/// The one definition of "checked in", shared by every figure that says it
/// (`/events/{id}/stats`, `/events/{id}/analytics`,
/// `/checkin/event/{id}/stats`): a ticket of the event (`$1`) with at least
/// one admitted entry scan in the check-in log (whichever gate or device
/// admitted it), or marked checked in by hand (`PATCH /tickets/{id}/status`).
/// Expands to the ids of those tickets.
macro_rules! checked_in_tickets {
    () => {
        "SELECT ci.id FROM tickets ci WHERE ci.event_id = $1 AND (ci.status = 'checked_in' OR EXISTS \
         (SELECT 1 FROM checkins c WHERE c.event_id = ci.event_id AND c.ticket_id = ci.id \
         AND c.outcome = 0 AND c.direction = 'entry'))"
    };
}

#[async_trait]
impl<D: Dialect> ReportStore for SqlStore<D> {
    async fn checked_in(&self, event: EventId) -> StoreResult<i64> {
        sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM (",
            checked_in_tickets!(),
            ") t"
        ))
        .bind(event.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn tier_stats(&self, event: EventId) -> StoreResult<Vec<TierStats>> {
        let rows = sqlx::query(concat!(
            "SELECT ti.tier, ti.name, ti.capacity, \
             CAST(COALESCE(SUM(CASE WHEN t.status IN ('issued', 'transferred', 'checked_in') THEN 1 ELSE 0 END), 0) AS BIGINT) AS sold, \
             CAST(COALESCE(SUM(CASE WHEN t.status = 'reserved' THEN 1 ELSE 0 END), 0) AS BIGINT) AS reserved, \
             CAST(COALESCE(SUM(CASE WHEN t.id IN (", checked_in_tickets!(), ") THEN 1 ELSE 0 END), 0) AS BIGINT) AS checked_in, \
             CAST(COALESCE(SUM(CASE WHEN t.status IN ('issued', 'transferred', 'checked_in') THEN t.price_minor ELSE 0 END), 0) AS BIGINT) AS revenue \
             FROM tiers ti LEFT JOIN tickets t ON t.tier_id = ti.id \
             WHERE ti.event_id = $1 GROUP BY ti.id, ti.tier, ti.name, ti.capacity ORDER BY ti.tier",
        ))
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let tier: i64 = col(r, "tier")?;
                Ok(TierStats {
                    tier: u16::try_from(tier)
                        .map_err(|_| StoreError::Other("tier out of range".into()))?,
                    name: col(r, "name")?,
                    capacity: col(r, "capacity")?,
                    sold: col(r, "sold")?,
                    reserved: col(r, "reserved")?,
                    checked_in: col(r, "checked_in")?,
                    revenue_minor: col(r, "revenue")?,
                })
            })
            .collect()
    }

    async fn funnel(&self, event: EventId) -> StoreResult<Funnel> {
        let row = sqlx::query(concat!(
            "SELECT e.view_count AS views, \
             (SELECT COUNT(*) FROM orders o WHERE o.event_id = e.id) AS orders, \
             (SELECT COUNT(*) FROM orders o WHERE o.event_id = e.id AND o.paid_at IS NOT NULL) AS paid, \
             (SELECT COUNT(*) FROM (", checked_in_tickets!(), ") ci) AS checked_in \
             FROM events e WHERE e.id = $1",
        ))
        .bind(event.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("event"))?;
        Ok(Funnel {
            views: col(&row, "views")?,
            orders: col(&row, "orders")?,
            paid: col(&row, "paid")?,
            checked_in: col(&row, "checked_in")?,
        })
    }

    async fn sales_over_time(
        &self,
        event: EventId,
        bucket_ms: i64,
    ) -> StoreResult<Vec<SalesBucket>> {
        // Integer division buckets the same way on both backends (times are
        // BIGINT ms); one pass over the event's paid primary orders. An
        // order's tickets are its lines' quantities, or for a box-office
        // sale (no lines) the tickets it issued.
        let rows = sqlx::query(
            "SELECT b.start AS start, COUNT(*) AS orders, \
             CAST(COALESCE(SUM(b.tickets), 0) AS BIGINT) AS tickets, \
             CAST(COALESCE(SUM(b.total_minor), 0) AS BIGINT) AS revenue \
             FROM (SELECT (o.paid_at / $2) * $2 AS start, o.total_minor, \
             COALESCE((SELECT SUM(i.quantity) FROM order_items i WHERE i.order_id = o.id), \
             (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id)) AS tickets \
             FROM orders o WHERE o.event_id = $1 AND o.kind = 'primary' AND o.paid_at IS NOT NULL \
             AND o.status IN ('paid', 'fulfilled')) b \
             GROUP BY b.start ORDER BY b.start",
        )
        .bind(event.to_string())
        .bind(bucket_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(SalesBucket {
                    start: col(r, "start")?,
                    orders: col(r, "orders")?,
                    tickets: col(r, "tickets")?,
                    revenue_minor: col(r, "revenue")?,
                })
            })
            .collect()
    }

    async fn revenue(&self, event: EventId) -> StoreResult<Vec<RevenueLine>> {
        let rows = sqlx::query(
            "SELECT channel, status, COUNT(*) AS orders, CAST(COALESCE(SUM(total_minor), 0) AS BIGINT) AS total \
             FROM orders WHERE event_id = $1 GROUP BY channel, status ORDER BY channel, status",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(RevenueLine {
                    channel: col(r, "channel")?,
                    status: col(r, "status")?,
                    orders: col(r, "orders")?,
                    total_minor: col(r, "total")?,
                })
            })
            .collect()
    }

    async fn demographics(&self, event: EventId) -> StoreResult<Vec<DemographicLine>> {
        let rows = sqlx::query(
            "SELECT COALESCE(u.country, 'unknown') AS country, \
             CASE WHEN u.birth_year IS NULL THEN 'unknown' ELSE CAST((u.birth_year / 10) * 10 AS TEXT) || 's' END AS decade, \
             COUNT(*) AS tickets \
             FROM tickets t LEFT JOIN users u ON u.id = t.owner_id \
             WHERE t.event_id = $1 AND t.status IN ('issued', 'transferred', 'checked_in') \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(DemographicLine {
                    country: col(r, "country")?,
                    birth_decade: col(r, "decade")?,
                    tickets: col(r, "tickets")?,
                })
            })
            .collect()
    }

    async fn save_report(&self, r: &ReportRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO reports (id, event_id, kind, created_by, created_at, data) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.id.to_string())
        .bind(r.event_id.to_string())
        .bind(r.kind.clone())
        .bind(r.created_by.to_string())
        .bind(r.created_at)
        .bind(r.data.clone())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn report(&self, id: ReportId) -> StoreResult<ReportRecord> {
        let row = sqlx::query(
            "SELECT id, event_id, kind, created_by, created_at, data FROM reports WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("report"))?;
        report_from_row(&row)
    }

    async fn list_reports(
        &self,
        event: EventId,
        after: Option<ReportId>,
        limit: i64,
    ) -> StoreResult<Vec<ReportRecord>> {
        let rows = sqlx::query(
            "SELECT id, event_id, kind, created_by, created_at, data FROM reports \
             WHERE event_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(event.to_string())
        .bind(after.map(|a| a.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(report_from_row).collect()
    }
}
