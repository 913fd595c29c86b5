//! Sync steps and cursors over the stored check-in log: answering a peer's
//! or the cloud's message with what it lacks, building messages from a
//! cursor, and remembering what each partner was last known to hold.
//!
//! Same semantics as [`sync_protocol::CheckinLog::sync_receive`]: the
//! records of a message are applied all or nothing, and a reply is sent only
//! when either side still lacks something.

use super::checkins::{missing_for, nodes_of, read_summary};
use super::{CloudBacklog, Store, StoreError, i64_of, u64_of};
use rusqlite::{OptionalExtension, params};
use sync_protocol::checkin::Summary;
use sync_protocol::sync::{MAX_RECORDS_PER_MESSAGE, Received};
use sync_protocol::{ScanId, SyncMessage};

impl Store {
    /// One sync step (as [`sync_protocol::CheckinLog::sync_receive`]):
    /// applies the message's records, all or nothing, and answers with this
    /// node's summary and what the sender lacks, if either side lacks anything.
    pub fn sync_receive(
        &self,
        msg: &SyncMessage,
        limit: usize,
        wall_ms: u64,
        observe_until_ms: u64,
    ) -> Result<Received, StoreError> {
        let event = self.require_identity()?.event_id;
        if msg.event_id != event {
            return Err(StoreError::WrongEvent);
        }
        let report = self.apply_records(&msg.records, wall_ms, observe_until_ms)?;
        let inner = self.lock();
        let records = missing_for(&inner.conn, &msg.have, limit.min(MAX_RECORDS_PER_MESSAGE))?;
        let have = read_summary(&inner.conn)?;
        let reply = if records.is_empty() && !have.lacks_any_of(&msg.have) {
            None
        } else {
            Some(SyncMessage {
                event_id: event,
                have,
                records,
            })
        };
        Ok(Received { report, reply })
    }

    /// A message carrying this node's summary and the records a replica with
    /// summary `their` lacks (all records if `their` is unknown), at most `limit`.
    pub fn sync_message(
        &self,
        their: Option<&Summary>,
        limit: usize,
    ) -> Result<SyncMessage, StoreError> {
        let event = self.require_identity()?.event_id;
        let inner = self.lock();
        let empty = Summary::default();
        let records = missing_for(
            &inner.conn,
            their.unwrap_or(&empty),
            limit.min(MAX_RECORDS_PER_MESSAGE),
        )?;
        Ok(SyncMessage {
            event_id: event,
            have: read_summary(&inner.conn)?,
            records,
        })
    }

    /// The last summary `peer` ("cloud", or a peer's node id) was known to hold.
    pub fn cursor(&self, peer: &str) -> Result<Option<Summary>, StoreError> {
        let event = self.require_identity()?.event_id;
        let inner = self.lock();
        let bytes: Option<Vec<u8>> = inner
            .conn
            .prepare_cached("SELECT summary FROM sync_cursors WHERE peer = ?1")?
            .query_row([peer], |r| r.get(0))
            .optional()?;
        bytes
            .map(|b| match SyncMessage::decode(&b) {
                Ok(m) if m.event_id == event => Ok(m.have),
                _ => Err(StoreError::Corrupt(format!("sync cursor of {peer}"))),
            })
            .transpose()
    }

    /// Records what `peer` holds, as its latest message said.
    pub fn set_cursor(&self, peer: &str, have: &Summary, now_ms: u64) -> Result<(), StoreError> {
        let event = self.require_identity()?.event_id;
        let bytes = SyncMessage {
            event_id: event,
            have: have.clone(),
            records: Vec::new(),
        }
        .encode();
        self.lock().conn.execute(
            "INSERT INTO sync_cursors (peer, summary, updated_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (peer) DO UPDATE SET summary = excluded.summary,
                 updated_at_ms = excluded.updated_at_ms",
            params![peer, bytes, i64_of(now_ms)],
        )?;
        Ok(())
    }

    /// Records not yet acknowledged by the cloud (absent from its cursor).
    pub fn cloud_backlog(&self) -> Result<CloudBacklog, StoreError> {
        let own = self.require_identity()?.node_id;
        let cloud = self.cursor("cloud")?.unwrap_or_default();
        let inner = self.lock();
        let mine = read_summary(&inner.conn)?;
        let mut out = CloudBacklog::default();
        let mut count = inner
            .conn
            .prepare_cached("SELECT count(*) FROM checkins WHERE node = ?1 AND seq > ?2")?;
        for node in nodes_of(&mine) {
            let above = cloud.vv.get(&node);
            let n: i64 = count.query_row(params![node.as_bytes(), i64_of(above)], |r| r.get(0))?;
            let held_extras = cloud.extras.get(&node).map_or(0, |extras| {
                extras
                    .iter()
                    .filter(|seq| mine.has(&ScanId { node, seq: **seq }))
                    .count() as u64
            });
            let pending = u64_of(n).saturating_sub(held_extras);
            out.pending += pending;
            if node == own {
                out.pending_own += pending;
            }
        }
        Ok(out)
    }
}
