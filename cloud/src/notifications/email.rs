//! Email over SMTP with lettre: the transport from `[notifications.email]`
//! (plain, STARTTLS or TLS, optional authentication, pooled connections)
//! and the MIME message: text and HTML alternatives, each ticket's QR code
//! as an inline image (referenced by `cid:` from the HTML) and again as an
//! attachment, and an `.ics` calendar entry. The `Message-ID` is the outbox
//! row's id, so a message re-sent after a crash is recognisably the same.

use super::config::{EmailConfig, SmtpSecurity};
use super::templates::Rendered;
use super::{Attempt, Failure};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// A QR code image for the message.
#[derive(Debug, Clone)]
pub struct QrImage {
    /// Content-ID the HTML refers to.
    pub cid: String,
    /// Attachment file name.
    pub filename: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// The SMTP transport.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The configured transport, or `None` when no SMTP host is set.
    pub fn from_config(cfg: &EmailConfig) -> Result<Option<Self>, String> {
        if cfg.smtp_host.is_empty() {
            return Ok(None);
        }
        let host = cfg.smtp_host.as_str();
        let builder = match cfg.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("SMTP STARTTLS to {host}: {e}"))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("SMTP TLS to {host}: {e}"))?,
        };
        let mut builder = builder
            .port(cfg.smtp_port)
            .timeout(Some(Duration::from_millis(cfg.timeout_ms)));
        if !cfg.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                cfg.username.clone(),
                cfg.password.expose().to_string(),
            ));
        }
        let from = cfg
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("notifications.email.from: {e}"))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    /// The From address.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Hands the message to the SMTP server.
    pub async fn send(&self, msg: Message) -> Result<Attempt, Failure> {
        match self.transport.send(msg).await {
            Ok(_) => Ok(Attempt { status_code: None }),
            // 5xx: the server refuses this message for good (bad address).
            Err(e) if e.is_permanent() => Err(Failure::permanent(format!(
                "the SMTP server refused the message: {}",
                super::error_chain(&e)
            ))),
            Err(e) => Err(Failure::retry(format!("SMTP: {}", super::error_chain(&e)))),
        }
    }
}

/// Builds the MIME message.
pub fn build(
    from: &Mailbox,
    to: &str,
    message_id: &str,
    r: &Rendered,
    images: &[QrImage],
    ics: Option<String>,
) -> Result<Message, String> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("recipient {to:?} is not an email address: {e}"))?;
    let png = ContentType::parse("image/png").map_err(|e| e.to_string())?;
    let mut related = MultiPart::related().multipart(MultiPart::alternative_plain_html(
        r.text.clone(),
        r.html.clone(),
    ));
    for img in images {
        related = related
            .singlepart(Attachment::new_inline(img.cid.clone()).body(img.png.clone(), png.clone()));
    }
    let mut mixed = MultiPart::mixed().multipart(related);
    for img in images {
        mixed = mixed
            .singlepart(Attachment::new(img.filename.clone()).body(img.png.clone(), png.clone()));
    }
    if let Some(ics) = ics {
        let cal = ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
            .map_err(|e| e.to_string())?;
        mixed = mixed.singlepart(Attachment::new("event.ics".into()).body(ics, cal));
    }
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject.clone())
        .message_id(Some(format!("<{message_id}@gatehouse>")))
        .multipart(mixed)
        .map_err(|e| format!("building the message: {e}"))
}

fn ics_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace(['\r', '\n'], "\\n")
}

/// RFC 5545 folding: lines of at most 75 octets, continued with a space.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    for ch in line.chars() {
        if len + ch.len_utf8() > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(ch);
        len += ch.len_utf8();
    }
    out + "\r\n"
}

fn ics_time(ms: i64) -> String {
    let t = crate::model::from_millis(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A one-event calendar (`.ics`) for an event JSON from the outbox payload.
pub fn ics(event: &serde_json::Value, stamp_ms: i64) -> String {
    let lines = [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//Gatehouse//Tickets//EN".into(),
        "METHOD:PUBLISH".into(),
        "BEGIN:VEVENT".into(),
        format!("UID:{}@gatehouse", event["id"].as_str().unwrap_or_default()),
        format!("DTSTAMP:{}", ics_time(stamp_ms)),
        format!(
            "DTSTART:{}",
            ics_time(event["starts_at_ms"].as_i64().unwrap_or_default())
        ),
        format!(
            "DTEND:{}",
            ics_time(event["ends_at_ms"].as_i64().unwrap_or_default())
        ),
        format!(
            "SUMMARY:{}",
            ics_escape(event["name"].as_str().unwrap_or_default())
        ),
        format!(
            "LOCATION:{}",
            ics_escape(event["venue"].as_str().unwrap_or_default())
        ),
        "END:VEVENT".into(),
        "END:VCALENDAR".into(),
    ];
    lines.iter().map(|l| fold(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ics_is_escaped_folded_and_timed() {
        let ev = serde_json::json!({"id": "e1", "name": "Rock, Paper; Scissors\nLive", "venue": "Pier 4",
            "starts_at_ms": time::macros::datetime!(2031-06-01 18:00 UTC).unix_timestamp() * 1000,
            "ends_at_ms": time::macros::datetime!(2031-06-01 23:30 UTC).unix_timestamp() * 1000});
        let cal = ics(&ev, 0);
        assert!(
            cal.contains("SUMMARY:Rock\\, Paper\\; Scissors\\nLive\r\n"),
            "{cal}"
        );
        assert!(cal.contains("DTSTART:20310601T180000Z"), "{cal}");
        assert!(cal.lines().all(|l| l.len() <= 75), "{cal}");
        let long = fold(&"x".repeat(200));
        assert_eq!(long.replace("\r\n ", "").trim_end(), "x".repeat(200));
    }
}
