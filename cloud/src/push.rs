//! The push channel of the device API: `GET /sync/events/{id}/push`, a
//! server-sent event stream that tells a connected gate or scanner app, within
//! a poll period of the commit, that its event has a new manifest version
//! (sale, refund, cancel, transfer, event status change) or that its devices
//! changed (enrollment, revocation). The device then fetches the delta or the
//! roster as its periodic pull would; the stream carries no data that must be
//! trusted. Contract and the reasons for SSE and polling: `docs/device-api.md`.
//!
//! Where news comes from: one task per replica (running only while a device
//! is connected to it) reads the heads of every watched event in one query
//! ([`crate::store::PushStore::push_heads`]) every [`POLL`], and fans them out
//! in process through one `watch` channel per event. The heads are read from
//! the committed log, so a change committed through any replica, by any code
//! path, reaches the devices connected to every replica; nothing in the write
//! paths has to remember to notify. Heads only grow, and each stream compares
//! against what it last sent, so a missed poll delays news but never loses it.

use crate::devices::auth::EventDevice;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::EventId;
use crate::state::AppState;
use crate::store::{PushHead, Store};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use sync_protocol::NodeId;
use sync_protocol::device_api::{PUSH_MANIFEST, PUSH_ROSTER, PushManifest, PushRoster};
use tokio::sync::watch;

/// How often a replica reads the watched heads: the push's share of the
/// commit-to-gate latency (one small indexed query per period, whatever the
/// number of connected devices).
pub const POLL: Duration = Duration::from_millis(100);
/// A comment line this often keeps proxies and the device's idle timeout
/// from closing a quiet stream.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
/// A stream ends after this; the device reconnects at once. Connections
/// rebalance across replicas and the token is checked again.
pub const LIFETIME: Duration = Duration::from_secs(600);

/// What a stream compares: the manifest version and the device counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    manifest: u64,
    devices: u64,
    revoked: u64,
}

impl From<PushHead> for Head {
    fn from(h: PushHead) -> Self {
        Self {
            manifest: h.manifest_version,
            devices: h.devices,
            revoked: h.revoked,
        }
    }
}

/// Raises `cur` to `new` field by field; whether anything changed.
fn raise(cur: &mut Head, new: Head) -> bool {
    let next = Head {
        manifest: cur.manifest.max(new.manifest),
        devices: cur.devices.max(new.devices),
        revoked: cur.revoked.max(new.revoked),
    };
    let changed = next != *cur;
    *cur = next;
    changed
}

#[derive(Debug, Default)]
struct Watched {
    events: HashMap<EventId, watch::Sender<Head>>,
    polling: bool,
}

/// The replica's push fan-out (cheap to clone; in [`AppState`]).
#[derive(Clone, Debug)]
pub struct PushHub {
    watched: Arc<Mutex<Watched>>,
    closing: Arc<watch::Sender<bool>>,
}

impl Default for PushHub {
    fn default() -> Self {
        Self {
            watched: Arc::default(),
            closing: Arc::new(watch::channel(false).0),
        }
    }
}

fn lock(w: &Mutex<Watched>) -> MutexGuard<'_, Watched> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

impl PushHub {
    /// Watches `head`'s event from `head` on, starting the poll task if
    /// this is the replica's first watched event.
    fn subscribe(&self, store: &Arc<dyn Store>, head: PushHead) -> watch::Receiver<Head> {
        let mut w = lock(&self.watched);
        let rx = match w.events.get(&head.event_id) {
            Some(tx) => {
                tx.send_if_modified(|cur| raise(cur, head.into()));
                tx.subscribe()
            }
            None => {
                let (tx, rx) = watch::channel(Head::from(head));
                w.events.insert(head.event_id, tx);
                rx
            }
        };
        if !w.polling {
            w.polling = true;
            tokio::spawn(poll(self.watched.clone(), store.clone()));
        }
        rx
    }

    /// Ends every open stream (at shutdown, so draining does not wait for
    /// them); devices reconnect to another replica.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// Reads the watched heads every [`POLL`] until nothing is watched.
async fn poll(watched: Arc<Mutex<Watched>>, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let events: Vec<EventId> = {
            let mut w = lock(&watched);
            w.events.retain(|_, tx| tx.receiver_count() > 0);
            if w.events.is_empty() {
                w.polling = false;
                return;
            }
            w.events.keys().copied().collect()
        };
        match store.push_heads(&events).await {
            Ok(heads) => {
                let w = lock(&watched);
                for h in heads {
                    if let Some(tx) = w.events.get(&h.event_id) {
                        tx.send_if_modified(|cur| raise(cur, h.into()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "push: reading event heads failed; retrying"),
        }
    }
}

/// Counts open streams in `cloud_push_streams` while alive.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!("cloud_push_streams").increment(1.0);
        Self
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("cloud_push_streams").decrement(1.0);
    }
}

/// One device's stream.
struct Feed {
    store: Arc<dyn Store>,
    device: NodeId,
    rx: watch::Receiver<Head>,
    closing: watch::Receiver<bool>,
    until: tokio::time::Instant,
    sent: Option<Head>,
    queue: VecDeque<Event>,
    _open: Open,
}

fn event<T: serde::Serialize>(name: &str, body: &T) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(body).unwrap_or_default())
}

impl Feed {
    /// Whether the device was revoked since its stream opened.
    async fn revoked(&self) -> bool {
        self.store
            .device(self.device)
            .await
            .is_ok_and(|d| d.revoked_at.is_some())
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some((Ok(e), self));
            }
            let head = *self.rx.borrow_and_update();
            let sent = self.sent.replace(head);
            if sent.is_none_or(|s| s.manifest != head.manifest) {
                let body = PushManifest {
                    version: head.manifest,
                };
                self.queue.push_back(event(PUSH_MANIFEST, &body));
            }
            if sent.is_none_or(|s| (s.devices, s.revoked) != (head.devices, head.revoked)) {
                if sent.is_some() && self.revoked().await {
                    return None;
                }
                let body = PushRoster {
                    devices: head.devices,
                    revoked: head.revoked,
                };
                self.queue.push_back(event(PUSH_ROSTER, &body));
            }
            if !self.queue.is_empty() {
                continue;
            }
            tokio::select! {
                changed = self.rx.changed() => if changed.is_err() { return None },
                _ = self.closing.wait_for(|c| *c) => return None,
                _ = tokio::time::sleep_until(self.until) => return None,
            }
        }
    }
}

/// News for the device's event as server-sent events: `manifest` (data
/// `{"version": V}`) and `roster` (data `{"devices": n, "revoked": m}`),
/// both at once on connect and again on every change.
#[utoipa::path(get, path = "/sync/events/{event_id}/push", tag = "device sync", security(("device_token" = [])),
    params(("event_id" = String, Path, format = Uuid, description = "the device's event")),
    responses((status = 200, content_type = "text/event-stream", description = "`event: manifest` (PushManifest) and `event: roster` (PushRoster), at once and on every change; a comment every 10 s; ends after 10 minutes (reconnect)"),
               (status = 401, body = ErrorBody, description = "missing, unknown or revoked (`device_revoked`) token"),
               (status = 403, body = ErrorBody, description = "another event than the device's (`wrong_event`)")))]
pub async fn stream(
    State(state): State<AppState>,
    dev: EventDevice,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let head = state
        .store
        .push_heads(&[dev.event_id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("event".into()))?;
    let feed = Feed {
        store: state.store.clone(),
        device: dev.device.id,
        rx: state.push.subscribe(&state.store, head),
        closing: state.push.closing.subscribe(),
        until: tokio::time::Instant::now() + LIFETIME,
        sent: None,
        queue: VecDeque::new(),
        _open: Open::new(),
    };
    tracing::debug!(device = %dev.device.id, event = %dev.event_id, "push stream opened");
    Ok(Sse::new(futures_util::stream::unfold(feed, Feed::next))
        .keep_alive(KeepAlive::new().interval(KEEPALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_only_rise_so_a_stale_read_never_hides_news() {
        let mut h = Head {
            manifest: 5,
            devices: 2,
            revoked: 0,
        };
        let stale = Head {
            manifest: 4,
            devices: 2,
            revoked: 0,
        };
        assert!(!raise(&mut h, stale), "an older read changes nothing");
        assert_eq!(h.manifest, 5);
        let revoked = Head {
            manifest: 4,
            devices: 2,
            revoked: 1,
        };
        assert!(raise(&mut h, revoked), "a revocation is news");
        assert_eq!((h.manifest, h.revoked), (5, 1));
    }
}
