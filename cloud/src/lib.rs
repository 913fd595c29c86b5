//! Gatehouse cloud: one axum service (a modular monolith, stateless so it
//! scales out as replicas over one PostgreSQL) serving identity, the gateway
//! concerns, events and admin analytics, ticketing, commerce (orders,
//! payments, transfers and resale), gate devices, device sync and check-in
//! validation.
//!
//! Each domain module (`auth`, `users`, `events`, `tickets`, `orders`,
//! `payments`, `market`, `devices`, `device_sync`, `checkin`) exposes its own
//! `router()`; [`http::app`] assembles them. [`serve`] is the whole service:
//! `main.rs` only reads configuration and calls it, and tests call it on
//! port 0.

pub mod auth;
pub mod chain;
pub mod checkin;
pub mod commerce;
pub mod config;
pub mod console;
pub mod crypto;
pub mod device_sync;
pub mod devices;
pub mod error;
pub mod events;
pub mod http;
pub mod market;
pub mod model;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod push;
pub mod startup;
pub mod state;
pub mod store;
pub mod tickets;
pub mod users;
pub mod validate;
pub mod wallets;

use crate::auth::jwt::Tokens;
use crate::auth::password::Passwords;
use crate::config::{Config, Secret};
use crate::crypto::{KeyVault, load_or_create_secret};
use crate::model::SystemClock;
use crate::state::{AppState, ViewCounter};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Secrets could not be loaded.
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// Configured as one of several replicas, with a key left to be
    /// generated per process (each replica would sign tokens or seal keys
    /// with its own, and the others would refuse what it made).
    #[error(
        "this process is one of several replicas ({why}), so it must not generate keys of its own: \
         set {} to the same value on every replica (`cloud keygen` prints a new key)",
        startup::key_list(.missing)
    )]
    SharedKeyRequired {
        /// The keys to configure.
        missing: Vec<startup::SharedKey>,
        /// What said this is a replica.
        why: String,
    },
    /// The configured master key does not open the keys sealed in the
    /// database (a database re-sealed by `cloud rekey`, or the wrong key).
    #[error(
        "keys.master_key (CLOUD_KEYS__MASTER_KEY) does not open the {0} sealed in this database: \
         if the database was re-sealed with `cloud rekey`, start with the new master key; \
         otherwise configure the key that sealed it (from the secret store or backup)"
    )]
    MasterKeyMismatch(String),
    /// Start-up task failed.
    #[error("start-up: {0}")]
    Startup(String),
    /// The listener failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the shared state: secrets, database (migrated), hashing, tokens.
pub async fn build_state(config: Config) -> Result<AppState, ServeError> {
    config.validate()?;
    startup::refuse_generated_keys(&config)?;
    let mut config = config;
    let secret_dir = config.data_dir.clone();
    let mut keys = startup::KeyFiles::default();
    if config.auth.jwt_secret.expose().is_empty() {
        keys.jwt = Some(startup::key_file(&secret_dir, "jwt.key"));
        config.auth.jwt_secret = load_or_create_secret::<32>(&secret_dir, "jwt.key")?;
    }
    if config.keys.master_key.expose().is_empty() {
        keys.master = Some(startup::key_file(&secret_dir, "master.key"));
        config.keys.master_key = load_or_create_secret::<32>(&secret_dir, "master.key")?;
    }
    let url = config.database_url();
    if url.starts_with("sqlite:") && config.database.url.expose().is_empty() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let store = store::connect(&url, config.database.max_connections).await?;
    let vault = KeyVault::from_hex(&config.keys.master_key)?;
    if let Some(what) = crypto::rekey::check(store.as_ref(), &vault).await? {
        return Err(ServeError::MasterKeyMismatch(what));
    }
    let tokens = Tokens::new(&config.auth.jwt_secret, config.auth.access_ttl_secs);
    let passwords = Passwords::new(config.auth.max_concurrent_hashes)
        .map_err(|e| ServeError::Startup(e.to_string()))?;
    let stripe = payments::stripe::StripeGateway::from_config(&config.payments)
        .map_err(ServeError::Startup)?;
    let login_guard = Arc::new(auth::guard::LoginGuard::new(&config.rate_limit));
    let shared_limits = match config.rate_limit.store {
        config::LimiterStore::Redis if config.rate_limit.enabled => Some(
            http::shared_limit::SharedStore::new(
                config.rate_limit.redis_url.expose(),
                Duration::from_millis(config.rate_limit.redis_timeout_ms),
            )
            .map_err(|e| ServeError::Config(config::ConfigError::Invalid(e)))?,
        ),
        _ => None,
    };
    let state = AppState {
        login_guard,
        shared_limits,
        config: Arc::new(config),
        store,
        vault,
        tokens,
        passwords,
        clock: Arc::new(SystemClock),
        views: ViewCounter::default(),
        push: push::PushHub::default(),
        metrics: http::health::prometheus(),
        stripe,
        group: Arc::default(),
    };
    let admin = auth::bootstrap_admin(&state)
        .await
        .map_err(|e| ServeError::Startup(format!("bootstrap admin: {e}")))?;
    startup::log(&state.config, state.store.backend(), &keys, &admin);
    Ok(state)
}

/// Runs the service on `listener` until `shutdown` resolves, then drains
/// in-flight requests, writes buffered page views and closes the pool.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = build_state(config).await?;
    let (router, limiters) = http::app(state.clone());
    let upkeep = tokio::spawn(upkeep(state.clone(), limiters));
    let sweeper = tokio::spawn(orders::sweeper::run(state.clone()));
    let minter = chain::worker::Minter::new(&state)
        .map_err(ServeError::Startup)?
        .filter(|_| state.config.chain.run_worker)
        .map(|m| tokio::spawn(m.run()));
    let notifier = notifications::worker::start(&state).map_err(ServeError::Startup)?;
    tracing::info!(addr = %listener.local_addr()?, backend = state.store.backend(), "cloud listening");
    // Push streams never end on their own: close them when shutdown
    // starts, so draining waits for real requests only.
    let hub = state.push.clone();
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    let served = http_guard::Server::new(state.config.server.limits())
        .trusting(http_guard::this_host)
        .serve(listener, router, shutdown)
        .await;
    upkeep.abort();
    sweeper.abort();
    if let Some(m) = minter {
        m.abort();
    }
    if let Some(n) = notifier {
        n.abort();
    }
    state.views.flush(state.store.as_ref()).await;
    state.store.close().await;
    served.map_err(ServeError::Io)
}

/// Background chores: write buffered page views, purge idle rate-limit
/// buckets, drain metric histograms.
async fn upkeep(state: AppState, limiters: http::Limiters) {
    let every = Duration::from_millis(state.config.server.view_flush_ms.max(50));
    let mut tick = tokio::time::interval(every);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        state.views.flush(state.store.as_ref()).await;
        n += 1;
        if n.is_multiple_of(60) {
            for l in &limiters.0 {
                l.retain_recent();
            }
            state.login_guard.purge(std::time::Instant::now());
            state.metrics.run_upkeep();
        }
    }
}

/// A 64-hex-digit random key (for `cloud keygen`).
pub fn generate_key() -> Result<Secret, crypto::CryptoError> {
    Ok(Secret::new(hex::encode(crypto::random_bytes::<32>()?)))
}
