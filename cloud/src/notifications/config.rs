//! Configuration of notifications (`[notifications]`): the outbox workers,
//! SMTP, Twilio and organizer webhooks. With no SMTP host (or no Twilio
//! account) that channel's messages are stored as `undeliverable`, never
//! dropped, and an admin can re-send them once a transport is configured.

use crate::config::Secret;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// All notification settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// The outbox workers.
    pub outbox: OutboxConfig,
    /// Email over SMTP.
    pub email: EmailConfig,
    /// SMS over the Twilio Messages API.
    pub sms: SmsConfig,
    /// Organizer webhooks (Standard Webhooks 1.0).
    pub webhooks: WebhookConfig,
    /// Automatic event reminders.
    pub reminders: ReminderConfig,
}

/// Outbox workers (every replica runs one; leases keep them apart).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Run the worker in this process.
    pub enabled: bool,
    /// Attempts before a message is `failed`.
    pub max_attempts: u32,
    /// How often the worker looks for due messages.
    pub poll_ms: u64,
    /// How long a claimed message is reserved for its worker; a worker that
    /// dies lets its messages go after this long.
    pub lease_ms: u64,
    /// Messages claimed at once (and sent concurrently).
    pub batch: u32,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff_base_ms: u64,
    /// Longest retry delay (also caps `Retry-After`).
    pub backoff_max_ms: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_attempts: 5,
            poll_ms: 200,
            lease_ms: 60_000,
            batch: 16,
            backoff_base_ms: 2_000,
            backoff_max_ms: 3_600_000,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain text (a relay on loopback or a private network only).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Email settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// SMTP server host; empty: email is stored as undeliverable.
    pub smtp_host: String,
    /// SMTP port.
    pub smtp_port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    /// SMTP user (empty: no authentication).
    pub username: String,
    /// SMTP password.
    pub password: Secret,
    /// The From address, e.g. `Gatehouse <tickets@example.com>`.
    pub from: String,
    /// Per-message timeout.
    pub timeout_ms: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_host: String::new(),
            smtp_port: 587,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            password: Secret::default(),
            from: "Gatehouse <tickets@gatehouse.invalid>".into(),
            timeout_ms: 10_000,
        }
    }
}

/// SMS settings (Twilio Messages resource).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// API base URL (a Twilio-compatible receiver in tests).
    pub api_base: String,
    /// Account SID (`AC...`); empty: SMS is stored as undeliverable.
    pub account_sid: String,
    /// Auth token.
    pub auth_token: Secret,
    /// Sender number (E.164).
    pub from: String,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            api_base: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token: Secret::default(),
            from: String::new(),
            timeout_ms: 10_000,
        }
    }
}

/// Organizer webhook settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Networks that endpoints may resolve to although they are loopback,
    /// private or link-local (SSRF protection refuses those otherwise),
    /// e.g. `["127.0.0.0/8"]` in tests or `["10.20.0.0/16"]` for an
    /// organizer's VPN. Empty in production.
    pub allow_networks: Vec<IpNet>,
    /// How long an old secret keeps signing after a rotation.
    pub rotation_overlap_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            allow_networks: Vec::new(),
            rotation_overlap_secs: 24 * 3_600,
        }
    }
}

/// Reminder settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReminderConfig {
    /// Send reminders at all.
    pub enabled: bool,
    /// How long before an event starts its holders are reminded.
    pub lead_time_secs: u64,
}

impl Default for ReminderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lead_time_secs: 24 * 3_600,
        }
    }
}

impl NotificationsConfig {
    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let o = &self.outbox;
        if !(1..=50).contains(&o.max_attempts) {
            return Err("notifications.outbox.max_attempts must be between 1 and 50".into());
        }
        if o.poll_ms < 10 || o.lease_ms < 1_000 || o.batch == 0 || o.batch > 500 {
            return Err(
                "notifications.outbox: poll_ms >= 10, lease_ms >= 1000, batch 1..=500".into(),
            );
        }
        if o.backoff_base_ms == 0 || o.backoff_max_ms < o.backoff_base_ms {
            return Err("notifications.outbox: 0 < backoff_base_ms <= backoff_max_ms".into());
        }
        if !self.email.smtp_host.is_empty()
            && self.email.from.parse::<lettre::message::Mailbox>().is_err()
        {
            return Err(
                "notifications.email.from must be an address like `Name <a@b.example>`".into(),
            );
        }
        let base = &self.sms.api_base;
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err("notifications.sms.api_base must be an http(s) URL".into());
        }
        if !self.sms.account_sid.is_empty() && !crate::notifications::sms::is_e164(&self.sms.from) {
            return Err("notifications.sms.from must be an E.164 number like +14155550100".into());
        }
        if self.webhooks.timeout_ms < 100
            || self.email.timeout_ms < 100
            || self.sms.timeout_ms < 100
        {
            return Err("notifications timeouts must be at least 100 ms".into());
        }
        Ok(())
    }
}
