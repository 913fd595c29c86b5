//! Notifications on real peers: a real SMTP server (aiosmtpd), a
//! Twilio-like receiver, webhook receivers that misbehave, and the real
//! `cloud` binary killed mid-delivery. Every scenario runs on SQLite and
//! on PostgreSQL.

mod email;
mod kinds;
pub mod peers;
mod process;
mod sending;
mod sms;
mod webhooks;

use cloud::config::Config;
use cloud::notifications::config::SmtpSecurity;

/// `<name>::sqlite` and `<name>::postgres` from `async fn <name>(Backend)`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await;
            }
        }
    };
}
pub(crate) use on_both;

/// Quick retries, short timeouts, loopback receivers allowed.
pub fn fast(c: &mut Config) {
    let o = &mut c.notifications.outbox;
    o.poll_ms = 20;
    o.backoff_base_ms = 100;
    o.backoff_max_ms = 1_500;
    o.max_attempts = 3;
    o.lease_ms = 5_000;
    let w = &mut c.notifications.webhooks;
    w.timeout_ms = 1_000;
    w.allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
}

/// Email through the SMTP server on `port` (plain: it is on loopback).
pub fn mail(c: &mut Config, port: u16) {
    let e = &mut c.notifications.email;
    e.smtp_host = "127.0.0.1".into();
    e.smtp_port = port;
    e.security = SmtpSecurity::None;
    e.from = "Gatehouse Tickets <tickets@gatehouse.test>".into();
}

/// The outbox id in a `Message-ID` (`<id@gatehouse>`).
pub fn outbox_id(message_id: &str) -> String {
    message_id
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string()
}
