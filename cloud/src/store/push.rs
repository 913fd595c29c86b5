//! What the push channel (`crate::push`) watches: per event, the manifest
//! head and a count of the device rows that shape its roster. One indexed
//! read for every watched event at once, so a replica's poll costs the same
//! for one gate or a thousand. Nothing here writes; the values only ever
//! grow (versions are appended, devices are enrolled or revoked, never
//! deleted), so a larger value means news.

use super::sql::{map_err, narrow, parsed};
use super::{Dialect, SqlStore, StoreResult};
use crate::model::EventId;
use async_trait::async_trait;

/// Most events per query (placeholders per statement stay small).
const CHUNK: usize = 200;

/// One event's state as the push channel compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushHead {
    /// The event.
    pub event_id: EventId,
    /// Its manifest version.
    pub manifest_version: u64,
    /// Devices ever enrolled for it.
    pub devices: u64,
    /// Of those, revoked.
    pub revoked: u64,
}

/// Heads for the push channel.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// The heads of `events` (unknown ids are left out).
    async fn push_heads(&self, events: &[EventId]) -> StoreResult<Vec<PushHead>>;
}

#[async_trait]
impl<D: Dialect> PushStore for SqlStore<D> {
    async fn push_heads(&self, events: &[EventId]) -> StoreResult<Vec<PushHead>> {
        let mut out = Vec::with_capacity(events.len());
        for chunk in events.chunks(CHUNK) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT e.id, e.manifest_version, \
                 (SELECT count(*) FROM devices d WHERE d.event_id = e.id) AS devices, \
                 (SELECT count(d.revoked_at) FROM devices d WHERE d.event_id = e.id) AS revoked \
                 FROM events e WHERE e.id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q.bind(e.to_string());
            }
            for row in q.fetch_all(&self.pool).await.map_err(map_err)? {
                out.push(PushHead {
                    event_id: parsed(&row, "id")?,
                    manifest_version: narrow(&row, "manifest_version")?,
                    devices: narrow(&row, "devices")?,
                    revoked: narrow(&row, "revoked")?,
                });
            }
        }
        Ok(out)
    }
}
