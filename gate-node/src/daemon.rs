//! `gate-node run`: wires the store, time source, engine, peer hub, mDNS,
//! cloud sync and local API together, and shuts them down in order.
//!
//! The binary only parses arguments and calls [`run`]; tests and benchmarks
//! call it directly with a port-0 listener and a fake or real clock.

use crate::actuator::Actuator;
use crate::api::{self, AppState};
use crate::cloud::CloudClient;
use crate::cloud_sync::CloudSync;
use crate::config::Config;
use crate::engine::Engine;
use crate::peer::{PeerHub, PeerSource};
use crate::source::ScanSource;
use crate::store::{Store, StoreError};
use crate::time::{Clock, TimeSource};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use sync_protocol::Hlc;
use tokio::sync::watch;

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store failed or the node is not provisioned.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Another start-up failure.
    #[error("{0}")]
    Other(String),
}

/// Process-wide Prometheus recorder (installed once; later calls reuse it).
pub fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}

/// Runs the node until `shutdown` completes. `on_listening` is called with
/// the bound API address once the node is ready. `source` (if any) is fed
/// into the engine on a thread of its own; `actuator` (if any) is dropped at
/// shutdown, after the API stopped, so a pulse under way completes and
/// every line ends off.
pub async fn run(
    config: Config,
    clock: Arc<dyn Clock>,
    actuator: Option<Box<dyn Actuator>>,
    source: Option<ScanSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    config
        .validate()
        .map_err(|e| DaemonError::Other(e.to_string()))?;
    let store = Arc::new(Store::open_in(&config.data_dir)?);
    let identity = store.require_identity()?;
    let time = Arc::new(TimeSource::new(
        clock,
        config.trust_system_clock,
        store.hlc_last()?,
    ));
    let engine = Arc::new(
        Engine::new(
            store.clone(),
            time.clone(),
            actuator,
            config.debounce_ms,
            &config.operator,
        )
        .map_err(|e| DaemonError::Other(e.to_string()))?,
    );
    let (push_tx, push_rx) = tokio::sync::mpsc::unbounded_channel();
    engine.set_push(push_tx);
    let hub = Arc::new(
        PeerHub::new(
            store.clone(),
            time.clone(),
            Duration::from_millis(config.sync.peer_timeout_ms),
            config.sync.batch,
        )
        .map_err(|e| DaemonError::Other(e.to_string()))?,
    );
    for p in &config.peers {
        hub.add_peer(p, PeerSource::Config, None);
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: config.listen,
            source,
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(hub.clone().run(
        push_rx,
        Duration::from_millis(config.sync.anti_entropy_ms),
        stop_rx.clone(),
    ));
    if config.mdns {
        match crate::discovery::start(hub.clone(), addr, stop_rx.clone()) {
            Ok(handle) => {
                tasks.spawn(async move {
                    let _ = handle.await;
                });
            }
            Err(e) => tracing::warn!(error = %e, "mDNS discovery disabled"),
        }
    }
    let cloud = match config.cloud_url.clone().or(identity.cloud_url.clone()) {
        Some(url) if identity.device_token.is_some() => {
            let client =
                CloudClient::new(&url, identity.device_token.clone(), Duration::from_secs(30))
                    .map_err(|e| DaemonError::Other(e.to_string()))?
                    .with_time(time.clone());
            let sync = Arc::new(CloudSync::new(
                client,
                store.clone(),
                time.clone(),
                config.sync.batch,
            )?);
            let nudge = sync.clone();
            engine.set_on_record(Arc::new(move || nudge.scan_recorded()));
            tasks.spawn(sync.clone().run(
                Duration::from_millis(config.sync.cloud_interval_ms),
                Duration::from_millis(config.sync.cloud_backoff_max_ms),
                stop_rx.clone(),
            ));
            Some(sync)
        }
        _ => None,
    };
    tasks.spawn(persist_time(store.clone(), time.clone(), stop_rx.clone()));
    let stop_source = Arc::new(AtomicBool::new(false));
    let source_thread = match source {
        Some(src) => {
            let (engine, stop) = (engine.clone(), stop_source.clone());
            tracing::info!(source = src.name(), "scanning");
            let spawned = std::thread::Builder::new()
                .name("scan-source".into())
                .spawn(move || src.run(&engine, &stop))
                .map_err(|e| DaemonError::Other(format!("cannot start the scan source: {e}")))?;
            Some(spawned)
        }
        None => None,
    };
    let state = AppState {
        engine: engine.clone(),
        peers: hub.clone(),
        cloud,
        metrics: metrics_handle(),
        scan_endpoint: config.scan_endpoint,
    };
    tracing::info!(%addr, node = %identity.node_id, event = %identity.event_id, "gate node running");
    on_listening(addr);
    crate::service::ready(&format!(
        "admitting for event {} on {addr}",
        identity.event_id
    ));
    // Pings start after READY=1: systemd's watchdog runs from readiness on.
    if let Some(every) = crate::service::watchdog_interval() {
        tasks.spawn(crate::service::watchdog(
            store.clone(),
            every,
            stop_rx.clone(),
        ));
    }
    let served = api::serve(listener, state, config.api.limits(), shutdown).await;
    tracing::info!("shutting down");
    crate::service::stopping();
    stop_source.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // A source blocked reading stdin or a quiet serial port cannot be
    // interrupted; it holds the engine but does no harm once the actuator is
    // gone, and the process is about to exit.
    if let Some(t) = source_thread
        && t.is_finished()
    {
        let _ = t.join();
    }
    drop(engine.take_actuator());
    persist_now(&store, &time);
    served.map_err(|e| DaemonError::Other(format!("local API: {e}")))
}

fn persist_now(store: &Store, time: &TimeSource) {
    let now = time.now();
    if now.trusted
        && let Err(e) = store.raise_hlc(Hlc::new(now.ms, 0))
    {
        tracing::warn!(error = %e, "could not persist the last known time");
    }
}

/// Persists a trusted time every 30 s, so a reboot without a battery clock
/// starts from a recent floor even when no scan happened.
async fn persist_time(store: Arc<Store>, time: Arc<TimeSource>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                let (s, t) = (store.clone(), time.clone());
                let _ = tokio::task::spawn_blocking(move || persist_now(&s, &t)).await;
            }
        }
    }
}
