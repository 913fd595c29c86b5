//! The event's device roster as the cloud publishes it: versions that chain
//! like the manifest's (`device_roster_versions`, with the LAN gossip key of
//! each version), and each device's state as published at the version where
//! it changed (`device_roster_entries`). The cloud's own replica is a device
//! of the roster too; it signs its records with the event key.
//!
//! Invariant: publishing runs under the event's replica lock (the same one
//! every check-in write takes), so versions are gap-free and a batch is
//! checked against a roster no older than the one it was uploaded against.

use super::super::sql::{col, map_err, parsed};
use super::super::{Dialect, SqlStore, StoreError, StoreResult};
use super::summary::seq_of;
use crate::model::{EventId, UnixMillis};
use sqlx::{Any, Transaction};
use std::collections::BTreeMap;
use sync_protocol::roster::{RosterEntry, chain_digest, genesis_digest};
use sync_protocol::{NodeId, PublicKey, Roster};

/// A published roster version.
#[derive(Debug, Clone)]
pub struct RosterVersion {
    /// Version (0: nothing published yet).
    pub version: u64,
    /// Chain digest at `version`.
    pub digest: [u8; 32],
    /// The gossip key of that version, sealed.
    pub sealed_gossip_key: Vec<u8>,
}

/// What a device needs to move to the current roster.
#[derive(Debug, Clone)]
pub struct RosterUpdate {
    /// The current version.
    pub current: RosterVersion,
    /// `(version, digest)` the entries apply to; `None`: the entries are the
    /// full roster.
    pub base: Option<(u64, [u8; 32])>,
    /// Every device (full) or those changed after the base (delta).
    pub entries: Vec<RosterEntry>,
}

fn digest_of(bytes: Vec<u8>) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Other("roster digest is not 32 bytes".into()))
}

fn entry_of(row: &sqlx::any::AnyRow) -> StoreResult<RosterEntry> {
    let key: Vec<u8> = col(row, "public_key")?;
    let key = <[u8; 32]>::try_from(key)
        .ok()
        .and_then(|k| PublicKey::from_bytes(&k).ok())
        .ok_or_else(|| StoreError::Other("device public key is not an ed25519 key".into()))?;
    let revoked: Option<i64> = col(row, "revoked_at")?;
    Ok(RosterEntry {
        node_id: parsed(row, "node_id")?,
        public_key: key,
        enrolled_at_ms: seq_of(col(row, "enrolled_at")?)?,
        revoked_at_ms: revoked.map(|r| r.max(1) as u64),
    })
}

impl<D: Dialect> SqlStore<D> {
    async fn latest_version(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
    ) -> StoreResult<Option<RosterVersion>> {
        let row = sqlx::query(
            "SELECT version, digest, sealed_gossip_key FROM device_roster_versions \
             WHERE event_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(event.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
        row.map(|row| {
            Ok(RosterVersion {
                version: seq_of(col(&row, "version")?)?,
                digest: digest_of(col(&row, "digest")?)?,
                sealed_gossip_key: col(&row, "sealed_gossip_key")?,
            })
        })
        .transpose()
    }

    /// Each device's latest published state (versions above `after` only).
    async fn published(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
        after: u64,
    ) -> StoreResult<BTreeMap<NodeId, RosterEntry>> {
        let rows = sqlx::query(
            "SELECT e.node_id, e.public_key, e.enrolled_at, e.revoked_at FROM device_roster_entries e \
             WHERE e.event_id = $1 AND e.version > $2 AND e.version = (SELECT max(l.version) \
             FROM device_roster_entries l WHERE l.event_id = e.event_id AND l.node_id = e.node_id)",
        )
        .bind(event.to_string())
        .bind(after as i64)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        let mut out = BTreeMap::new();
        for row in &rows {
            let e = entry_of(row)?;
            out.insert(e.node_id, e);
        }
        Ok(out)
    }

    /// Publishes a new roster version if the event's devices (or the
    /// cloud's own replica, signing with `cloud_key`) changed since the last
    /// one; `sealed_candidate` becomes that version's gossip key. Returns the
    /// current version either way.
    pub(in crate::store) async fn publish_roster_tx(
        &self,
        event: EventId,
        cloud_key: &PublicKey,
        sealed_candidate: &[u8],
        now: UnixMillis,
    ) -> StoreResult<RosterVersion> {
        let mut tx = self.begin_write().await?;
        let replica = Self::lock_replica(&mut tx, event).await?;
        let rows = sqlx::query(
            "SELECT id AS node_id, public_key, enrolled_at, revoked_at FROM devices WHERE event_id = $1",
        )
        .bind(event.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut current: Vec<RosterEntry> =
            rows.iter().map(entry_of).collect::<StoreResult<_>>()?;
        current.push(RosterEntry {
            node_id: replica.node,
            public_key: cloud_key.clone(),
            enrolled_at_ms: 0,
            revoked_at_ms: None,
        });
        let published = Self::published(&mut tx, event, 0).await?;
        let changed: Vec<RosterEntry> = current
            .into_iter()
            .filter(|e| published.get(&e.node_id) != Some(e))
            .collect();
        let latest = Self::latest_version(&mut tx, event).await?;
        if changed.is_empty()
            && let Some(latest) = latest
        {
            tx.commit().await.map_err(map_err)?;
            return Ok(latest);
        }
        let (prev_version, prev_digest) = latest
            .map(|l| (l.version, l.digest))
            .unwrap_or((0, genesis_digest(&event)));
        let version = prev_version + 1;
        let digest = chain_digest(&prev_digest, version, &changed);
        sqlx::query(
            "INSERT INTO device_roster_versions (event_id, version, digest, sealed_gossip_key, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event.to_string())
        .bind(version as i64)
        .bind(digest.to_vec())
        .bind(sealed_candidate.to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        for e in &changed {
            sqlx::query(
                "INSERT INTO device_roster_entries (event_id, version, node_id, public_key, enrolled_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.to_string())
            .bind(version as i64)
            .bind(e.node_id.to_string())
            .bind(e.public_key.to_bytes().to_vec())
            .bind(e.enrolled_at_ms as i64)
            .bind(e.revoked_at_ms.map(|r| r as i64))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        tracing::info!(event = %event, version, changed = changed.len(), "device roster published");
        Ok(RosterVersion {
            version,
            digest,
            sealed_gossip_key: sealed_candidate.to_vec(),
        })
    }

    /// What a device at roster version `since` needs: a delta when the
    /// cloud has that version, else the full roster.
    pub(in crate::store) async fn roster_update_tx(
        &self,
        event: EventId,
        since: u64,
    ) -> StoreResult<RosterUpdate> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let current = Self::latest_version(&mut tx, event)
            .await?
            .ok_or(StoreError::NotFound("device roster"))?;
        let base = if since == 0 || since >= current.version {
            None
        } else {
            sqlx::query(
                "SELECT digest FROM device_roster_versions WHERE event_id = $1 AND version = $2",
            )
            .bind(event.to_string())
            .bind(since as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .map(|row| digest_of(col(&row, "digest")?))
            .transpose()?
            .map(|d| (since, d))
        };
        let after = base.map_or(0, |(v, _)| v);
        let entries = Self::published(&mut tx, event, after)
            .await?
            .into_values()
            .collect();
        tx.commit().await.map_err(map_err)?;
        Ok(RosterUpdate {
            current,
            base,
            entries,
        })
    }

    /// The roster as published now (empty before the first publication).
    pub(in crate::store) async fn roster_now_tx(&self, event: EventId) -> StoreResult<Roster> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let latest = Self::latest_version(&mut tx, event).await?;
        let entries = Self::published(&mut tx, event, 0).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(match latest {
            Some(l) => Roster::from_parts(event, l.version, l.digest, entries.into_values()),
            None => Roster::empty(event),
        })
    }
}
