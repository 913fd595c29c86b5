//! Notifications: email with the tickets, SMS, and signed organizer
//! webhooks, all through one durable outbox (`notifications` table).
//!
//! Invariants:
//! - A message is a row written in the same transaction as its cause
//!   (`store::outbox` hooks), or by an authorized API call; nothing is sent
//!   from a request handler.
//! - Workers ([`worker`]) on any replica claim due rows under a lease; a
//!   claim counts an attempt, so a worker killed mid-send cannot make a
//!   message retry forever. After `max_attempts` the row is `failed`, and
//!   stays visible and replayable.
//! - Every attempt of a message carries the same id (email `Message-ID`,
//!   `webhook-id`): delivery is at-least-once, never twice under two ids.
//! - A channel without a transport leaves its messages `undeliverable`
//!   (stored, not dropped); an admin re-sends them once one is configured.
//! - Secrets (SMTP password, Twilio token, webhook secrets) never reach a
//!   log line or the printed configuration.

pub mod api;
pub mod config;
pub mod dto;
pub mod email;
pub mod sms;
pub mod templates;
pub mod webhook;
pub mod worker;

use std::time::Duration;

pub use api::router;

/// A transport accepted the message.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// HTTP status (SMS, webhooks).
    pub status_code: Option<u16>,
}

/// A transport did not take the message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What happened (no secrets).
    pub message: String,
    /// Retrying cannot help.
    pub permanent: bool,
    /// HTTP status seen.
    pub status_code: Option<u16>,
    /// The receiver's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// The receiver answered 410 Gone: disable the webhook endpoint.
    pub gone: bool,
}

impl Failure {
    /// Worth another attempt.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            status_code: None,
            retry_after: None,
            gone: false,
        }
    }
    /// Final.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::retry(message)
        }
    }
}

/// An error with its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Maps an HTTP answer: 2xx delivered; 3xx a failure (redirects are not
/// followed); 410 final and `gone`; 408, 429 and 5xx retried with the
/// receiver's `Retry-After`; other 4xx final when `client_errors_final`.
pub(crate) async fn http_outcome(
    resp: reqwest::Response,
    who: &str,
    client_errors_final: bool,
) -> Result<Attempt, Failure> {
    let status = resp.status();
    let code = status.as_u16();
    if status.is_success() {
        return Ok(Attempt {
            status_code: Some(code),
        });
    }
    let wait = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, std::time::SystemTime::now()));
    let body: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let detail = if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    };
    let mut f = if status.is_redirection() {
        Failure::retry(format!(
            "{who} answered {code} (a redirect; webhooks do not follow redirects: register the final URL)"
        ))
    } else if code == 410 {
        Failure {
            gone: true,
            ..Failure::permanent(format!("{who} answered 410 Gone{detail}"))
        }
    } else if code == 408 || code == 429 || status.is_server_error() {
        Failure::retry(format!("{who} answered {code}{detail}"))
    } else if client_errors_final {
        Failure::permanent(format!("{who} refused the message with {code}{detail}"))
    } else {
        Failure::retry(format!("{who} answered {code}{detail}"))
    };
    f.status_code = Some(code);
    f.retry_after = wait;
    Err(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2026 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
