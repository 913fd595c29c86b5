//! Request and response bodies of the notification endpoints.

use crate::model::{EventId, UserId, from_millis};
use crate::store::notifications::{AttemptRecord, NotificationRecord, WebhookEndpointRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Event types an endpoint can subscribe to (`*`: all of them).
pub const EVENT_TYPES: &[&str] = &[
    "order.paid",
    "ticket.issued",
    "ticket.transferred",
    "ticket.refunded",
    "ticket.checked_in",
    "event.status_changed",
];

/// `POST /notifications/email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    /// The event whose ticket holders receive it (organizers: required, and
    /// it must be theirs).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// Only these holders of the event's tickets.
    pub user_ids: Option<Vec<UserId>>,
    /// Explicit addresses: admins only (no open relay).
    pub to: Option<Vec<String>>,
    /// Subject, at most 200 characters.
    pub subject: String,
    /// Plain text, at most 20000 characters (paragraphs split by a blank
    /// line; HTML is escaped).
    pub text: String,
}

/// `POST /notifications/sms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendSms {
    /// The event whose ticket holders (who gave a number and opted in) get it.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// Only these holders.
    pub user_ids: Option<Vec<UserId>>,
    /// Explicit E.164 numbers: admins only.
    pub to: Option<Vec<String>>,
    /// At most 1600 characters.
    pub text: String,
}

/// `POST /notifications/webhook`: a delivery to one of your endpoints.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendWebhook {
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// Event type, e.g. `test.ping` (lowercase letters, digits, `.`, `_`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Any JSON object.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Messages queued by a send.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// One id per message (see `GET /notifications/{id}/status`).
    pub ids: Vec<Uuid>,
}

/// A message's delivery status.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationStatus {
    /// Id (also `webhook-id` / the email's Message-ID).
    pub id: Uuid,
    /// `email`, `sms` or `webhook`.
    pub channel: String,
    /// Template or event type.
    pub kind: String,
    /// `queued`, `sending`, `delivered`, `failed` or `undeliverable`.
    pub status: String,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Why the last attempt failed (or why it is undeliverable).
    pub last_error: Option<String>,
    /// HTTP status of the last attempt.
    pub last_status_code: Option<u16>,
    /// Event.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// Webhook endpoint.
    pub endpoint_id: Option<Uuid>,
    /// Next attempt (queued).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Delivered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// Attempt log (status endpoint only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempt_log: Vec<AttemptView>,
}

/// One attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// Number.
    pub attempt: u32,
    /// Started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Milliseconds.
    pub duration_ms: i64,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    /// HTTP status.
    pub status_code: Option<u16>,
    /// Error.
    pub error: Option<String>,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            started_at: from_millis(a.started_at),
            duration_ms: a.duration_ms,
            outcome: a.outcome.clone(),
            status_code: a.status_code,
            error: a.error.clone(),
        }
    }
}

impl From<&NotificationRecord> for NotificationStatus {
    fn from(r: &NotificationRecord) -> Self {
        Self {
            id: r.id,
            channel: r.channel.as_str().into(),
            kind: r.kind.clone(),
            status: r.status.as_str().into(),
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            last_error: r.last_error.clone(),
            last_status_code: r.last_status_code,
            event_id: r.event_id,
            endpoint_id: r.endpoint_id,
            next_attempt_at: (r.status.as_str() == "queued")
                .then(|| from_millis(r.next_attempt_at)),
            created_at: from_millis(r.created_at),
            delivered_at: r.delivered_at.map(from_millis),
            attempt_log: Vec::new(),
        }
    }
}

/// Listing filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Of one event (organizers: required).
    #[param(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// In one status.
    pub status: Option<String>,
    /// Page size, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Last id of the previous page.
    pub cursor: Option<Uuid>,
}

/// Re-send of every undeliverable message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// How many were queued again.
    pub queued: u64,
}

/// `POST /notifications/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// http(s) URL; must not resolve to a loopback, private or link-local
    /// address unless the operator allow-listed its network.
    pub url: String,
    /// Only this event's messages (default: all your events).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// Subscribed types (see the docs), or `["*"]`.
    pub event_types: Vec<String>,
}

/// `PATCH /notifications/webhook-endpoints/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// New URL.
    pub url: Option<String>,
    /// New types.
    pub event_types: Option<Vec<String>>,
    /// Turn deliveries on (e.g. after a 410 disabled it) or off.
    pub enabled: Option<bool>,
}

/// An endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: UserId,
    /// Event, or all the owner's events.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// URL.
    pub url: String,
    /// Types.
    pub event_types: Vec<String>,
    /// Deliveries go out.
    pub enabled: bool,
    /// Why not.
    pub disabled_reason: Option<String>,
    /// Secrets signing now (2 during a rotation).
    pub live_secrets: usize,
    /// The new signing secret (`whsec_...`): shown once, on creation and
    /// rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointView {
    /// The view of a record (without the secret).
    pub fn of(e: &WebhookEndpointRecord, now: i64) -> Self {
        Self {
            id: e.id,
            owner_id: e.owner_id,
            event_id: e.event_id,
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            live_secrets: e
                .secrets
                .iter()
                .filter(|s| s.expires_at.is_none_or(|x| x > now))
                .count(),
            secret: None,
        }
    }
}

/// A buyer's preferences.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Event reminders (transactional messages always go).
    pub reminders: bool,
    /// Mobile number, E.164.
    pub phone: Option<String>,
    /// Also send SMS (needs `phone`).
    pub sms: bool,
}

/// An event's branding in messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    /// `#rrggbb`.
    pub primary_color: String,
    /// `#rrggbb`.
    pub accent_color: String,
    /// https URL of the logo.
    pub logo_url: Option<String>,
}
