//! The state every handler shares. Cheap to clone (everything is behind
//! `Arc`), and stateless across replicas: all truth is in the database.

use crate::auth::jwt::Tokens;
use crate::auth::password::Passwords;
use crate::config::Config;
use crate::crypto::KeyVault;
use crate::model::{Clock, EventId, UnixMillis, to_millis};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Shared application state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Arc<dyn Store>,
    /// Seals signing keys.
    pub vault: KeyVault,
    /// Access tokens.
    pub tokens: Tokens,
    /// Password hashing.
    pub passwords: Passwords,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Event-page views not yet written.
    pub views: ViewCounter,
    /// The device push channel's fan-out on this replica.
    pub push: crate::push::PushHub,
    /// Prometheus exposition.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Stripe, when configured.
    pub stripe: Option<crate::payments::stripe::StripeGateway>,
    /// Failed-login counters (per address and per account).
    pub login_guard: Arc<crate::auth::guard::LoginGuard>,
    /// The rate-limit store shared by every replica, when configured
    /// (`rate_limit.store = "redis"`); none: buckets live in this process.
    pub shared_limits: Option<crate::http::shared_limit::SharedStore>,
    /// This replica's group-commit queues and signing-key cache
    /// (`orders::group`).
    pub group: Arc<crate::orders::group::GroupCommit>,
}

impl AppState {
    /// Now, unix milliseconds.
    pub fn now_ms(&self) -> UnixMillis {
        to_millis(self.clock.now())
    }
    /// Now, unix seconds.
    pub fn now_secs(&self) -> u64 {
        self.clock.now().unix_timestamp().max(0) as u64
    }
}

/// Counts event-page views in memory and writes them in batches: a
/// database write per page view would turn the hottest read into a
/// contended write. Up to one flush interval of views is lost on a crash.
#[derive(Clone, Debug, Default)]
pub struct ViewCounter {
    pending: Arc<Mutex<HashMap<EventId, i64>>>,
    /// Held from drain to commit, so a flush that finds nothing pending
    /// still waits for one in flight: a report that flushes first then
    /// reads sees every view recorded before it.
    flushing: Arc<tokio::sync::Mutex<()>>,
}

impl ViewCounter {
    /// Records one view.
    pub fn record(&self, event: EventId) {
        if let Ok(mut map) = self.pending.lock() {
            *map.entry(event).or_default() += 1;
        }
    }

    /// Writes pending views; they are kept for the next try on failure.
    pub async fn flush(&self, store: &dyn Store) {
        let _in_flight = self.flushing.lock().await;
        let batch: Vec<(EventId, i64)> = match self.pending.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => return,
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.add_views(&batch).await {
            tracing::warn!(error = %e, "could not write page views; will retry");
            if let Ok(mut map) = self.pending.lock() {
                for (event, n) in batch {
                    *map.entry(event).or_default() += n;
                }
            }
        }
    }
}
