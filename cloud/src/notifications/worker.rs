//! The outbox worker: claims due messages under a lease, sends them
//! concurrently, records each attempt, and schedules retries with
//! exponential backoff and jitter (or the receiver's `Retry-After`, capped).
//! Every few seconds it also publishes outbox gauges and queues reminders
//! of events that start within the lead time.

use super::config::NotificationsConfig;
use super::email::{self, Mailer, QrImage};
use super::sms::Sms;
use super::templates::{Brand, Templates};
use super::{Attempt, Failure, webhook};
use crate::state::AppState;
use crate::store::notifications::{
    AttemptResult, Channel, DeliveryStatus, NotificationRecord, WebhookEndpointRecord,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kinds whose email carries a calendar entry.
const WITH_ICS: &[&str] = &["order_confirmation", "transfer_received", "event_reminder"];

/// What the worker sends with.
#[derive(Debug)]
pub struct Transports {
    /// SMTP, if configured.
    pub mailer: Option<Mailer>,
    /// Twilio, if configured.
    pub sms: Option<Sms>,
    /// Templates.
    pub templates: Templates,
}

impl Transports {
    /// From configuration.
    pub fn from_config(cfg: &NotificationsConfig) -> Result<Self, String> {
        Ok(Self {
            mailer: Mailer::from_config(&cfg.email)?,
            sms: Sms::from_config(&cfg.sms)?,
            templates: Templates::new().map_err(|e| format!("templates: {e}"))?,
        })
    }
}

/// The retry delay after `attempt` failed: `base * 2^(attempt-1)`, capped,
/// with equal jitter (between half and all of it), and never sooner than
/// the receiver asked.
pub fn backoff(
    cfg: &super::config::OutboxConfig,
    attempt: u32,
    asked: Option<Duration>,
    random: u64,
) -> Duration {
    let exp = cfg
        .backoff_base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(cfg.backoff_max_ms);
    let half = exp / 2;
    let jittered = half + random % (exp - half + 1);
    let asked = asked.map_or(0, |d| {
        d.as_millis().min(u128::from(cfg.backoff_max_ms)) as u64
    });
    Duration::from_millis(jittered.max(asked))
}

fn random_u64() -> u64 {
    crate::crypto::random_bytes::<8>()
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// Starts the worker when `notifications.outbox.enabled`.
pub fn start(state: &AppState) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    if !state.config.notifications.outbox.enabled {
        return Ok(None);
    }
    let transports = Arc::new(Transports::from_config(&state.config.notifications)?);
    Ok(Some(tokio::spawn(run(state.clone(), transports))))
}

/// Runs until the task is aborted.
pub async fn run(state: AppState, transports: Arc<Transports>) {
    let cfg = state.config.notifications.clone();
    let worker = format!("w-{}", uuid::Uuid::new_v4().simple());
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.outbox.poll_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_chores = Instant::now() - Duration::from_secs(60);
    loop {
        tick.tick().await;
        if last_chores.elapsed() >= Duration::from_secs(5) {
            last_chores = Instant::now();
            chores(&state).await;
        }
        // Drain: keep claiming while full batches come back.
        loop {
            let now = state.now_ms();
            let lease = now + cfg.outbox.lease_ms as i64;
            let batch = match state
                .store
                .claim_notifications(
                    &worker,
                    now,
                    lease,
                    cfg.outbox.max_attempts,
                    cfg.outbox.batch,
                )
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: cannot claim messages; will retry");
                    break;
                }
            };
            let full = batch.len() as u32 == cfg.outbox.batch;
            let mut set = tokio::task::JoinSet::new();
            for rec in batch {
                let (state, transports, worker) =
                    (state.clone(), transports.clone(), worker.clone());
                set.spawn(async move { process(&state, &transports, &worker, rec).await });
            }
            while set.join_next().await.is_some() {}
            if !full {
                break;
            }
        }
    }
}

async fn chores(state: &AppState) {
    if let Ok(counts) = state.store.outbox_counts().await {
        for (channel, status, n) in counts {
            metrics::gauge!("notifications_outbox", "channel" => channel, "status" => status)
                .set(n as f64);
        }
    }
    let r = &state.config.notifications.reminders;
    if r.enabled {
        let lead = (r.lead_time_secs as i64).saturating_mul(1000);
        match state.store.queue_due_reminders(state.now_ms(), lead).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "queued event reminders"),
            Err(e) => tracing::warn!(error = %e, "could not queue event reminders"),
        }
    }
}

/// Sends one claimed message and records the outcome.
pub async fn process(state: &AppState, t: &Transports, worker: &str, rec: NotificationRecord) {
    let cfg = &state.config.notifications.outbox;
    let started_at = state.now_ms();
    let clock = Instant::now();
    let channel = rec.channel.as_str();
    let result = if rec.attempts > rec.max_attempts {
        Err(Failure::permanent(format!(
            "gave up after {} attempts (the last one was interrupted)",
            rec.max_attempts
        )))
    } else {
        send(state, t, &rec).await
    };
    let now = state.now_ms();
    let mut r = AttemptResult {
        id: rec.id,
        attempt: rec.attempts,
        worker: worker.to_string(),
        status: DeliveryStatus::Delivered,
        next_attempt_at: rec.next_attempt_at,
        error: None,
        status_code: None,
        started_at,
        duration_ms: clock.elapsed().as_millis() as i64,
    };
    match result {
        Ok(Sent::Delivered(a)) => {
            r.status_code = a.status_code;
            metrics::counter!("notifications_delivered_total", "channel" => channel).increment(1);
            let latency = (now - rec.created_at).max(0) as f64 / 1000.0;
            metrics::histogram!("notifications_delivery_latency_seconds", "channel" => channel)
                .record(latency);
        }
        Ok(Sent::NoTransport(why)) => {
            r.status = DeliveryStatus::Undeliverable;
            r.error = Some(why);
            metrics::counter!("notifications_undeliverable_total", "channel" => channel)
                .increment(1);
        }
        Err(f) => {
            r.error = Some(f.message.clone());
            r.status_code = f.status_code;
            if f.permanent || rec.attempts >= rec.max_attempts {
                r.status = DeliveryStatus::Failed;
                metrics::counter!("notifications_failed_total", "channel" => channel).increment(1);
            } else {
                r.status = DeliveryStatus::Queued;
                let wait = backoff(cfg, rec.attempts, f.retry_after, random_u64());
                r.next_attempt_at = now + wait.as_millis() as i64;
                metrics::counter!("notifications_retries_total", "channel" => channel).increment(1);
            }
            tracing::warn!(id = %rec.id, channel, kind = %rec.kind, attempt = rec.attempts,
                status = r.status.as_str(), error = %f.message, "notification not delivered");
            if f.gone && rec.channel == Channel::Webhook {
                disable_endpoint(state, &rec, &f.message).await;
            }
        }
    }
    match state.store.finish_notification(&r, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(id = %rec.id, "outbox: lease lost before the result was recorded")
        }
        Err(e) => {
            tracing::warn!(id = %rec.id, error = %e, "outbox: cannot record the result; the lease will expire and it is retried")
        }
    }
}

/// What became of a send.
#[derive(Debug)]
pub enum Sent {
    /// Accepted.
    Delivered(Attempt),
    /// The channel has no transport configured.
    NoTransport(String),
}

async fn send(state: &AppState, t: &Transports, rec: &NotificationRecord) -> Result<Sent, Failure> {
    let payload: Value = serde_json::from_str(&rec.payload)
        .map_err(|e| Failure::permanent(format!("unreadable payload: {e}")))?;
    match rec.channel {
        Channel::Email => {
            let Some(mailer) = &t.mailer else {
                return Ok(Sent::NoTransport(
                    "no SMTP server is configured (notifications.email.smtp_host); an admin can re-send it once one is".into(),
                ));
            };
            let msg = compose_email(state, t, mailer, rec, payload).await?;
            mailer.send(msg).await.map(Sent::Delivered)
        }
        Channel::Sms => {
            let Some(sms) = &t.sms else {
                return Ok(Sent::NoTransport(
                    "no SMS account is configured (notifications.sms.account_sid); an admin can re-send it once one is".into(),
                ));
            };
            let brand = brand(state, rec, &payload).await;
            let body = if rec.kind == "custom" {
                payload["text"].as_str().unwrap_or_default().to_string()
            } else {
                t.templates
                    .sms(&rec.kind, &payload, &brand)
                    .map_err(Failure::permanent)?
            };
            sms.send(&rec.recipient, &body).await.map(Sent::Delivered)
        }
        Channel::Webhook => send_webhook(state, rec).await.map(Sent::Delivered),
    }
}

async fn brand(state: &AppState, rec: &NotificationRecord, payload: &Value) -> Brand {
    let b = match rec.event_id {
        Some(e) => state.store.event_branding(e).await.unwrap_or_default(),
        None => Default::default(),
    };
    Brand {
        name: payload["event"]["name"]
            .as_str()
            .unwrap_or("Gatehouse")
            .to_string(),
        primary_color: b.primary_color,
        accent_color: b.accent_color,
        logo_url: b.logo_url,
    }
}

async fn compose_email(
    state: &AppState,
    t: &Transports,
    mailer: &Mailer,
    rec: &NotificationRecord,
    mut payload: Value,
) -> Result<lettre::Message, Failure> {
    let brand = brand(state, rec, &payload).await;
    let mut images = Vec::new();
    if let Some(tickets) = payload["tickets"].as_array_mut() {
        for tk in tickets.iter_mut() {
            let (Some(id), Some(cred)) = (tk["id"].as_str(), tk["credential"].as_str()) else {
                continue;
            };
            let png = crate::tickets::qr::png(cred)
                .map_err(|e| Failure::permanent(format!("QR code of ticket {id}: {e}")))?;
            let cid = format!("qr-{id}");
            images.push(QrImage {
                cid: cid.clone(),
                filename: format!("ticket-{id}.png"),
                png,
            });
            tk["cid"] = Value::String(cid);
        }
    }
    let rendered = t
        .templates
        .email(&rec.kind, &payload, &brand)
        .map_err(Failure::permanent)?;
    let ics = (WITH_ICS.contains(&rec.kind.as_str()) && payload["event"].is_object())
        .then(|| email::ics(&payload["event"], rec.created_at));
    email::build(
        mailer.from(),
        &rec.recipient,
        &rec.id.to_string(),
        &rendered,
        &images,
        ics,
    )
    .map_err(Failure::permanent)
}

/// The raw keys of an endpoint's live secrets (newest first).
pub fn live_keys(
    state: &AppState,
    e: &WebhookEndpointRecord,
    now: i64,
) -> Result<Vec<Vec<u8>>, String> {
    e.secrets
        .iter()
        .enumerate()
        .filter(|(_, s)| s.expires_at.is_none_or(|x| x > now))
        .map(|(_, s)| {
            state
                .vault
                .open(&s.sealed, &super::api::secret_aad(e.id))
                .map(|k| k.to_vec())
                .map_err(|e| format!("webhook secret cannot be opened: {e}"))
        })
        .collect()
}

async fn send_webhook(state: &AppState, rec: &NotificationRecord) -> Result<Attempt, Failure> {
    let id = rec
        .endpoint_id
        .ok_or_else(|| Failure::permanent("webhook without an endpoint"))?;
    let e = state
        .store
        .webhook_endpoint(id)
        .await
        .map_err(|e| Failure::retry(format!("endpoint: {e}")))?;
    if !e.enabled {
        return Err(Failure::permanent(format!(
            "the endpoint is disabled{}",
            e.disabled_reason
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )));
    }
    let keys = live_keys(state, &e, state.now_ms()).map_err(Failure::permanent)?;
    let cfg = &state.config.notifications.webhooks;
    webhook::deliver(
        cfg,
        &e.url,
        &keys,
        &rec.id.to_string(),
        state.now_secs() as i64,
        &rec.payload,
    )
    .await
}

async fn disable_endpoint(state: &AppState, rec: &NotificationRecord, why: &str) {
    let Some(id) = rec.endpoint_id else { return };
    let Ok(mut e) = state.store.webhook_endpoint(id).await else {
        return;
    };
    e.enabled = false;
    e.disabled_reason = Some(why.chars().take(200).collect());
    e.updated_at = state.now_ms();
    match state.store.update_webhook_endpoint(&e).await {
        Ok(()) => tracing::warn!(endpoint = %id, "webhook endpoint disabled: it answered 410 Gone"),
        Err(err) => {
            tracing::warn!(endpoint = %id, error = %err, "could not disable the webhook endpoint")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let cfg = super::super::config::OutboxConfig {
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            ..Default::default()
        };
        for attempt in 1..=4u32 {
            let full = 1_000u64 << (attempt - 1);
            let lo = backoff(&cfg, attempt, None, 0).as_millis() as u64;
            let hi = backoff(&cfg, attempt, None, u64::MAX - 7).as_millis() as u64;
            assert!(
                lo >= full / 2 && hi <= full,
                "attempt {attempt}: {lo}..{hi} within [{}, {full}]",
                full / 2
            );
        }
        assert!(backoff(&cfg, 30, None, 5).as_millis() <= 60_000, "capped");
        assert_eq!(
            backoff(&cfg, 1, Some(Duration::from_secs(30)), 0),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff(&cfg, 1, Some(Duration::from_secs(9_999)), 0),
            Duration::from_secs(60),
            "Retry-After capped"
        );
    }
}
