//! Payments and provider webhook events (the payment side of settlement is
//! in `settle.rs`).

use super::commerce::{PaymentRecord, PaymentStore, WebhookEventRef};
use super::settle::record_event;
use super::sql::{col, map_err, not_found, parsed};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::commerce::PaymentProvider;
use crate::model::{OrderId, PaymentId, UnixMillis};
use async_trait::async_trait;
use sqlx::any::AnyRow;

const SELECT_PAYMENT: &str = "SELECT id, order_id, provider, provider_ref, client_secret, status, amount_minor, currency, \
     failure_reason, refund_ref, created_at, updated_at FROM payments";

fn payment_from_row(row: &AnyRow) -> StoreResult<PaymentRecord> {
    Ok(PaymentRecord {
        id: parsed(row, "id")?,
        order_id: parsed(row, "order_id")?,
        provider: parsed(row, "provider")?,
        provider_ref: col(row, "provider_ref")?,
        client_secret: col(row, "client_secret")?,
        status: parsed(row, "status")?,
        amount_minor: col(row, "amount_minor")?,
        currency: col(row, "currency")?,
        failure_reason: col(row, "failure_reason")?,
        refund_ref: col(row, "refund_ref")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

#[async_trait]
impl<D: Dialect> PaymentStore for SqlStore<D> {
    async fn insert_payment(&self, p: &PaymentRecord) -> StoreResult<PaymentRecord> {
        sqlx::query(
            "INSERT INTO payments (id, order_id, provider, provider_ref, client_secret, status, amount_minor, currency, \
             failure_reason, refund_ref, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (provider, ref_scope, provider_ref) DO NOTHING",
        )
        .bind(p.id.to_string())
        .bind(p.order_id.to_string())
        .bind(p.provider.as_str())
        .bind(p.provider_ref.clone())
        .bind(p.client_secret.clone())
        .bind(p.status.as_str())
        .bind(p.amount_minor)
        .bind(p.currency.clone())
        .bind(p.failure_reason.clone())
        .bind(p.refund_ref.clone())
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        match &p.provider_ref {
            Some(r) => self.payment_by_ref(p.provider, r).await,
            None => Ok(p.clone()),
        }
    }

    async fn payments_of(&self, order: OrderId) -> StoreResult<Vec<PaymentRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_PAYMENT} WHERE order_id = $1 ORDER BY id"
        )))
        .bind(order.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(payment_from_row).collect()
    }

    async fn payment_by_ref(
        &self,
        provider: PaymentProvider,
        provider_ref: &str,
    ) -> StoreResult<PaymentRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_PAYMENT} WHERE provider = $1 AND provider_ref = $2"
        )))
        .bind(provider.as_str())
        .bind(provider_ref.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("payment"))?;
        payment_from_row(&row)
    }

    async fn payment_failed(
        &self,
        provider_ref: &str,
        reason: &str,
        event: &WebhookEventRef,
        now: UnixMillis,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !record_event(&mut tx, event, "payment_failed", now).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE payments SET status = 'failed', failure_reason = $1, updated_at = $2 \
             WHERE provider = 'stripe' AND provider_ref = $3 AND status IN ('pending', 'failed')",
        )
        .bind(reason.to_string())
        .bind(now)
        .bind(provider_ref.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn record_webhook_event(
        &self,
        event: &WebhookEventRef,
        outcome: &str,
        now: UnixMillis,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let fresh = record_event(&mut tx, event, outcome, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(fresh)
    }

    async fn webhook_seen(&self, id: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn refunds_due(&self, limit: i64) -> StoreResult<Vec<PaymentRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_PAYMENT} WHERE status = 'refund_due' ORDER BY updated_at LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(payment_from_row).collect()
    }

    async fn lease_refund(
        &self,
        id: PaymentId,
        now: UnixMillis,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE payments SET refund_attempt_at = $1 WHERE id = $2 AND status = 'refund_due' \
             AND (refund_attempt_at IS NULL OR refund_attempt_at < $3)",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(now.saturating_sub(lease_ms))
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn payment_refunded(
        &self,
        id: PaymentId,
        refund_ref: &str,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE payments SET status = 'refunded', refund_ref = $1, updated_at = $2 WHERE id = $3 AND status = 'refund_due'",
        )
        .bind(refund_ref.to_string())
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::InvalidState(
                "the payment is not due a refund".into(),
            ))
        }
    }
}
