//! The enrolled device at work: the gate engine over the local store (one
//! engine per direction, so switching entry/exit is instant), the LAN peer
//! hub, cloud sync, and the node's local API (peers push to it). Scanning
//! never waits for the network; sync runs on its own tasks and only its
//! state is read here.

use crate::error::AppError;
use crate::search::SearchIndex;
use crate::view::{Counts, GateCount, PeerView, ScanView, SyncView};
use crate::words::{self, Context};
use gate_node::api::{self, AppState};
use gate_node::cloud::CloudClient;
use gate_node::cloud_sync::CloudSync;
use gate_node::config::ApiConfig;
use gate_node::decode::QrDecoder;
use gate_node::engine::{Engine, ScanReport};
use gate_node::peer::{PeerHub, PeerSource};
use gate_node::store::Store;
use gate_node::time::{Clock, TimeSource};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sync_protocol::{Direction, GatePolicy, Outcome, TicketId, TicketState};
use time::UtcOffset;
use tokio::sync::watch;

/// How the device syncs (defaults: the gate node's shipped periods).
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Local API address peers push to.
    pub listen: SocketAddr,
    /// Peer gate URLs (`http://host:port`).
    pub peers: Vec<String>,
    /// Cloud sync period.
    pub cloud_interval_ms: u64,
    /// Longest wait between cloud attempts while offline.
    pub cloud_backoff_max_ms: u64,
    /// Anti-entropy period with peers.
    pub anti_entropy_ms: u64,
    /// Debounce of repeat reads of one code.
    pub debounce_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            peers: Vec::new(),
            cloud_interval_ms: 5_000,
            cloud_backoff_max_ms: 30_000,
            anti_entropy_ms: 2_000,
            debounce_ms: 1_500,
        }
    }
}

/// Tickets from which the search index is rebuilt in the background (the
/// rebuild of 20k tickets takes a few milliseconds; of 1M, about a second).
pub const BACKGROUND_REBUILD_FROM: usize = 20_000;

/// A cloud sync older than this (or failing) shows as offline.
const ONLINE_WINDOW_MS: u64 = 30_000;
/// A peer that answered within this is reachable.
const PEER_WINDOW_MS: u64 = 10_000;

/// The running device.
#[derive(Debug)]
pub struct Device {
    store: Arc<Store>,
    time: Arc<TimeSource>,
    entry: Arc<Engine>,
    exit: Arc<Engine>,
    direction: Mutex<Direction>,
    hub: Arc<PeerHub>,
    cloud: Option<Arc<CloudSync>>,
    stop: watch::Sender<bool>,
    api_addr: SocketAddr,
    /// The search index of the newest manifest version built so far.
    index: Arc<Mutex<Arc<SearchIndex>>>,
    /// Whether a background rebuild of `index` is running.
    rebuilding: Arc<AtomicBool>,
    offset: UtcOffset,
    operator: String,
}

impl Device {
    /// Starts the engine and the sync tasks on the current tokio runtime.
    pub async fn start(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        operator: &str,
        config: &SyncConfig,
        offset: UtcOffset,
    ) -> Result<Self, AppError> {
        let identity = store.require_identity()?;
        let time = Arc::new(TimeSource::new(clock, true, store.hlc_last()?));
        let entry_policy = GatePolicy {
            direction: Direction::Entry,
            ..identity.policy.clone()
        };
        let exit_policy = GatePolicy {
            direction: Direction::Exit,
            ..identity.policy.clone()
        };
        let engine = |policy| {
            Engine::with_policy(
                store.clone(),
                time.clone(),
                None,
                config.debounce_ms,
                operator,
                policy,
            )
            .map(Arc::new)
        };
        let (entry, exit) = (engine(entry_policy)?, engine(exit_policy)?);
        let (push_tx, push_rx) = tokio::sync::mpsc::unbounded_channel();
        entry.set_push(push_tx.clone());
        exit.set_push(push_tx);
        let hub = Arc::new(
            PeerHub::new(
                store.clone(),
                time.clone(),
                Duration::from_millis(1_000),
                500,
            )
            .map_err(|e| AppError::Invalid(format!("peer sync: {e}")))?,
        );
        for p in &config.peers {
            hub.add_peer(p, PeerSource::Config, None);
        }
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(hub.clone().run(
            push_rx,
            Duration::from_millis(config.anti_entropy_ms),
            stop_rx.clone(),
        ));
        let cloud = match (&identity.cloud_url, &identity.device_token) {
            (Some(url), Some(token)) => {
                let client = CloudClient::new(url, Some(token.clone()), Duration::from_secs(10))
                    .map_err(|e| AppError::cloud(url, e))?
                    .with_time(time.clone());
                let sync = Arc::new(CloudSync::new(client, store.clone(), time.clone(), 500)?);
                for engine in [&entry, &exit] {
                    let nudge = sync.clone();
                    engine.set_on_record(Arc::new(move || nudge.scan_recorded()));
                }
                tokio::spawn(sync.clone().run(
                    Duration::from_millis(config.cloud_interval_ms),
                    Duration::from_millis(config.cloud_backoff_max_ms),
                    stop_rx.clone(),
                ));
                Some(sync)
            }
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| AppError::Invalid(format!("cannot listen on {}: {e}", config.listen)))?;
        let api_addr = listener
            .local_addr()
            .map_err(|e| AppError::Invalid(format!("local API address: {e}")))?;
        let state = AppState {
            engine: entry.clone(),
            peers: hub.clone(),
            cloud: cloud.clone(),
            metrics: None,
            scan_endpoint: false,
        };
        let mut api_stop = stop_rx;
        tokio::spawn(api::serve(
            listener,
            state,
            ApiConfig::default().limits(),
            async move {
                let _ = api_stop.wait_for(|s| *s).await;
            },
        ));
        tracing::info!(%api_addr, node = %identity.node_id, "scanner device running");
        Ok(Self {
            store,
            time,
            entry,
            exit,
            direction: Mutex::new(Direction::Entry),
            hub,
            cloud,
            stop,
            api_addr,
            index: Arc::default(),
            rebuilding: Arc::default(),
            offset,
            operator: operator.to_owned(),
        })
    }

    /// The local API address (peers push here).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Entry or exit.
    pub fn direction(&self) -> Direction {
        *self.direction.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switches entry/exit (the caller checks the role).
    pub fn set_direction(&self, d: Direction) {
        *self.direction.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    fn engine(&self) -> &Arc<Engine> {
        match self.direction() {
            Direction::Entry => &self.entry,
            Direction::Exit => &self.exit,
        }
    }

    fn view(&self, report: &ScanReport, direction: Direction) -> Result<ScanView, AppError> {
        let mut ctx = Context::default();
        if let Some(ticket) = report.ticket_id {
            // Manifest facts only for a credential that verified (the
            // decision then names the holder): a forgery learns nothing.
            if report.display_name.is_some() || report.admitted() {
                let entry = self.store.manifest_entry(&ticket)?;
                ctx.tier = entry.as_ref().map(|e| e.tier);
                ctx.zones = entry.as_ref().map(|e| e.zones);
            }
            let fold = self.store.ticket_fold(&ticket)?;
            ctx.double_admission = report.admitted() && !fold.double_admissions.is_empty();
            ctx.presence = words::presence(&self.store, &ticket, self.offset)?;
        }
        Ok(words::scan_view(report, direction, &ctx))
    }

    /// Scans one code (typed, pasted or from a keyboard-wedge scanner).
    pub fn scan(&self, text: &str) -> Result<ScanView, AppError> {
        let text = text.trim();
        if text.is_empty() || text.len() > 4096 {
            return Err(AppError::Invalid(
                "scan a ticket code (empty or too long)".into(),
            ));
        }
        let direction = self.direction();
        let report = self.engine().scan_text(text)?;
        self.view(&report, direction)
    }

    /// Scans every code in one camera frame.
    pub fn scan_frame(
        &self,
        decoder: &dyn QrDecoder,
        frame: &image::GrayImage,
    ) -> Result<Vec<ScanView>, AppError> {
        let direction = self.direction();
        let reports = self.engine().scan_frame(decoder, frame)?;
        reports.iter().map(|r| self.view(r, direction)).collect()
    }

    /// Checks a ticket in by hand (the caller checks the role).
    pub fn check_in_manually(&self, ticket: &str, reason: &str) -> Result<ScanView, AppError> {
        let ticket: TicketId = ticket
            .trim()
            .parse()
            .map_err(|_| AppError::Invalid("not a ticket id".into()))?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::Invalid(
                "say why the ticket is checked in by hand (e.g. phone battery dead)".into(),
            ));
        }
        let direction = self.direction();
        let report = self
            .engine()
            .check_in_manually(&ticket, &self.operator, reason)?;
        self.view(&report, direction)
    }

    /// Runs `f` on the search index of the manifest held. A small index is
    /// rebuilt at once when the manifest moved; from
    /// [`BACKGROUND_REBUILD_FROM`] tickets the rebuild runs on its own thread
    /// and `f` searches the previous version meanwhile (a keystroke never
    /// waits seconds for a festival-sized rebuild; callers re-read the
    /// tickets they show from the store).
    pub fn with_index<T>(&self, f: impl FnOnce(&SearchIndex) -> T) -> Result<T, AppError> {
        let version = self.store.manifest_version()?;
        let mut slot = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let stale = slot.version() != version || (slot.is_empty() && version > 0);
        if stale && slot.len() < BACKGROUND_REBUILD_FROM {
            *slot = Arc::new(SearchIndex::build(version, self.store.manifest_entries()?));
        } else if stale && !self.rebuilding.swap(true, Ordering::AcqRel) {
            let (store, index, flag) = (
                self.store.clone(),
                self.index.clone(),
                self.rebuilding.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("search-index".into())
                .spawn(move || {
                    match store.manifest_entries() {
                        Ok(entries) => {
                            let fresh = Arc::new(SearchIndex::build(version, entries));
                            *index.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                        }
                        Err(e) => tracing::warn!(error = %e, "search index not rebuilt"),
                    }
                    flag.store(false, Ordering::Release);
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "search index rebuild not started");
                self.rebuilding.store(false, Ordering::Release);
            }
        }
        let index = slot.clone();
        drop(slot);
        Ok(f(&index))
    }

    /// Whether a background rebuild of the search index is running.
    pub fn search_index_rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::Acquire)
    }

    /// Where a ticket is, in words, and whether it is inside.
    pub fn presence_words(&self, ticket: &TicketId) -> Result<(String, bool), AppError> {
        Ok(match words::presence(&self.store, ticket, self.offset)? {
            None => ("not checked in".into(), false),
            Some(p) if p.inside => (format!("inside since {}, {}", p.at, p.gate), true),
            Some(p) => (format!("left at {}, {}", p.at, p.gate), false),
        })
    }

    /// Door counts from the check-in log (every device's records held).
    pub fn counts(&self) -> Result<Counts, AppError> {
        let now = self.time.now().ms;
        let records = self.store.recent(100_000)?;
        let mut per_gate: BTreeMap<String, u32> = BTreeMap::new();
        let mut last: HashMap<TicketId, (sync_protocol::Hlc, Direction)> = HashMap::new();
        let (mut admitted, mut recent, mut rejected_here) = (0u32, 0u32, 0u32);
        let me = self.hub.node_id();
        for r in &records {
            if r.outcome != Outcome::Admit {
                if r.id.node == me {
                    rejected_here += 1;
                }
                continue;
            }
            let newer = last.get(&r.ticket_id).is_none_or(|(h, _)| r.hlc > *h);
            if newer {
                last.insert(r.ticket_id, (r.hlc, r.direction));
            }
            if r.direction == Direction::Entry {
                admitted += 1;
                *per_gate.entry(r.gate.clone()).or_default() += 1;
                if r.hlc.physical_ms() + 300_000 >= now {
                    recent += 1;
                }
            }
        }
        let inside = last
            .values()
            .filter(|(_, d)| *d == Direction::Entry)
            .count() as u32;
        let capacity = self.with_index(|ix| ix.valid() as u32)?;
        let mut per_gate: Vec<GateCount> = per_gate
            .into_iter()
            .map(|(gate, admitted)| GateCount { gate, admitted })
            .collect();
        per_gate.sort_by(|a, b| b.admitted.cmp(&a.admitted).then(a.gate.cmp(&b.gate)));
        Ok(Counts {
            admitted,
            inside,
            capacity,
            last_5_min: recent,
            per_gate,
            rejected_here,
        })
    }

    /// The sync bar.
    pub fn sync_view(&self) -> Result<SyncView, AppError> {
        let now = self.time.now().ms;
        let status = self.cloud.as_ref().map(|c| c.status()).unwrap_or_default();
        let waiting = self.store.cloud_backlog()?.pending_own as u32;
        let online = self.cloud.is_some()
            && status.last_error.is_none()
            && status
                .last_sync_ms
                .is_some_and(|t| t + ONLINE_WINDOW_MS >= now);
        let info = self.store.manifest_info()?;
        let issued = self.store.manifest_issued_at()?;
        let scans = |n: u32| {
            if n == 1 {
                "1 scan".to_owned()
            } else {
                format!("{n} scans")
            }
        };
        let summary = match (online, waiting) {
            (true, 0) => "Online: all scans uploaded".to_owned(),
            (true, n) => format!("Online: uploading, {} waiting", scans(n)),
            (false, n) => format!("Offline: {} waiting, scanning goes on", scans(n)),
        };
        Ok(SyncView {
            online,
            summary,
            last_sync_ms: status.last_sync_ms.map(|t| t as f64),
            last_sync_age_secs: status
                .last_sync_ms
                .map(|t| now.saturating_sub(t) as f64 / 1000.0),
            waiting,
            peers: self
                .hub
                .peers()
                .into_iter()
                .map(|p| PeerView {
                    reachable: p.last_ok_ms.is_some_and(|t| t + PEER_WINDOW_MS >= now)
                        && p.last_error.is_none(),
                    url: p.url,
                })
                .collect(),
            manifest_version: info.version as f64,
            manifest_age_secs: issued
                .filter(|_| info.version > 0)
                .map(|s| (now / 1000).saturating_sub(s) as f64),
            manifest_entries: info.entries as u32,
            last_error: if online { None } else { status.last_error },
        })
    }

    /// The state of one ticket in the log.
    pub fn ticket_state(&self, ticket: &TicketId) -> Result<TicketState, AppError> {
        Ok(self.store.ticket_fold(ticket)?.state)
    }

    /// Stops the sync tasks and the local API.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.shutdown();
    }
}
