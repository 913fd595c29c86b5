//! The cloud replica's exact [`Summary`], as kept in `checkin_prefix` and
//! `checkin_extras`: loaded once per batch (O(nodes + extras), never a scan
//! of the records), advanced in memory as records are accepted, and written
//! back for the nodes that changed, in the same transaction as the records.

use super::super::sql::{col, map_err, parsed};
use super::super::{StoreError, StoreResult};
use crate::model::EventId;
use crdts::{CmRDT, Dot};
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, BTreeSet};
use sync_protocol::checkin::Summary;
use sync_protocol::{NodeId, ScanId};

/// What the replica holds of one node's scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Coverage {
    /// `1..=prefix` held.
    pub prefix: u64,
    /// Held above the prefix (never `prefix + 1`).
    pub extras: BTreeSet<u64>,
}

impl Coverage {
    fn has(&self, seq: u64) -> bool {
        seq <= self.prefix || self.extras.contains(&seq)
    }

    fn add(&mut self, seq: u64) {
        if seq <= self.prefix {
            return;
        }
        if seq != self.prefix + 1 {
            self.extras.insert(seq);
            return;
        }
        self.prefix = seq;
        while self.extras.remove(&(self.prefix + 1)) {
            self.prefix += 1;
        }
    }
}

/// The replica's summary, per node.
#[derive(Debug, Clone, Default)]
pub(super) struct ReplicaSummary {
    pub nodes: BTreeMap<NodeId, Coverage>,
}

impl ReplicaSummary {
    pub fn has(&self, id: &ScanId) -> bool {
        self.nodes.get(&id.node).is_some_and(|c| c.has(id.seq))
    }

    pub fn add(&mut self, id: &ScanId) {
        self.nodes.entry(id.node).or_default().add(id.seq);
    }

    /// As the protocol's [`Summary`].
    pub fn to_summary(&self) -> Summary {
        let mut s = Summary::default();
        for (node, c) in &self.nodes {
            if c.prefix > 0 {
                s.vv.apply(Dot::new(*node, c.prefix));
            }
            if !c.extras.is_empty() {
                s.extras.insert(*node, c.extras.clone());
            }
        }
        s
    }

    /// Reads the event's summary.
    pub async fn load(tx: &mut Transaction<'static, Any>, event: EventId) -> StoreResult<Self> {
        let mut out = Self::default();
        let rows = sqlx::query("SELECT node_id, prefix FROM checkin_prefix WHERE event_id = $1")
            .bind(event.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        for row in &rows {
            let node: NodeId = parsed(row, "node_id")?;
            out.nodes.entry(node).or_default().prefix = seq_of(col(row, "prefix")?)?;
        }
        let rows = sqlx::query("SELECT node_id, seq FROM checkin_extras WHERE event_id = $1")
            .bind(event.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        for row in &rows {
            let node: NodeId = parsed(row, "node_id")?;
            let seq = seq_of(col(row, "seq")?)?;
            out.nodes.entry(node).or_default().extras.insert(seq);
        }
        Ok(out)
    }

    /// Writes the nodes whose coverage differs from `before`.
    pub async fn store_changes(
        &self,
        before: &ReplicaSummary,
        tx: &mut Transaction<'static, Any>,
        event: EventId,
    ) -> StoreResult<()> {
        let empty = Coverage::default();
        for (node, after) in &self.nodes {
            let old = before.nodes.get(node).unwrap_or(&empty);
            if old == after {
                continue;
            }
            if after.prefix != old.prefix {
                sqlx::query(
                    "INSERT INTO checkin_prefix (event_id, node_id, prefix) VALUES ($1, $2, $3) \
                     ON CONFLICT (event_id, node_id) DO UPDATE SET prefix = excluded.prefix",
                )
                .bind(event.to_string())
                .bind(node.to_string())
                .bind(seq_col(after.prefix)?)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                sqlx::query(
                    "DELETE FROM checkin_extras WHERE event_id = $1 AND node_id = $2 AND seq <= $3",
                )
                .bind(event.to_string())
                .bind(node.to_string())
                .bind(seq_col(after.prefix)?)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            }
            for seq in after.extras.difference(&old.extras) {
                sqlx::query(
                    "INSERT INTO checkin_extras (event_id, node_id, seq) VALUES ($1, $2, $3)",
                )
                .bind(event.to_string())
                .bind(node.to_string())
                .bind(seq_col(*seq)?)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            }
        }
        Ok(())
    }
}

/// A stored sequence number.
pub(super) fn seq_of(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Other(format!("negative sequence number {v}")))
}

/// A sequence number as a column (at most 2^48, so it always fits).
pub(super) fn seq_col(seq: u64) -> StoreResult<i64> {
    i64::try_from(seq).map_err(|_| StoreError::Other(format!("sequence number {seq} too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_absorbs_extras_into_the_prefix() {
        let mut c = Coverage::default();
        for seq in [3, 5, 1] {
            c.add(seq);
        }
        assert_eq!((c.prefix, c.extras.len()), (1, 2), "gap at 2");
        c.add(2);
        assert_eq!(c.prefix, 3, "2 closes the gap up to 3; 5 stays beyond 4");
        assert_eq!(c.extras, BTreeSet::from([5]));
        assert!(c.has(5) && !c.has(4));
    }
}
