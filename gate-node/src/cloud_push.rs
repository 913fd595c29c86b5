//! The cloud's push channel, from the gate's side: while the cloud is
//! reachable the node holds `GET /sync/events/{id}/push` open and, on each
//! `manifest` event newer than what it holds or `roster` event, fetches the
//! delta or the roster at once (through the same [`CloudSync`] calls as the
//! periodic pull, which stays as the fallback).
//!
//! A stream that drops, stalls (no byte, not even the cloud's keep-alive
//! comment, for [`IDLE`]) or is refused is retried with exponential backoff
//! up to `backoff_max`; a cloud without the endpoint (an older release) or a
//! revoked token is asked again only every `backoff_max`. Nothing on the
//! admission path waits for any of it.

use crate::cloud::CloudError;
use crate::cloud_sync::{CloudSync, SyncError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use sync_protocol::device_api::{PUSH_MANIFEST, PUSH_ROSTER, PushManifest, PushRoster};
use tokio::sync::watch;

/// A stream silent this long is dead (the cloud writes a comment every
/// 10 s).
pub const IDLE: Duration = Duration::from_secs(30);
/// Wait before reconnecting after a stream that was up ended (a replica
/// restarting, the cloud's periodic end of a stream).
const RECONNECT: Duration = Duration::from_millis(250);
/// Longest line accepted from the stream.
const MAX_LINE: usize = 64 << 10;

/// Push channel state for `/status` (under `cloud.push`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PushStatus {
    /// Whether a stream is open now.
    pub connected: bool,
    /// Streams opened since start.
    pub connects: u64,
    /// Events received since start.
    pub events: u64,
    /// Why the last stream ended or was refused.
    pub last_error: Option<String>,
}

/// One event of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushEvent {
    /// The manifest is at this version.
    Manifest(PushManifest),
    /// The event's devices changed.
    Roster(PushRoster),
    /// An event this release does not know (ignored).
    Other(String),
}

/// A server-sent-events reader: bytes in, complete events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: String,
}

impl SseParser {
    /// Feeds `chunk`; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<PushEvent>, CloudError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    out.push(self.dispatch()?);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => value.clone_into(&mut self.event),
                "data" => {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                }
                _ => {}
            }
            if self.data.len() > MAX_LINE {
                return Err(CloudError::BadResponse("push event too large".into()));
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err(CloudError::BadResponse("push line too long".into()));
        }
        Ok(out)
    }

    fn dispatch(&mut self) -> Result<PushEvent, CloudError> {
        let (event, data) = (
            std::mem::take(&mut self.event),
            std::mem::take(&mut self.data),
        );
        let bad = |e: serde_json::Error| CloudError::BadResponse(format!("push {event}: {e}"));
        Ok(match event.as_str() {
            PUSH_MANIFEST => PushEvent::Manifest(serde_json::from_str(&data).map_err(bad)?),
            PUSH_ROSTER => PushEvent::Roster(serde_json::from_str(&data).map_err(bad)?),
            _ => PushEvent::Other(event),
        })
    }
}

/// Holds the push stream open until `shutdown`, reconnecting as the module
/// docs say.
pub async fn listen(
    sync: Arc<CloudSync>,
    backoff_max: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        let mut was_up = false;
        let ended = tokio::select! {
            _ = shutdown.changed() => return,
            r = session(&sync, &mut was_up) => r,
        };
        let delay = match &ended {
            Err(SyncError::Cloud(CloudError::Unauthorized { .. }))
            | Err(SyncError::Cloud(CloudError::Api {
                status: 404 | 405, ..
            })) => backoff_max,
            _ if was_up => {
                failures = 0;
                RECONNECT
            }
            _ => {
                failures = failures.saturating_add(1);
                let exp = 1u64 << failures.min(16);
                Duration::from_millis(250 * exp).min(backoff_max)
            }
        };
        let why = match &ended {
            Ok(()) => "the cloud ended the stream".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::debug!(reason = %why, retry_in_ms = delay.as_millis() as u64, "push stream closed");
        sync.update_push(|p| {
            p.connected = false;
            p.last_error = Some(why);
        });
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One stream, from connect to its end; `was_up` is set once it opened.
async fn session(sync: &CloudSync, was_up: &mut bool) -> Result<(), SyncError> {
    let mut resp = sync.client().push(sync.event()).await?;
    *was_up = true;
    sync.update_push(|p| {
        p.connected = true;
        p.connects += 1;
    });
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE, resp.chunk()).await {
            Err(_) => {
                return Err(CloudError::Unreachable("push stream silent for 30 s".into()).into());
            }
            Ok(Err(e)) => return Err(CloudError::Unreachable(e.to_string()).into()),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(c))) => c,
        };
        for event in parser.feed(&chunk)? {
            sync.update_push(|p| p.events += 1);
            sync.on_push(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_reads_events_split_anywhere_and_skips_comments() {
        let stream = b": keep-alive\n\nevent: manifest\ndata: {\"version\":4}\n\nevent: roster\r\ndata: {\"devices\":2,\"revoked\":1}\r\n\r\nevent: later\ndata: x\n\n";
        for split in 0..stream.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&stream[..split]).unwrap();
            got.extend(p.feed(&stream[split..]).unwrap());
            assert_eq!(
                got,
                vec![
                    PushEvent::Manifest(PushManifest { version: 4 }),
                    PushEvent::Roster(PushRoster {
                        devices: 2,
                        revoked: 1
                    }),
                    PushEvent::Other("later".into()),
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn hostile_streams_are_errors_not_panics() {
        let mut p = SseParser::default();
        assert!(
            p.feed(b"event: manifest\ndata: {\"version\":-1}\n\n")
                .is_err()
        );
        let mut p = SseParser::default();
        assert!(
            p.feed(&vec![b'a'; MAX_LINE + 1]).is_err(),
            "an endless line"
        );
        let mut p = SseParser::default();
        let mut many = Vec::new();
        for _ in 0..(MAX_LINE / 8) {
            many.extend_from_slice(b"data: xxxxxxxx\n");
        }
        assert!(p.feed(&many).is_err(), "an endless event");
    }
}
