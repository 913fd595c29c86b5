//! Keeping the node and the cloud in step: the manifest (delta when the
//! chain allows, full manifest on 409, gap or fork) and the check-ins (every
//! record the cloud's last summary lacks, in batches of at most `batch`,
//! until neither side has anything left; never one request per scan).
//!
//! When the cloud is unreachable the period backs off exponentially up to
//! `backoff_max`; nothing on the admission path waits for it. The cloud's
//! summary is stored as the "cloud" cursor only after it answered, so a lost
//! answer means a resend, which the cloud ignores by scan id.
//!
//! Besides the periodic pull, [`CloudSync::run`] holds the cloud's push
//! stream open (`crate::cloud_push`: news of a manifest or roster change is
//! fetched at once) and uploads check-ins [`UPLOAD_DEBOUNCE`] after a scan
//! is recorded (every scan in that window rides in one batch). The three
//! share the fetch and upload steps, each behind its own lock, so a push
//! and a poll never apply the same delta twice.

use crate::cloud::{CloudClient, CloudError, DeltaFetch};
use crate::cloud_push::{PushEvent, PushStatus};
use crate::store::{Store, StoreError};
use crate::time::TimeSource;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sync_protocol::EventId;
use sync_protocol::checkin::Summary;
use sync_protocol::manifest::ManifestError;
use tokio::sync::{Mutex as AsyncMutex, Notify, watch};

/// Most batches in one sync (a 10-minute outage at one gate is a few).
const MAX_ROUNDS: usize = 100;
/// Wait after a scan before uploading it: scans at a busy lane share a
/// request, and the cloud has them well within 2 s.
pub const UPLOAD_DEBOUNCE: Duration = Duration::from_millis(100);

/// A cloud sync step failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The cloud call failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The store refused what the cloud sent, or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cloud sync state for `/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CloudStatus {
    /// Last complete sync (best time, unix ms).
    pub last_sync_ms: Option<u64>,
    /// Last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Current wait before the next attempt.
    pub next_delay_ms: u64,
    /// The push stream.
    pub push: PushStatus,
}

/// What one sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Manifest version after.
    pub manifest_version: u64,
    /// Records sent.
    pub pushed: usize,
    /// Records received that were new.
    pub pulled: usize,
    /// Requests made for check-ins.
    pub batches: usize,
}

/// The cloud sync task of one node.
#[derive(Debug)]
pub struct CloudSync {
    client: CloudClient,
    store: Arc<Store>,
    time: Arc<TimeSource>,
    event: EventId,
    batch: usize,
    status: Mutex<CloudStatus>,
    /// One manifest fetch, one roster fetch, one upload at a time.
    manifest_lock: AsyncMutex<()>,
    roster_lock: AsyncMutex<()>,
    checkins_lock: AsyncMutex<()>,
    /// A scan was recorded (a permit waits if no upload is listening).
    scans: Notify,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Store(StoreError::TaskFailed(e.to_string())))?
        .map_err(SyncError::Store)
}

impl CloudSync {
    /// Sync for the provisioned store through `client`.
    pub fn new(
        client: CloudClient,
        store: Arc<Store>,
        time: Arc<TimeSource>,
        batch: usize,
    ) -> Result<Self, StoreError> {
        let event = store.require_identity()?.event_id;
        Ok(Self {
            client,
            store,
            time,
            event,
            batch,
            status: Mutex::new(CloudStatus::default()),
            manifest_lock: AsyncMutex::new(()),
            roster_lock: AsyncMutex::new(()),
            checkins_lock: AsyncMutex::new(()),
            scans: Notify::new(),
        })
    }

    /// The cloud client.
    pub fn client(&self) -> &CloudClient {
        &self.client
    }

    /// The node's event.
    pub fn event(&self) -> &EventId {
        &self.event
    }

    /// Tells the sync a scan was recorded: it is uploaded within
    /// [`UPLOAD_DEBOUNCE`] while the cloud is reachable (the engine calls
    /// this after the record is durable).
    pub fn scan_recorded(&self) {
        self.scans.notify_one();
    }

    /// Changes the push part of the status.
    pub(crate) fn update_push(&self, f: impl FnOnce(&mut PushStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()).push);
    }

    /// Acts on one push event: fetches what it announces. A failure is
    /// logged only; the periodic pull catches up.
    pub(crate) async fn on_push(&self, event: PushEvent) {
        let result = match event {
            PushEvent::Manifest(m) => {
                let store = self.store.clone();
                match blocking(move || store.manifest_info()).await {
                    Ok(held) if held.version >= m.version => return,
                    _ => self.refresh_manifest().await.map(drop),
                }
            }
            PushEvent::Roster(_) => self.refresh_roster().await.map(drop),
            PushEvent::Other(_) => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "fetching what the push announced failed; the poll will retry");
        }
    }

    /// The state for `/status`.
    pub fn status(&self) -> CloudStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Brings the device roster (and with it the gossip key) up to date;
    /// returns the version held after. A delta that does not chain is
    /// followed by a full roster.
    pub async fn refresh_roster(&self) -> Result<u64, SyncError> {
        let _one = self.roster_lock.lock().await;
        let store = self.store.clone();
        let held = blocking(move || store.roster_info()).await?.version;
        let Some(fetched) = self.client.roster(&self.event, held).await? else {
            return Ok(held);
        };
        let store = self.store.clone();
        let bytes = fetched.roster.clone();
        match blocking(move || store.apply_roster(&bytes, Some(fetched.gossip_key))).await {
            Ok(v) => return Ok(v),
            Err(SyncError::Store(StoreError::Manifest(
                ManifestError::Gap { .. } | ManifestError::Fork(_),
            ))) => tracing::warn!("roster delta does not chain: fetching the full roster"),
            Err(e) => return Err(e),
        }
        let Some(full) = self.client.roster(&self.event, 0).await? else {
            return Ok(held);
        };
        let store = self.store.clone();
        blocking(move || store.apply_roster(&full.roster, Some(full.gossip_key))).await
    }

    /// Brings the manifest up to date; returns the version held after.
    pub async fn refresh_manifest(&self) -> Result<u64, SyncError> {
        let _one = self.manifest_lock.lock().await;
        let store = self.store.clone();
        let held = blocking(move || store.manifest_info()).await?.version;
        if held > 0 {
            match self.client.delta(&self.event, held).await? {
                DeltaFetch::UpToDate(retired) => {
                    self.apply_retirements(retired).await?;
                    let (store, at) = (self.store.clone(), self.time.now().ms / 1000);
                    blocking(move || store.confirm_manifest_current(at)).await?;
                    return Ok(held);
                }
                DeltaFetch::Delta(bytes, retired) => {
                    self.apply_retirements(retired).await?;
                    let store = self.store.clone();
                    match blocking(move || store.apply_delta(&bytes)).await {
                        Ok(a) => return Ok(a.to),
                        Err(SyncError::Store(StoreError::Manifest(
                            ManifestError::Gap { .. } | ManifestError::Fork(_),
                        ))) => {
                            tracing::warn!(
                                "manifest delta does not chain: fetching the full manifest"
                            );
                        }
                        Err(e) => return Err(e),
                    }
                }
                DeltaFetch::FullRequired => {}
            }
        }
        let fetched = self.client.manifest(&self.event).await?;
        self.apply_retirements(fetched.retirements).await?;
        let store = self.store.clone();
        Ok(blocking(move || store.apply_manifest(&fetched.bytes))
            .await?
            .to)
    }

    /// Applies the event's key retirements before the manifest they came
    /// with: a manifest signed by a retired key is then refused.
    async fn apply_retirements(&self, retired: Vec<Vec<u8>>) -> Result<(), SyncError> {
        if retired.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let fresh = blocking(move || store.apply_retirements(&retired)).await?;
        if fresh > 0 {
            tracing::warn!(
                retired = fresh,
                "the organizer retired event signing keys: credentials they signed are refused"
            );
        }
        Ok(())
    }

    /// Pushes what the cloud lacks and applies what it sends, batch by
    /// batch, until neither side has anything left.
    pub async fn sync_checkins(&self) -> Result<SyncReport, SyncError> {
        let _one = self.checkins_lock.lock().await;
        let mut report = SyncReport::default();
        let status = self.gate_status().await;
        for _ in 0..MAX_ROUNDS {
            let (store, batch) = (self.store.clone(), self.batch);
            let msg = blocking(move || {
                let cursor = store.cursor("cloud")?.unwrap_or_else(Summary::default);
                store.sync_message(Some(&cursor), batch)
            })
            .await?;
            let reply = self
                .client
                .sync_checkins_reporting(&self.event, &msg, status.as_deref())
                .await?;
            report.batches += 1;
            report.pushed += msg.records.len();
            let (store, wall) = (self.store.clone(), self.time.now().ms);
            let pushed_nothing = msg.records.is_empty();
            let got_nothing = reply.records.is_empty();
            let applied = blocking(move || {
                let r = store.apply_records(&reply.records, wall, wall + 300_000)?;
                store.set_cursor("cloud", &reply.have, wall)?;
                Ok(r)
            })
            .await?;
            report.pulled += applied.new;
            if pushed_nothing && got_nothing {
                break;
            }
        }
        metrics::counter!("gate_cloud_records_pushed_total").increment(report.pushed as u64);
        Ok(report)
    }

    /// What the gate tells the cloud's fleet view (`X-Gate-Status`): scans
    /// waiting for upload, manifest version, clock state, software version.
    /// `None` if the store cannot say (the sync goes ahead without it).
    async fn gate_status(&self) -> Option<String> {
        let store = self.store.clone();
        let (backlog, manifest) =
            blocking(move || Ok((store.cloud_backlog()?, store.manifest_info()?)))
                .await
                .ok()?;
        let time = self.time.now();
        let status = sync_protocol::device_api::GateStatusReport {
            scans_waiting: Some(backlog.pending_own),
            manifest_version: Some(manifest.version),
            clock: Some(time.authority.as_str().to_owned()),
            clock_trusted: Some(time.trusted),
            software: Some(env!("CARGO_PKG_VERSION").to_owned()),
        };
        serde_json::to_string(&status).ok()
    }

    /// One full sync: roster, manifest, then check-ins (records are checked
    /// against the roster, so it comes first).
    pub async fn sync_once(&self) -> Result<SyncReport, SyncError> {
        self.refresh_roster().await?;
        let version = self.refresh_manifest().await?;
        let mut report = self.sync_checkins().await?;
        report.manifest_version = version;
        Ok(report)
    }

    /// Until `shutdown`: the periodic pull ([`Self::poll`]), the push
    /// stream (`crate::cloud_push::listen`) and uploads soon after scans.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        backoff_max: Duration,
        shutdown: watch::Receiver<bool>,
    ) {
        tokio::join!(
            self.clone().poll(interval, backoff_max, shutdown.clone()),
            crate::cloud_push::listen(self.clone(), backoff_max, shutdown.clone()),
            self.upload_after_scans(shutdown),
        );
    }

    /// Uploads check-ins [`UPLOAD_DEBOUNCE`] after a scan, while the last
    /// sync succeeded (when the cloud is away the poll's backoff decides
    /// when to try again, not every scan).
    async fn upload_after_scans(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.scans.notified() => {}
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(UPLOAD_DEBOUNCE) => {}
            }
            if self.status().consecutive_failures > 0 {
                continue;
            }
            match self.sync_checkins().await {
                Ok(r) => tracing::debug!(?r, "scans uploaded"),
                Err(e) => {
                    tracing::debug!(error = %e, "upload after a scan failed; the poll retries")
                }
            }
        }
    }

    /// Syncs every `interval` while the cloud answers, backing off
    /// exponentially (from 1 s up to `backoff_max`) while it does not.
    pub async fn poll(
        self: Arc<Self>,
        interval: Duration,
        backoff_max: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut delay = Duration::ZERO;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            let result = self.sync_once().await;
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(r) => {
                    status.last_sync_ms = Some(self.time.now().ms);
                    status.last_error = None;
                    status.consecutive_failures = 0;
                    delay = interval;
                    tracing::debug!(?r, "cloud sync done");
                }
                Err(e) => {
                    status.last_error = Some(e.to_string());
                    status.consecutive_failures = status.consecutive_failures.saturating_add(1);
                    let exp = 1u64 << status.consecutive_failures.min(16);
                    delay = Duration::from_millis(500 * exp).min(backoff_max);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cloud sync failed");
                }
            }
            status.next_delay_ms = delay.as_millis() as u64;
            metrics::gauge!("gate_cloud_consecutive_failures").set(status.consecutive_failures);
        }
    }
}
