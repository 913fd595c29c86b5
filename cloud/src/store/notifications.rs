//! Notification storage: the outbox rows ([`NotificationRecord`]), their
//! delivery attempts, organizers' webhook endpoints, buyers' preferences and
//! per-event branding, behind the [`NotificationStore`] sub-trait. The SQL is
//! in `notify_sql.rs`; the hooks business transactions call are in
//! `outbox.rs`.

use super::StoreResult;
use crate::model::{EventId, UnixMillis, UserId};
use async_trait::async_trait;
use uuid::Uuid;

/// Email, SMS or an organizer webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Email over SMTP.
    Email,
    /// SMS over Twilio.
    Sms,
    /// An organizer's webhook endpoint.
    Webhook,
}

impl Channel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Webhook => "webhook",
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "email" => Ok(Self::Email),
            "sms" => Ok(Self::Sms),
            "webhook" => Ok(Self::Webhook),
            other => Err(format!("unknown channel {other:?}")),
        }
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Queued,
    /// Claimed by a worker under a lease.
    Sending,
    /// The transport accepted it.
    Delivered,
    /// Gave up (attempts used, or refused for good); can be replayed.
    Failed,
    /// No transport is configured for its channel; re-sendable.
    Undeliverable,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Undeliverable => "undeliverable",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "undeliverable" => Self::Undeliverable,
            other => return Err(format!("unknown delivery status {other:?}")),
        })
    }
}

/// A message to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Channel.
    pub channel: Channel,
    /// Message kind: a template name for email/SMS, the event type for a
    /// webhook.
    pub kind: String,
    /// The event it is about.
    pub event_id: Option<EventId>,
    /// The webhook endpoint (webhooks only).
    pub endpoint_id: Option<Uuid>,
    /// The recipient's account.
    pub user_id: Option<UserId>,
    /// Email address, E.164 number, or the endpoint URL at enqueue time.
    pub recipient: String,
    /// JSON: template variables (email/SMS) or the exact body (webhook).
    pub payload: String,
    /// At most one message per key (replayed business events enqueue once).
    pub dedupe_key: Option<String>,
    /// Who asked for it (API sends), `None` for automatic messages.
    pub created_by: Option<UserId>,
}

/// An outbox row.
#[derive(Debug, Clone)]
pub struct NotificationRecord {
    /// Id (also the email `Message-ID` and the `webhook-id`).
    pub id: Uuid,
    /// Channel.
    pub channel: Channel,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: DeliveryStatus,
    /// Event.
    pub event_id: Option<EventId>,
    /// Webhook endpoint.
    pub endpoint_id: Option<Uuid>,
    /// Recipient account.
    pub user_id: Option<UserId>,
    /// Address, number or URL.
    pub recipient: String,
    /// JSON payload.
    pub payload: String,
    /// Who asked for it.
    pub created_by: Option<UserId>,
    /// Attempts started (a claim counts, so a crash mid-send counts).
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: UnixMillis,
    /// Last failure.
    pub last_error: Option<String>,
    /// Last HTTP status (SMS, webhooks).
    pub last_status_code: Option<u16>,
    /// Created.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
    /// Accepted by the transport.
    pub delivered_at: Option<UnixMillis>,
}

/// How one attempt ended, as the worker reports it.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The message.
    pub id: Uuid,
    /// Which attempt (the record's `attempts` after the claim).
    pub attempt: u32,
    /// The worker holding the lease.
    pub worker: String,
    /// Status after the attempt: delivered, queued (retry), failed or
    /// undeliverable.
    pub status: DeliveryStatus,
    /// The retry's due time (queued).
    pub next_attempt_at: UnixMillis,
    /// Why it did not go.
    pub error: Option<String>,
    /// HTTP status seen.
    pub status_code: Option<u16>,
    /// When the attempt started.
    pub started_at: UnixMillis,
    /// How long it took.
    pub duration_ms: i64,
}

/// One row of a message's attempt log.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// Attempt number.
    pub attempt: u32,
    /// Started.
    pub started_at: UnixMillis,
    /// Duration.
    pub duration_ms: i64,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    /// HTTP status.
    pub status_code: Option<u16>,
    /// Error.
    pub error: Option<String>,
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// Of one event.
    pub event_id: Option<EventId>,
    /// To one webhook endpoint.
    pub endpoint_id: Option<Uuid>,
    /// In one status.
    pub status: Option<DeliveryStatus>,
    /// After this id.
    pub after: Option<Uuid>,
    /// Page size.
    pub limit: i64,
}

/// A signing secret of an endpoint, sealed with the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// ChaCha20-Poly1305 sealed 32 bytes.
    pub sealed: Vec<u8>,
    /// After a rotation the old secret signs until then.
    pub expires_at: Option<UnixMillis>,
}

/// An organizer's webhook endpoint.
#[derive(Debug, Clone)]
pub struct WebhookEndpointRecord {
    /// Id.
    pub id: Uuid,
    /// The organizer.
    pub owner_id: UserId,
    /// One event, or all the owner's events.
    pub event_id: Option<EventId>,
    /// Target URL (http or https).
    pub url: String,
    /// Subscribed event types (`*` for all).
    pub event_types: Vec<String>,
    /// Newest first.
    pub secrets: Vec<SealedSecret>,
    /// Deliveries go out.
    pub enabled: bool,
    /// Why it was disabled (e.g. the receiver answered 410).
    pub disabled_reason: Option<String>,
    /// Created.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
}

/// A buyer's notification preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefsRecord {
    /// Event reminders (transactional messages always go).
    pub reminders: bool,
    /// Mobile number for SMS (E.164).
    pub phone: Option<String>,
    /// Also send SMS.
    pub sms: bool,
}

impl Default for PrefsRecord {
    fn default() -> Self {
        Self {
            reminders: true,
            phone: None,
            sms: false,
        }
    }
}

/// An event's look in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandingRecord {
    /// `#rrggbb`.
    pub primary_color: String,
    /// `#rrggbb`.
    pub accent_color: String,
    /// https URL of a logo.
    pub logo_url: Option<String>,
}

impl Default for BrandingRecord {
    fn default() -> Self {
        Self {
            primary_color: "#1f3a5f".into(),
            accent_color: "#f2a900".into(),
            logo_url: None,
        }
    }
}

/// A holder of a valid ticket of an event.
#[derive(Debug, Clone)]
pub struct AudienceMember {
    /// Account.
    pub user_id: UserId,
    /// Email.
    pub email: String,
    /// Name.
    pub display_name: String,
    /// Preferences.
    pub prefs: PrefsRecord,
}

/// The outbox and everything around it.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Enqueues messages in one transaction (API sends); returns their ids.
    async fn enqueue_notifications(
        &self,
        new: &[NewNotification],
        now: UnixMillis,
    ) -> StoreResult<Vec<Uuid>>;
    /// Claims up to `limit` due messages (queued and due, or sending with an
    /// expired lease) for `worker` until `lease_until`, counting an attempt.
    /// Safe with many workers: each row goes to one.
    async fn claim_notifications(
        &self,
        worker: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
        max_attempts: u32,
        limit: u32,
    ) -> StoreResult<Vec<NotificationRecord>>;
    /// Records an attempt's result; false when the worker lost its lease
    /// (another worker took the message over).
    async fn finish_notification(&self, r: &AttemptResult, now: UnixMillis) -> StoreResult<bool>;
    /// By id.
    async fn notification(&self, id: Uuid) -> StoreResult<NotificationRecord>;
    /// A page, ascending by id.
    async fn list_notifications(
        &self,
        f: &NotificationFilter,
    ) -> StoreResult<Vec<NotificationRecord>>;
    /// Attempt log, oldest first.
    async fn notification_attempts(&self, id: Uuid) -> StoreResult<Vec<AttemptRecord>>;
    /// Queues a finished message again with fresh attempts (`Conflict`
    /// while it is queued or sending).
    async fn resend_notification(
        &self,
        id: Uuid,
        now: UnixMillis,
    ) -> StoreResult<NotificationRecord>;
    /// Queues every undeliverable message again; returns how many.
    async fn resend_undeliverable(&self, now: UnixMillis) -> StoreResult<u64>;
    /// `(channel, status, count)` over the outbox.
    async fn outbox_counts(&self) -> StoreResult<Vec<(String, String, i64)>>;

    /// Inserts an endpoint.
    async fn create_webhook_endpoint(&self, e: &WebhookEndpointRecord) -> StoreResult<()>;
    /// By id.
    async fn webhook_endpoint(&self, id: Uuid) -> StoreResult<WebhookEndpointRecord>;
    /// An owner's endpoints (all, for `None`), ascending by id.
    async fn list_webhook_endpoints(
        &self,
        owner: Option<UserId>,
    ) -> StoreResult<Vec<WebhookEndpointRecord>>;
    /// Replaces url, types, secrets, enabled and reason.
    async fn update_webhook_endpoint(&self, e: &WebhookEndpointRecord) -> StoreResult<()>;

    /// A user's preferences (defaults when never set).
    async fn notification_prefs(&self, user: UserId) -> StoreResult<PrefsRecord>;
    /// Stores a user's preferences.
    async fn set_notification_prefs(
        &self,
        user: UserId,
        p: &PrefsRecord,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// An event's branding (defaults when never set).
    async fn event_branding(&self, event: EventId) -> StoreResult<BrandingRecord>;
    /// Stores an event's branding.
    async fn set_event_branding(
        &self,
        event: EventId,
        b: &BrandingRecord,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Holders of valid tickets of `event` (optionally only these users).
    async fn event_audience(
        &self,
        event: EventId,
        only: Option<&[UserId]>,
    ) -> StoreResult<Vec<AudienceMember>>;
    /// Queues a reminder for every holder of an event starting within
    /// `lead_ms` who has none yet (once per holder, whichever replica runs
    /// the sweep: the dedupe key decides).
    async fn queue_due_reminders(&self, now: UnixMillis, lead_ms: i64) -> StoreResult<u64>;
}
