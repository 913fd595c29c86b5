//! LAN sync between the gates of one event, with the cloud absent.
//!
//! Each admission is pushed to every peer at once (a sealed `SyncMessage`
//! carrying the record and this node's summary, `POST /peer/sync`); every
//! `anti_entropy_ms` each peer gets a full sync conversation, so scans missed
//! during a partition arrive when it heals. A peer whose last exchange
//! failed (a push lost on a bad link, a switch that went dark) is not left
//! to the next period: it gets a conversation again after 250 ms, then
//! 500 ms and every second until one succeeds, so a healed link catches up
//! within about a second rather than the whole period. A push not answered
//! within [`HEDGE_AFTER`] (a lost segment or SYN on a lossy link) is raced
//! by a second copy on another connection; whichever is answered first
//! counts (applying records is idempotent, and each copy is sealed with its
//! own nonce).
//! Peers come from the config and from mDNS (see [`crate::discovery`]).
//!
//! Invariants: an envelope that fails the HMAC (under the gossip key of the
//! roster version it names: the newest two are accepted), one outside the
//! replay window or whose nonce was already seen, a message that does not
//! decode, a message for another event and a batch with a record the roster
//! refuses (see [`Store::apply_records`]) are all refused with nothing
//! written; conversations are bounded in rounds. A reply is sealed under the
//! key version of the request it answers, and carries at most `batch`
//! records. A response carries `X-Gatehouse-Time` only when this node's time
//! is trusted.

use crate::store::{Store, StoreError};
use crate::time::{TimeAuthority, TimeSource};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sync_protocol::checkin::CheckinError;
use sync_protocol::roster::RecordRefusal;
use sync_protocol::sync::{EnvelopeHeader, ReplayError, ReplayGuard, open, peek, seal};
use sync_protocol::{DecodeError, EventId, NodeId, ScanRecord, SyncMessage};
use tokio::sync::{mpsc, watch};

/// A gossip key with the roster version it belongs to.
type VersionedKey = (u64, [u8; 32]);

/// Header carrying the sender's clock in unix milliseconds.
pub const TIME_HEADER: &str = "x-gatehouse-time";
/// Most request/response rounds in one conversation.
const MAX_ROUNDS: usize = 64;
/// Remote HLCs further ahead of a trusted clock than this do not move ours.
const MAX_FUTURE_MS: u64 = 5 * 60 * 1000;
/// First catch-up attempt after a failed exchange with a peer; doubled on
/// each further failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between catch-up attempts with a failing peer (a dead
/// peer then costs one small request a second or two).
const MAX_RETRY: Duration = Duration::from_secs(1);
/// A push slower than this is raced by a second copy: on a LAN an answer
/// takes milliseconds, a lost segment costs a 200 ms retransmission and a
/// lost SYN a whole second.
pub const HEDGE_AFTER: Duration = Duration::from_millis(300);
/// How often due catch-up attempts are looked for.
const RETRY_TICK: Duration = Duration::from_millis(50);

/// When a failing peer is tried again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    due: tokio::time::Instant,
    backoff: Duration,
    in_flight: bool,
}

/// A peer exchange or an incoming message failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The envelope's tag does not verify under the event's gossip key.
    #[error("sync envelope refused: {0}")]
    Unauthorized(DecodeError),
    /// The payload is not a sync message.
    #[error("malformed sync message: {0}")]
    Malformed(DecodeError),
    /// The envelope names a roster version whose gossip key this node does
    /// not hold (the sender's roster is newer: sync with the cloud).
    #[error(
        "sync envelope sealed with the gossip key of roster version {0}, which this node does not hold"
    )]
    UnknownKeyVersion(u64),
    /// Authentic but not fresh: outside the replay window, or replayed.
    #[error("sync envelope refused: {0}")]
    Replay(ReplayError),
    /// A record failed the roster check; the batch was refused.
    #[error("record refused: {0}")]
    Refused(RecordRefusal),
    /// A message carrying this node's own id: a discovery loop, or another
    /// device with a cloned identity (a copied SD card).
    #[error("message carries this node's own id (discovery loop or cloned node identity)")]
    Loopback,
    /// For another event.
    #[error("sync message is for another event")]
    WrongEvent,
    /// A record conflicts with a held one; the batch was refused.
    #[error("conflicting record: {0}")]
    Conflict(CheckinError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(StoreError),
    /// The peer could not be reached or answered badly.
    #[error("peer unreachable: {0}")]
    Transport(String),
}

impl From<StoreError> for PeerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongEvent | StoreError::Checkin(CheckinError::WrongEvent(_)) => {
                PeerError::WrongEvent
            }
            StoreError::Checkin(c) => PeerError::Conflict(c),
            StoreError::Refused(r) => PeerError::Refused(r),
            other => PeerError::Store(other),
        }
    }
}

/// How a peer became known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSource {
    /// Listed in the config.
    Config,
    /// Found by mDNS.
    Mdns,
}

/// What this node knows about one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerState {
    /// Base URL of its local API.
    pub url: String,
    /// Its node id, when known.
    pub node_id: Option<NodeId>,
    /// Config or mDNS.
    pub source: PeerSource,
    /// Last successful exchange (best time, unix ms).
    pub last_ok_ms: Option<u64>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Records sent to it.
    pub records_sent: u64,
}

/// The LAN sync hub of one node.
#[derive(Debug)]
pub struct PeerHub {
    store: Arc<Store>,
    time: Arc<TimeSource>,
    node_id: NodeId,
    event_id: EventId,
    batch: usize,
    http: reqwest::Client,
    peers: Mutex<BTreeMap<String, PeerState>>,
    replay: Mutex<ReplayGuard>,
    /// Peers whose last exchange failed, by URL.
    retries: Mutex<BTreeMap<String, Retry>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PeerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PeerError::Store(StoreError::TaskFailed(e.to_string())))
}

impl PeerHub {
    /// A hub for the provisioned store.
    pub fn new(
        store: Arc<Store>,
        time: Arc<TimeSource>,
        timeout: Duration,
        batch: usize,
    ) -> Result<Self, PeerError> {
        let id = store.require_identity()?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| PeerError::Transport(e.to_string()))?;
        Ok(Self {
            store,
            time,
            node_id: id.node_id,
            event_id: id.event_id,
            batch,
            http,
            peers: Mutex::new(BTreeMap::new()),
            replay: Mutex::new(ReplayGuard::new()),
            retries: Mutex::new(BTreeMap::new()),
        })
    }

    /// The newest two gossip keys, newest first (read from the store each
    /// time: a roster fetched by cloud sync brings a new one).
    async fn keys(&self) -> Result<Vec<(u64, [u8; 32])>, PeerError> {
        let store = self.store.clone();
        let keys = blocking(move || store.gossip_keys()).await??;
        if keys.is_empty() {
            return Err(PeerError::Store(StoreError::NotProvisioned));
        }
        Ok(keys)
    }

    fn header(&self, key_version: u64) -> Result<EnvelopeHeader, PeerError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)
            .map_err(|e| PeerError::Transport(format!("no randomness: {e}")))?;
        Ok(EnvelopeHeader {
            sender: self.node_id,
            key_version,
            timestamp_ms: self.time.now().ms,
            nonce,
        })
    }

    /// Seals `msg` under the gossip key of `version`.
    fn seal_with(
        &self,
        (version, key): (u64, [u8; 32]),
        msg: &SyncMessage,
    ) -> Result<Vec<u8>, PeerError> {
        Ok(seal(&key, &self.header(version)?, &msg.encode()))
    }

    /// Opens an envelope under the key of the version it names, checks it is
    /// fresh (replay window, nonce) and decodes its message.
    fn open_checked(
        &self,
        keys: &[(u64, [u8; 32])],
        bytes: &[u8],
    ) -> Result<(EnvelopeHeader, VersionedKey, SyncMessage), PeerError> {
        let named = peek(bytes).map_err(PeerError::Unauthorized)?;
        let key = *keys
            .iter()
            .find(|(v, _)| *v == named.key_version)
            .ok_or(PeerError::UnknownKeyVersion(named.key_version))?;
        let (header, payload) = open(&key.1, bytes).map_err(PeerError::Unauthorized)?;
        self.replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(&header, self.time.now().ms)
            .map_err(PeerError::Replay)?;
        let msg = SyncMessage::decode(payload).map_err(PeerError::Malformed)?;
        if msg.event_id != self.event_id {
            return Err(PeerError::WrongEvent);
        }
        Ok((header, key, msg))
    }

    fn retries_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Retry>> {
        self.retries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a catch-up conversation with every failing peer whose retry
    /// is due (one at a time per peer).
    fn retry_due(self: &Arc<Self>) {
        let now = tokio::time::Instant::now();
        let known: Vec<String> = self.peers_lock().keys().cloned().collect();
        let due: Vec<String> = {
            let mut retries = self.retries_lock();
            retries.retain(|url, _| known.contains(url));
            retries
                .iter_mut()
                .filter(|(_, r)| !r.in_flight && r.due <= now)
                .map(|(url, r)| {
                    r.in_flight = true;
                    url.clone()
                })
                .collect()
        };
        for url in due {
            let hub = self.clone();
            tokio::spawn(async move {
                if let Err(e) = hub.sync_with(&url).await {
                    tracing::debug!(peer = %url, error = %e, "catch-up failed");
                }
                if let Some(r) = hub.retries_lock().get_mut(&url) {
                    r.in_flight = false;
                }
            });
        }
    }

    fn peers_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PeerState>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or refreshes) a peer. A node found again at a new address
    /// replaces its old entry.
    pub fn add_peer(&self, url: &str, source: PeerSource, node_id: Option<NodeId>) {
        let url = url.trim_end_matches('/').to_owned();
        let mut peers = self.peers_lock();
        if let Some(n) = node_id {
            peers.retain(|u, p| p.node_id != Some(n) || *u == url);
        }
        let entry = peers.entry(url.clone()).or_insert(PeerState {
            url,
            node_id,
            source,
            last_ok_ms: None,
            last_error: None,
            records_sent: 0,
        });
        entry.node_id = entry.node_id.or(node_id);
    }

    /// Whether `ip` is the address of a known peer (its URL names it by
    /// IP, as mDNS and the docs' examples do): such a caller may use the
    /// local API's reserved connections.
    pub fn is_peer_address(&self, ip: std::net::IpAddr) -> bool {
        self.peers_lock().keys().any(|url| {
            reqwest::Url::parse(url)
                .ok()
                .is_some_and(|u| match u.host() {
                    Some(url::Host::Ipv4(a)) => std::net::IpAddr::V4(a) == ip,
                    Some(url::Host::Ipv6(a)) => std::net::IpAddr::V6(a).to_canonical() == ip,
                    _ => false,
                })
        })
    }

    /// Known peers.
    pub fn peers(&self) -> Vec<PeerState> {
        self.peers_lock().values().cloned().collect()
    }

    fn note(&self, url: &str, result: &Result<usize, PeerError>) {
        let now = self.time.now().ms;
        if let Some(p) = self.peers_lock().get_mut(url) {
            match result {
                Ok(sent) => {
                    p.last_ok_ms = Some(now);
                    p.last_error = None;
                    p.records_sent += *sent as u64;
                }
                Err(e) => p.last_error = Some(e.to_string()),
            }
        }
        let mut retries = self.retries_lock();
        match result {
            Ok(_) => {
                retries.remove(url);
            }
            Err(_) => {
                let r = retries.entry(url.to_owned()).or_insert(Retry {
                    due: tokio::time::Instant::now(),
                    backoff: Duration::ZERO,
                    in_flight: false,
                });
                r.backoff = (r.backoff * 2).clamp(FIRST_RETRY, MAX_RETRY);
                r.due = tokio::time::Instant::now() + r.backoff;
            }
        }
        drop(retries);
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("gate_peer_exchanges_total", "result" => label).increment(1);
    }

    fn observe_limit(&self) -> u64 {
        let t = self.time.now();
        if t.trusted {
            t.ms + MAX_FUTURE_MS
        } else {
            u64::MAX
        }
    }

    /// Serves `POST /peer/sync`: opens, applies (all or nothing) and answers
    /// with a sealed reply, or `None` when there is nothing to say.
    pub async fn handle(&self, body: Vec<u8>) -> Result<Option<Vec<u8>>, PeerError> {
        let keys = self.keys().await?;
        let (header, key, msg) = self.open_checked(&keys, &body)?;
        if header.sender == self.node_id {
            return Err(PeerError::Loopback);
        }
        let (store, batch, wall, limit) = (
            self.store.clone(),
            self.batch,
            self.time.now().ms,
            self.observe_limit(),
        );
        let received = blocking(move || store.sync_receive(&msg, batch, wall, limit)).await??;
        if received.report.new > 0 {
            metrics::counter!("gate_peer_records_received_total")
                .increment(received.report.new as u64);
        }
        received
            .reply
            .map(|reply| self.seal_with(key, &reply))
            .transpose()
    }

    async fn post(&self, url: &str, body: Vec<u8>) -> Result<reqwest::Response, PeerError> {
        self.http
            .post(format!("{url}/peer/sync"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| PeerError::Transport(e.to_string()))
    }

    /// One request: sends `msg`, returns the peer's reply message.
    async fn exchange(
        &self,
        url: &str,
        msg: &SyncMessage,
    ) -> Result<Option<SyncMessage>, PeerError> {
        let keys = self.keys().await?;
        let mut resp = self.post(url, self.seal_with(keys[0], msg)?).await?;
        // A peer that has not fetched the newest roster yet holds only the
        // previous gossip key: speak that one to it.
        if resp.status().as_u16() == 401 && keys.len() > 1 {
            resp = self.post(url, self.seal_with(keys[1], msg)?).await?;
        }
        if let Some(ms) = resp
            .headers()
            .get(TIME_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.time.observe(ms, TimeAuthority::Peer);
        }
        match resp.status().as_u16() {
            204 => return Ok(None),
            200 => {}
            s => return Err(PeerError::Transport(format!("HTTP {s}"))),
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| PeerError::Transport(e.to_string()))?;
        let (_, _, reply) = self.open_checked(&keys, &bytes)?;
        Ok(Some(reply))
    }

    /// A conversation starting with `first`, until neither side lacks
    /// anything. Returns how many records were sent.
    async fn converse(&self, url: &str, first: SyncMessage) -> Result<usize, PeerError> {
        let mut msg = first;
        let mut sent = 0;
        for _ in 0..MAX_ROUNDS {
            sent += msg.records.len();
            let Some(reply) = self.exchange(url, &msg).await? else {
                return Ok(sent);
            };
            let (store, batch, wall, limit) = (
                self.store.clone(),
                self.batch,
                self.time.now().ms,
                self.observe_limit(),
            );
            let cursor = format!("peer:{url}");
            let received = blocking(move || {
                let r = store.sync_receive(&reply, batch, wall, limit)?;
                store.set_cursor(&cursor, &reply.have, wall)?;
                Ok::<_, StoreError>(r)
            })
            .await??;
            match received.reply {
                Some(next) => msg = next,
                None => return Ok(sent),
            }
        }
        Ok(sent)
    }

    /// Pushes fresh records to every peer at once (one request each, in
    /// parallel), finishing any catch-up the replies ask for.
    pub async fn push(self: &Arc<Self>, records: Vec<ScanRecord>) {
        let store = self.store.clone();
        let Ok(Ok(have)) = blocking(move || store.summary()).await else {
            return;
        };
        let msg = SyncMessage {
            event_id: self.event_id,
            have,
            records,
        };
        let mut tasks = tokio::task::JoinSet::new();
        let urls: Vec<String> = self.peers_lock().keys().cloned().collect();
        for url in urls {
            let (hub, msg) = (self.clone(), msg.clone());
            tasks.spawn(async move {
                let r = hub.hedged(&url, msg).await;
                hub.note(&url, &r);
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// A conversation starting with `msg`; if it is not over within
    /// [`HEDGE_AFTER`], a second one races it and the first success wins.
    async fn hedged(&self, url: &str, msg: SyncMessage) -> Result<usize, PeerError> {
        let first = self.converse(url, msg.clone());
        tokio::pin!(first);
        tokio::select! {
            r = &mut first => return r,
            _ = tokio::time::sleep(HEDGE_AFTER) => {}
        }
        metrics::counter!("gate_peer_hedged_pushes_total").increment(1);
        let second = self.converse(url, msg);
        tokio::pin!(second);
        tokio::select! {
            r = &mut first => match r {
                Ok(n) => Ok(n),
                Err(_) => second.await,
            },
            r = &mut second => match r {
                Ok(n) => Ok(n),
                Err(_) => first.await,
            },
        }
    }

    /// One anti-entropy conversation with `url`, starting from what the
    /// peer was last known to hold.
    pub async fn sync_with(&self, url: &str) -> Result<usize, PeerError> {
        let (store, batch, cursor) = (self.store.clone(), self.batch, format!("peer:{url}"));
        let first = blocking(move || {
            let their = store.cursor(&cursor)?;
            match their {
                Some(t) => store.sync_message(Some(&t), batch),
                None => store.sync_message(None, 0),
            }
        })
        .await??;
        let r = self.converse(url, first).await;
        self.note(url, &r);
        r
    }

    /// Runs pushes and periodic anti-entropy until `shutdown` turns true.
    pub async fn run(
        self: Arc<Self>,
        mut admissions: mpsc::UnboundedReceiver<ScanRecord>,
        period: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let busy = Arc::new(AtomicBool::new(false));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry = tokio::time::interval(RETRY_TICK);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = retry.tick() => self.retry_due(),
                rec = admissions.recv() => {
                    let Some(first) = rec else { break };
                    let mut batch = vec![first];
                    while let Ok(r) = admissions.try_recv() {
                        batch.push(r);
                    }
                    let hub = self.clone();
                    tokio::spawn(async move { hub.push(batch).await });
                }
                _ = tick.tick() => {
                    // One round at a time: a dead peer's timeouts must not pile up.
                    if busy.swap(true, Ordering::SeqCst) {
                        continue;
                    }
                    let (hub, busy) = (self.clone(), busy.clone());
                    tokio::spawn(async move {
                        hub.anti_entropy_round().await;
                        busy.store(false, Ordering::SeqCst);
                    });
                }
            }
        }
    }

    /// One anti-entropy conversation with every peer, in parallel.
    pub async fn anti_entropy_round(self: &Arc<Self>) {
        let mut tasks = tokio::task::JoinSet::new();
        let urls: Vec<String> = self.peers_lock().keys().cloned().collect();
        for url in urls {
            let hub = self.clone();
            tasks.spawn(async move {
                if let Err(e) = hub.sync_with(&url).await {
                    tracing::debug!(peer = %url, error = %e, "anti-entropy failed");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The event.
    pub fn event_id(&self) -> EventId {
        self.event_id
    }
}
