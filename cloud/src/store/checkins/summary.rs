//! The cloud replica's exact [`Summary`], as kept in `checkin_prefix` and
//! `checkin_extras`: loaded once per batch (O(nodes + extras), never a scan
//! of the records), advanced in memory as records are accepted, and written
//! back for the nodes that changed, in the same transaction as the records.

use super::super::sql::{col, map_err, parsed};
use super::super::{StoreError, StoreResult};
use crate::model::EventId;
use crdts::{CmRDT, Dot};
use sqlx::{Any, Transaction};
use std::collections::BTreeSet;
use sync_protocol::checkin::Summary;
use sync_protocol::{NodeId, ScanId};

/// The replica's summary: the protocol's own [`Summary`] (one algorithm
/// for every replica: `Summary::add`, `Summary::has`), loaded from and
/// written back to the two tables.
#[derive(Debug, Clone, Default)]
pub(super) struct ReplicaSummary(pub Summary);

impl ReplicaSummary {
    pub fn has(&self, id: &ScanId) -> bool {
        self.0.has(id)
    }

    pub fn add(&mut self, id: &ScanId) {
        self.0.add(*id);
    }

    /// As the protocol's [`Summary`].
    pub fn to_summary(&self) -> Summary {
        self.0.clone()
    }

    /// Every node held: its prefix and its extras.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, u64, Option<&BTreeSet<u64>>)> {
        let nodes: BTreeSet<NodeId> = self
            .0
            .vv
            .dots
            .keys()
            .chain(self.0.extras.keys())
            .copied()
            .collect();
        nodes
            .into_iter()
            .map(|n| (n, self.0.vv.get(&n), self.0.extras.get(&n)))
    }

    /// Reads the event's summary.
    pub async fn load(tx: &mut Transaction<'static, Any>, event: EventId) -> StoreResult<Self> {
        let mut out = Summary::default();
        let rows = sqlx::query("SELECT node_id, prefix FROM checkin_prefix WHERE event_id = $1")
            .bind(event.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        for row in &rows {
            let node: NodeId = parsed(row, "node_id")?;
            let prefix = seq_of(col(row, "prefix")?)?;
            if prefix > 0 {
                out.vv.apply(Dot::new(node, prefix));
            }
        }
        let rows = sqlx::query("SELECT node_id, seq FROM checkin_extras WHERE event_id = $1")
            .bind(event.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        for row in &rows {
            let node: NodeId = parsed(row, "node_id")?;
            let seq = seq_of(col(row, "seq")?)?;
            out.extras.entry(node).or_default().insert(seq);
        }
        Ok(Self(out))
    }

    /// Writes the nodes whose coverage differs from `before`.
    pub async fn store_changes(
        &self,
        before: &ReplicaSummary,
        tx: &mut Transaction<'static, Any>,
        event: EventId,
    ) -> StoreResult<()> {
        let none = BTreeSet::new();
        for (node, prefix, extras) in self.nodes() {
            let extras = extras.unwrap_or(&none);
            let (old_prefix, old_extras) = (
                before.0.vv.get(&node),
                before.0.extras.get(&node).unwrap_or(&none),
            );
            if (old_prefix, old_extras) == (prefix, extras) {
                continue;
            }
            if prefix != old_prefix {
                sqlx::query(
                    "INSERT INTO checkin_prefix (event_id, node_id, prefix) VALUES ($1, $2, $3) \
                     ON CONFLICT (event_id, node_id) DO UPDATE SET prefix = excluded.prefix",
                )
                .bind(event.to_string())
                .bind(node.to_string())
                .bind(seq_col(prefix)?)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                sqlx::query(
                    "DELETE FROM checkin_extras WHERE event_id = $1 AND node_id = $2 AND seq <= $3",
                )
                .bind(event.to_string())
                .bind(node.to_string())
                .bind(seq_col(prefix)?)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            }
            for seq in extras.difference(old_extras) {
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

    fn id(seq: u64) -> ScanId {
        ScanId {
            node: NodeId(uuid::Uuid::from_u128(1)),
            seq,
        }
    }

    #[test]
    fn the_replica_summary_is_the_protocols_summary() {
        let mut r = ReplicaSummary::default();
        for seq in [3, 5, 1] {
            r.add(&id(seq));
        }
        let nodes: Vec<_> = r.nodes().map(|(_, p, e)| (p, e.cloned())).collect();
        assert_eq!(nodes, vec![(1, Some(BTreeSet::from([3, 5])))], "gap at 2");
        r.add(&id(2));
        let nodes: Vec<_> = r.nodes().map(|(_, p, e)| (p, e.cloned())).collect();
        assert_eq!(
            nodes,
            vec![(3, Some(BTreeSet::from([5])))],
            "2 closes the gap up to 3"
        );
        assert!(r.has(&id(5)) && !r.has(&id(4)));
        let mut protocol = Summary::default();
        for seq in [3, 5, 1, 2] {
            protocol.add(id(seq));
        }
        assert_eq!(r.to_summary(), protocol);
    }
}
