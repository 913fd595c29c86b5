//! SQL of the [`NotificationStore`]. Claiming is the one statement that
//! differs: PostgreSQL picks due rows `FOR UPDATE SKIP LOCKED` so replicas
//! claiming at once take different rows without waiting; SQLite has one
//! writer at a time, so the same conditional `UPDATE ... RETURNING` is
//! already exclusive.

use super::notifications::*;
use super::outbox::enqueue;
use super::sql::{col, map_err, not_found, parsed, parsed_opt};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use uuid::Uuid;

const COLS: &str = "id, channel, kind, status, event_id, endpoint_id, user_id, recipient, payload, created_by, \
     attempts, max_attempts, next_attempt_at, last_error, last_status_code, created_at, updated_at, delivered_at";

const DUE: &str =
    "(status = 'queued' AND next_attempt_at <= $4) OR (status = 'sending' AND lease_until < $4)";

fn claim_sql<D: Dialect>() -> String {
    let lock = if D::NAME == "postgres" {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    format!(
        "UPDATE notifications SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, \
         max_attempts = $3, updated_at = $4 WHERE id IN (SELECT id FROM notifications WHERE {DUE} \
         ORDER BY next_attempt_at LIMIT $5{lock}) RETURNING {COLS}"
    )
}

fn u32_of(row: &AnyRow, name: &str) -> StoreResult<u32> {
    let v: i64 = col(row, name)?;
    Ok(v.clamp(0, i64::from(u32::MAX)) as u32)
}

fn record(row: &AnyRow) -> StoreResult<NotificationRecord> {
    let code: Option<i64> = col(row, "last_status_code")?;
    Ok(NotificationRecord {
        id: parsed(row, "id")?,
        channel: parsed(row, "channel")?,
        kind: col(row, "kind")?,
        status: parsed(row, "status")?,
        event_id: parsed_opt(row, "event_id")?,
        endpoint_id: parsed_opt(row, "endpoint_id")?,
        user_id: parsed_opt(row, "user_id")?,
        recipient: col(row, "recipient")?,
        payload: col(row, "payload")?,
        created_by: parsed_opt(row, "created_by")?,
        attempts: u32_of(row, "attempts")?,
        max_attempts: u32_of(row, "max_attempts")?,
        next_attempt_at: col(row, "next_attempt_at")?,
        last_error: col(row, "last_error")?,
        last_status_code: code.and_then(|c| u16::try_from(c).ok()),
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        delivered_at: col(row, "delivered_at")?,
    })
}

pub(super) fn secrets_to_json(s: &[SealedSecret]) -> String {
    serde_json::Value::Array(
        s.iter()
            .map(|s| serde_json::json!({"sealed": hex::encode(&s.sealed), "expires_at": s.expires_at}))
            .collect(),
    )
    .to_string()
}

pub(super) fn secrets_from_json(text: &str) -> StoreResult<Vec<SealedSecret>> {
    let bad = |e: String| StoreError::Other(format!("webhook secrets: {e}"));
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    v.as_array()
        .ok_or_else(|| bad("not a list".into()))?
        .iter()
        .map(|s| {
            Ok(SealedSecret {
                sealed: hex::decode(s["sealed"].as_str().unwrap_or_default())
                    .map_err(|e| bad(e.to_string()))?,
                expires_at: s["expires_at"].as_i64(),
            })
        })
        .collect()
}

const ENDPOINT_COLS: &str = "id, owner_id, event_id, url, event_types, secrets, enabled, disabled_reason, created_at, updated_at";

fn endpoint(row: &AnyRow) -> StoreResult<WebhookEndpointRecord> {
    let types: String = col(row, "event_types")?;
    let secrets: String = col(row, "secrets")?;
    Ok(WebhookEndpointRecord {
        id: parsed(row, "id")?,
        owner_id: parsed(row, "owner_id")?,
        event_id: parsed_opt(row, "event_id")?,
        url: col(row, "url")?,
        event_types: types
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        secrets: secrets_from_json(&secrets)?,
        enabled: col::<i64>(row, "enabled")? != 0,
        disabled_reason: col(row, "disabled_reason")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn prefs(row: &AnyRow) -> StoreResult<PrefsRecord> {
    Ok(PrefsRecord {
        reminders: col::<Option<i64>>(row, "reminders")?.unwrap_or(1) != 0,
        phone: col(row, "phone")?,
        sms: col::<Option<i64>>(row, "sms")?.unwrap_or(0) != 0,
    })
}

impl<D: Dialect> SqlStore<D> {
    /// Queues the reminder of every holder of `event` who has none yet (a
    /// ticket bought inside the lead time still gets one on the next sweep).
    async fn remind(&self, event: EventId, now: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT DISTINCT u.id, u.email, u.display_name FROM tickets t JOIN users u ON u.id = t.owner_id \
             LEFT JOIN notification_prefs p ON p.user_id = u.id \
             WHERE t.event_id = $1 AND t.status IN ('issued', 'transferred') AND COALESCE(p.reminders, 1) = 1 \
             AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.dedupe_key = 'event_reminder:' || t.event_id || ':' || u.id)",
        )
        .bind(event.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (_, event_json) = super::outbox::event_info(&mut tx, event).await?;
        let mut n = 0;
        for row in &rows {
            let user: UserId = parsed(row, "id")?;
            let name: String = col(row, "display_name")?;
            let msg = NewNotification {
                channel: Channel::Email,
                kind: "event_reminder".into(),
                event_id: Some(event),
                endpoint_id: None,
                user_id: Some(user),
                recipient: col(row, "email")?,
                payload: serde_json::json!({"name": name, "event": event_json}).to_string(),
                dedupe_key: Some(format!("event_reminder:{event}:{user}")),
                created_by: None,
            };
            if enqueue(&mut tx, &msg, now).await?.is_some() {
                n += 1;
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }
}

#[async_trait]
impl<D: Dialect> NotificationStore for SqlStore<D> {
    async fn enqueue_notifications(
        &self,
        new: &[NewNotification],
        now: UnixMillis,
    ) -> StoreResult<Vec<Uuid>> {
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(new.len());
        for n in new {
            ids.extend(enqueue(&mut tx, n, now).await?);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(ids)
    }

    async fn claim_notifications(
        &self,
        worker: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
        max_attempts: u32,
        limit: u32,
    ) -> StoreResult<Vec<NotificationRecord>> {
        let due: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM notifications WHERE {} LIMIT 1",
            DUE.replace("$4", "$1")
        )))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(claim_sql::<D>()))
            .bind(worker.to_string())
            .bind(lease_until)
            .bind(i64::from(max_attempts))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(record).collect()
    }

    async fn finish_notification(&self, r: &AttemptResult, now: UnixMillis) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let delivered = (r.status == DeliveryStatus::Delivered).then_some(now);
        // An undeliverable message did not use an attempt.
        let refund = i64::from(r.status == DeliveryStatus::Undeliverable);
        let n = sqlx::query(
            "UPDATE notifications SET status = $1, next_attempt_at = $2, last_error = $3, last_status_code = $4, \
             delivered_at = COALESCE($5, delivered_at), attempts = attempts - $6, lease_owner = NULL, lease_until = NULL, \
             updated_at = $7 WHERE id = $8 AND lease_owner = $9 AND status = 'sending'",
        )
        .bind(r.status.as_str())
        .bind(r.next_attempt_at)
        .bind(r.error.clone())
        .bind(r.status_code.map(i64::from))
        .bind(delivered)
        .bind(refund)
        .bind(now)
        .bind(r.id.to_string())
        .bind(r.worker.clone())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if r.status != DeliveryStatus::Undeliverable {
            let outcome = match r.status {
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Queued => "retry",
                _ => "failed",
            };
            sqlx::query(
                "INSERT INTO notification_attempts (notification_id, attempt, worker, started_at, duration_ms, outcome, status_code, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(r.id.to_string())
            .bind(i64::from(r.attempt))
            .bind(r.worker.clone())
            .bind(r.started_at)
            .bind(r.duration_ms)
            .bind(outcome)
            .bind(r.status_code.map(i64::from))
            .bind(r.error.clone())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn notification(&self, id: Uuid) -> StoreResult<NotificationRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM notifications WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("notification"))?;
        record(&row)
    }

    async fn list_notifications(
        &self,
        f: &NotificationFilter,
    ) -> StoreResult<Vec<NotificationRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM notifications WHERE ($1 IS NULL OR event_id = $1) AND ($2 IS NULL OR endpoint_id = $2) \
             AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5"
        )))
        .bind(f.event_id.map(|e| e.to_string()))
        .bind(f.endpoint_id.map(|e| e.to_string()))
        .bind(f.status.map(|s| s.as_str().to_string()))
        .bind(f.after.map(|a| a.to_string()))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(record).collect()
    }

    async fn notification_attempts(&self, id: Uuid) -> StoreResult<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT attempt, started_at, duration_ms, outcome, status_code, error FROM notification_attempts \
             WHERE notification_id = $1 ORDER BY started_at, attempt",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let code: Option<i64> = col(row, "status_code")?;
                Ok(AttemptRecord {
                    attempt: u32_of(row, "attempt")?,
                    started_at: col(row, "started_at")?,
                    duration_ms: col(row, "duration_ms")?,
                    outcome: col(row, "outcome")?,
                    status_code: code.and_then(|c| u16::try_from(c).ok()),
                    error: col(row, "error")?,
                })
            })
            .collect()
    }

    async fn resend_notification(
        &self,
        id: Uuid,
        now: UnixMillis,
    ) -> StoreResult<NotificationRecord> {
        // The update and the answer in one transaction: a worker cannot
        // claim the row in between, so the answer is the queued message.
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE notifications SET status = 'queued', attempts = 0, next_attempt_at = $1, last_error = NULL, \
             updated_at = $1 WHERE id = $2 AND status IN ('failed', 'undeliverable', 'delivered')",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM notifications WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(not_found("notification"))?;
        let rec = record(&row)?;
        tx.commit().await.map_err(map_err)?;
        if n == 0 {
            return Err(StoreError::InvalidState(format!(
                "the message is {}; it can be re-sent once it is delivered, failed or undeliverable",
                rec.status.as_str()
            )));
        }
        Ok(rec)
    }

    async fn resend_undeliverable(&self, now: UnixMillis) -> StoreResult<u64> {
        sqlx::query(
            "UPDATE notifications SET status = 'queued', attempts = 0, next_attempt_at = $1, last_error = NULL, \
             updated_at = $1 WHERE status = 'undeliverable'",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|d| d.rows_affected())
        .map_err(map_err)
    }

    async fn outbox_counts(&self) -> StoreResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT channel, status, COUNT(*) AS n FROM notifications GROUP BY channel, status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((col(r, "channel")?, col(r, "status")?, col(r, "n")?)))
            .collect()
    }

    async fn create_webhook_endpoint(&self, e: &WebhookEndpointRecord) -> StoreResult<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )))
        .bind(e.id.to_string())
        .bind(e.owner_id.to_string())
        .bind(e.event_id.map(|x| x.to_string()))
        .bind(e.url.clone())
        .bind(e.event_types.join(" "))
        .bind(secrets_to_json(&e.secrets))
        .bind(i64::from(e.enabled))
        .bind(e.disabled_reason.clone())
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn webhook_endpoint(&self, id: Uuid) -> StoreResult<WebhookEndpointRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("webhook endpoint"))?;
        endpoint(&row)
    }

    async fn list_webhook_endpoints(
        &self,
        owner: Option<UserId>,
    ) -> StoreResult<Vec<WebhookEndpointRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE ($1 IS NULL OR owner_id = $1) ORDER BY id LIMIT 500"
        )))
        .bind(owner.map(|o| o.to_string()))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(endpoint).collect()
    }

    async fn update_webhook_endpoint(&self, e: &WebhookEndpointRecord) -> StoreResult<()> {
        let n = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, event_types = $2, secrets = $3, enabled = $4, disabled_reason = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(e.url.clone())
        .bind(e.event_types.join(" "))
        .bind(secrets_to_json(&e.secrets))
        .bind(i64::from(e.enabled))
        .bind(e.disabled_reason.clone())
        .bind(e.updated_at)
        .bind(e.id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("webhook endpoint"));
        }
        Ok(())
    }

    async fn notification_prefs(&self, user: UserId) -> StoreResult<PrefsRecord> {
        let row =
            sqlx::query("SELECT reminders, phone, sms FROM notification_prefs WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.as_ref()
            .map(prefs)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    async fn set_notification_prefs(
        &self,
        user: UserId,
        p: &PrefsRecord,
        now: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_prefs (user_id, reminders, phone, sms, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET reminders = $2, phone = $3, sms = $4, updated_at = $5",
        )
        .bind(user.to_string())
        .bind(i64::from(p.reminders))
        .bind(p.phone.clone())
        .bind(i64::from(p.sms))
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn event_branding(&self, event: EventId) -> StoreResult<BrandingRecord> {
        let row = sqlx::query(
            "SELECT primary_color, accent_color, logo_url FROM event_branding WHERE event_id = $1",
        )
        .bind(event.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match row {
            None => Ok(BrandingRecord::default()),
            Some(r) => Ok(BrandingRecord {
                primary_color: col(&r, "primary_color")?,
                accent_color: col(&r, "accent_color")?,
                logo_url: col(&r, "logo_url")?,
            }),
        }
    }

    async fn set_event_branding(
        &self,
        event: EventId,
        b: &BrandingRecord,
        now: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO event_branding (event_id, primary_color, accent_color, logo_url, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (event_id) DO UPDATE SET primary_color = $2, accent_color = $3, logo_url = $4, updated_at = $5",
        )
        .bind(event.to_string())
        .bind(b.primary_color.clone())
        .bind(b.accent_color.clone())
        .bind(b.logo_url.clone())
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn event_audience(
        &self,
        event: EventId,
        only: Option<&[UserId]>,
    ) -> StoreResult<Vec<AudienceMember>> {
        let rows = sqlx::query(
            "SELECT DISTINCT u.id, u.email, u.display_name, p.reminders, p.phone, p.sms FROM tickets t \
             JOIN users u ON u.id = t.owner_id LEFT JOIN notification_prefs p ON p.user_id = u.id \
             WHERE t.event_id = $1 AND t.status IN ('issued', 'transferred', 'checked_in') ORDER BY u.id",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let user_id: UserId = parsed(row, "id")?;
            if only.is_some_and(|o| !o.contains(&user_id)) {
                continue;
            }
            out.push(AudienceMember {
                user_id,
                email: col(row, "email")?,
                display_name: col(row, "display_name")?,
                prefs: prefs(row)?,
            });
        }
        Ok(out)
    }

    async fn queue_due_reminders(&self, now: UnixMillis, lead_ms: i64) -> StoreResult<u64> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT e.id FROM events e WHERE e.status IN ('active', 'live') AND e.starts_at > $1 AND e.starts_at <= $2 \
             ORDER BY e.starts_at LIMIT 50",
        )
        .bind(now)
        .bind(now.saturating_add(lead_ms))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut n = 0;
        for id in due {
            let Ok(event) = id.parse::<EventId>() else {
                continue;
            };
            n += self.remind(event, now).await?;
        }
        Ok(n)
    }
}
