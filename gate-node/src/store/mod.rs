//! The node's SQLite store (rusqlite, WAL): identity, key set, manifest,
//! check-in log with its summary, sync cursors and the persisted HLC.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so every commit
//! fsyncs the WAL before it returns. The engine commits a scan before it
//! signals the actuator, so a scan that turned the light green survives a
//! power cut (with `NORMAL`, WAL commits are only durable at the next
//! checkpoint and the last scans could vanish).
//!
//! Concurrency: one connection behind a mutex per process; every write is a
//! `BEGIN IMMEDIATE` transaction, so a CLI process writing to the same file
//! (provisioning, `import`, `scan`) is serialised by SQLite. Only the
//! identity and key ring are cached, and they are reloaded whenever
//! `PRAGMA data_version` shows that another connection committed.

mod checkins;
mod listing;
pub mod manifest;
mod roster;
pub mod schema;
mod sync;

pub use checkins::{CloudBacklog, RecordTemplate};
pub use manifest::{Applied, ManifestInfo};
pub use roster::{Evidence, RosterInfo};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use sync_protocol::checkin::CheckinError;
use sync_protocol::manifest::{ManifestError, genesis_digest};
use sync_protocol::roster::RecordRefusal;
use sync_protocol::{
    EventId, GatePolicy, KeyCertificate, KeyRetirement, KeyRing, NodeId, PublicKey, Roster,
    SecretKey,
};

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, disk full, locked past the busy timeout).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The node has no identity yet.
    #[error("this node is not enrolled or provisioned yet")]
    NotProvisioned,
    /// Provisioning would replace another identity.
    #[error("the store already belongs to node {0}; use a fresh data directory")]
    AlreadyProvisioned(NodeId),
    /// A manifest or delta was refused (nothing written).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A batch of records was refused (nothing written).
    #[error(transparent)]
    Checkin(#[from] CheckinError),
    /// A record failed the roster check (unknown device, bad signature,
    /// this node's own id); the batch was refused, nothing written.
    #[error("record refused: {0}")]
    Refused(#[from] RecordRefusal),
    /// A sync message was for another event (nothing written).
    #[error("sync message is for another event")]
    WrongEvent,
    /// A key certificate does not verify against the root key.
    #[error("key certificate refused: {0}")]
    BadCertificate(String),
    /// Stored bytes that do not decode: a damaged or foreign file.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The file system refused (the data directory cannot be created or
    /// restricted, WAL cannot be enabled): check the disk and permissions.
    #[error("store I/O: {0}")]
    Io(String),
    /// The blocking task running a store call panicked or was cancelled;
    /// its transaction rolled back and nothing was written.
    #[error("store task failed: {0}")]
    TaskFailed(String),
    /// Written by a newer build.
    #[error("database schema version {found} is newer than this build's {known}")]
    TooNew {
        /// Version in the file.
        found: u32,
        /// Newest version this build knows.
        known: u32,
    },
}

/// Who this node is, as enrollment (or offline provisioning) left it.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// This node's id (the `node` of its scan ids).
    pub node_id: NodeId,
    /// The one event this node admits to.
    pub event_id: EventId,
    /// Seed of the device's ed25519 key (secret).
    pub device_seed: [u8; 32],
    /// Bearer token for the cloud (secret); absent when provisioned offline.
    pub device_token: Option<String>,
    /// HMAC key for LAN sync envelopes (secret), as enrollment gave it.
    pub gossip_key: [u8; 32],
    /// The roster version that key belongs to (later keys arrive with
    /// later rosters, see [`Store::gossip_keys`]).
    pub gossip_key_version: u64,
    /// The organizer root public key, the trust anchor.
    pub root_public_key: [u8; 32],
    /// Gate policy.
    pub policy: GatePolicy,
    /// Gate label, e.g. "North 2".
    pub gate: String,
    /// The guarded zone's name, when the cloud named it, e.g. "Balcony".
    pub zone_name: Option<String>,
    /// Cloud base URL the node enrolled with.
    pub cloud_url: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &self.node_id)
            .field("event_id", &self.event_id)
            .field("device_seed", &"<redacted>")
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .field("gossip_key", &"<redacted>")
            .field("root_public_key", &hex::encode(self.root_public_key))
            .field("policy", &self.policy)
            .field("gate", &self.gate)
            .field("zone_name", &self.zone_name)
            .field("cloud_url", &self.cloud_url)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) conn: Connection,
    pub(crate) ring: Option<KeyRing>,
    pub(crate) identity: Option<Identity>,
    pub(crate) roster: Option<Roster>,
    pub(crate) device_key: Option<SecretKey>,
    data_version: i64,
}

/// The node's database. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

pub(crate) fn i64_of(v: u64) -> i64 {
    v as i64
}

pub(crate) fn u64_of(v: i64) -> u64 {
    v as u64
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") && path != Path::new(":memory:") {
            return Err(StoreError::Io(format!("cannot enable WAL (got {mode})")));
        }
        // FULL: every commit fsyncs the WAL, see the module docs.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        let data_version = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let mut inner = Inner {
            conn,
            ring: None,
            identity: None,
            roster: None,
            device_key: None,
            data_version,
        };
        inner.reload()?;
        inner.sign_legacy_records()?;
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    /// Opens `gate.db` inside `data_dir`, creating the directory.
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("gate.db");
        // The file holds the device key seed and tokens: owner only, from
        // the moment it exists (created 0600 before SQLite opens it), and
        // so are its WAL and shared-memory files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", path.display())))?;
        }
        let store = Self::open(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for file in [
                path.clone(),
                path.with_extension("db-wal"),
                path.with_extension("db-shm"),
            ] {
                if !file.exists() {
                    continue;
                }
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                    |e| StoreError::Io(format!("cannot restrict {}: {e}", file.display())),
                )?;
            }
        }
        Ok(store)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (the transaction rolls back on drop), so a poisoned lock is usable.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Another process (`gate-node import`, `provision`) committed: the
        // cached identity and key ring may be stale.
        // A cached statement: this runs on every lock, i.e. every scan.
        if let Ok(v) = inner
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            && v != inner.data_version
        {
            inner.data_version = v;
            if let Err(e) = inner.reload() {
                tracing::error!(error = %e, "cannot reload identity and keys");
            }
        }
        inner
    }

    /// The node identity, if enrolled or provisioned.
    pub fn identity(&self) -> Option<Identity> {
        self.lock().identity.clone()
    }

    /// The node identity, or [`StoreError::NotProvisioned`].
    pub fn require_identity(&self) -> Result<Identity, StoreError> {
        self.identity().ok_or(StoreError::NotProvisioned)
    }

    /// The trusted key set.
    pub fn key_ring(&self) -> Result<KeyRing, StoreError> {
        self.lock().ring.clone().ok_or(StoreError::NotProvisioned)
    }

    /// Stores the identity and key set of a fresh node, in one transaction.
    /// Re-provisioning the same node id updates its token, policy and keys.
    pub fn provision(
        &self,
        identity: &Identity,
        certs: &[KeyCertificate],
    ) -> Result<(), StoreError> {
        let root = PublicKey::from_bytes(&identity.root_public_key)
            .map_err(|e| StoreError::BadCertificate(format!("root key: {e}")))?;
        let mut ring = KeyRing::new(root);
        for c in certs {
            if c.event_id != identity.event_id {
                return Err(StoreError::BadCertificate(
                    "certificate for another event".into(),
                ));
            }
            ring.insert(c.clone())
                .map_err(|e| StoreError::BadCertificate(e.to_string()))?;
        }
        let mut inner = self.lock();
        if let Some(held) = &inner.identity
            && (held.node_id != identity.node_id || held.event_id != identity.event_id)
        {
            return Err(StoreError::AlreadyProvisioned(held.node_id));
        }
        let fresh = inner.identity.is_none();
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        put(&tx, "node_id", identity.node_id.as_bytes())?;
        put(&tx, "event_id", identity.event_id.as_bytes())?;
        put(&tx, "device_seed", &identity.device_seed)?;
        match &identity.device_token {
            Some(t) => put(&tx, "device_token", t.as_bytes())?,
            None => {
                tx.execute("DELETE FROM meta WHERE key = 'device_token'", [])?;
            }
        }
        put(&tx, "gossip_key", &identity.gossip_key)?;
        put(
            &tx,
            "gossip_key_version",
            &identity.gossip_key_version.to_be_bytes(),
        )?;
        roster::put_gossip_key(&tx, identity.gossip_key_version, &identity.gossip_key)?;
        put(&tx, "root_public_key", &identity.root_public_key)?;
        let policy =
            serde_json::to_vec(&identity.policy).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        put(&tx, "policy", &policy)?;
        put(&tx, "gate", identity.gate.as_bytes())?;
        match &identity.zone_name {
            Some(z) => put(&tx, "zone_name", z.as_bytes())?,
            None => {
                tx.execute("DELETE FROM meta WHERE key = 'zone_name'", [])?;
            }
        }
        if let Some(url) = &identity.cloud_url {
            put(&tx, "cloud_url", url.as_bytes())?;
        }
        if fresh {
            put(&tx, "manifest_version", &0u64.to_be_bytes())?;
            put(&tx, "manifest_digest", &genesis_digest(&identity.event_id))?;
        }
        for c in certs {
            tx.execute(
                "INSERT OR IGNORE INTO key_certs (cert) VALUES (?1)",
                params![c.encode()],
            )?;
        }
        tx.commit()?;
        inner.reload()
    }

    /// Raises the persisted HLC to at least `hlc` (the last known good time
    /// survives reboots through it).
    pub fn raise_hlc(&self, hlc: sync_protocol::Hlc) -> Result<(), StoreError> {
        let inner = self.lock();
        let held = get_hlc(&inner.conn)?;
        if hlc > held {
            put(&inner.conn, "hlc_last", &hlc.0.to_be_bytes())?;
        }
        Ok(())
    }

    /// The persisted HLC (zero on a fresh node).
    pub fn hlc_last(&self) -> Result<sync_protocol::Hlc, StoreError> {
        get_hlc(&self.lock().conn)
    }
}

impl Inner {
    /// Re-reads identity and key ring after a write.
    fn reload(&mut self) -> Result<(), StoreError> {
        self.identity = load_identity(&self.conn)?;
        self.ring = match &self.identity {
            None => None,
            Some(id) => Some(load_ring(&self.conn, &id.root_public_key)?),
        };
        self.device_key = self
            .identity
            .as_ref()
            .map(|id| SecretKey::from_seed(id.device_seed));
        self.reload_roster()
    }

    /// Signs this node's own records stored by a release before signed
    /// records (schema 3 adds the column), so every record it sends is signed.
    fn sign_legacy_records(&mut self) -> Result<(), StoreError> {
        let (Some(id), Some(key)) = (&self.identity, &self.device_key) else {
            return Ok(());
        };
        let node = id.node_id;
        let key = key.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unsigned: Vec<(i64, Vec<u8>)> = tx
            .prepare("SELECT seq, record FROM checkins WHERE node = ?1 AND signature IS NULL")?
            .query_map([node.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (seq, body) in unsigned {
            let mut record = sync_protocol::ScanRecord::from_bytes(&body)
                .map_err(|e| StoreError::Corrupt(format!("scan record: {e}")))?;
            record.sign(&key);
            tx.execute(
                "UPDATE checkins SET signature = ?1 WHERE node = ?2 AND seq = ?3",
                params![record.signature.0.as_slice(), node.as_bytes(), seq],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

pub(crate) fn put(conn: &Connection, key: &str, value: &[u8]) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn get_array<const N: usize>(
    conn: &Connection,
    key: &str,
) -> Result<Option<[u8; N]>, StoreError> {
    get(conn, key)?.map(|v| meta_array(key, &v)).transpose()
}

/// The fixed-size value of meta `key`, as read.
pub(crate) fn meta_array<const N: usize>(key: &str, value: &[u8]) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("meta {key} has the wrong length")))
}

pub(crate) fn get_u64(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    Ok(get_array::<8>(conn, key)?.map(u64::from_be_bytes))
}

pub(crate) fn get_hlc(conn: &Connection) -> Result<sync_protocol::Hlc, StoreError> {
    Ok(sync_protocol::Hlc(get_u64(conn, "hlc_last")?.unwrap_or(0)))
}

fn get_string(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    get(conn, key)?
        .map(|v| String::from_utf8(v).map_err(|_| StoreError::Corrupt(format!("meta {key}"))))
        .transpose()
}

fn load_identity(conn: &Connection) -> Result<Option<Identity>, StoreError> {
    let Some(node) = get_array::<16>(conn, "node_id")? else {
        return Ok(None);
    };
    let missing = |k: &str| StoreError::Corrupt(format!("identity lacks {k}"));
    let policy = get(conn, "policy")?.ok_or_else(|| missing("policy"))?;
    Ok(Some(Identity {
        node_id: NodeId::from_bytes(node),
        event_id: EventId::from_bytes(
            get_array(conn, "event_id")?.ok_or_else(|| missing("event_id"))?,
        ),
        device_seed: get_array(conn, "device_seed")?.ok_or_else(|| missing("device_seed"))?,
        device_token: get_string(conn, "device_token")?,
        gossip_key: get_array(conn, "gossip_key")?.ok_or_else(|| missing("gossip_key"))?,
        gossip_key_version: get_u64(conn, "gossip_key_version")?.unwrap_or(0),
        root_public_key: get_array(conn, "root_public_key")?
            .ok_or_else(|| missing("root_public_key"))?,
        policy: serde_json::from_slice(&policy)
            .map_err(|e| StoreError::Corrupt(format!("policy: {e}")))?,
        gate: get_string(conn, "gate")?.unwrap_or_default(),
        zone_name: get_string(conn, "zone_name")?,
        cloud_url: get_string(conn, "cloud_url")?,
    }))
}

fn load_ring(conn: &Connection, root: &[u8; 32]) -> Result<KeyRing, StoreError> {
    let root =
        PublicKey::from_bytes(root).map_err(|e| StoreError::Corrupt(format!("root key: {e}")))?;
    let mut ring = KeyRing::new(root);
    let mut stmt = conn.prepare("SELECT cert FROM key_certs")?;
    let certs = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    for bytes in certs {
        let cert = KeyCertificate::decode(&bytes?)
            .map_err(|e| StoreError::Corrupt(format!("key certificate: {e}")))?;
        ring.insert(cert)
            .map_err(|e| StoreError::Corrupt(format!("key certificate: {e}")))?;
    }
    let mut stmt = conn.prepare("SELECT retirement FROM key_retirements")?;
    let retirements = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    for bytes in retirements {
        let r = KeyRetirement::decode(&bytes?)
            .map_err(|e| StoreError::Corrupt(format!("key retirement: {e}")))?;
        ring.retire(r)
            .map_err(|e| StoreError::Corrupt(format!("key retirement: {e}")))?;
    }
    Ok(ring)
}

#[cfg(test)]
mod tests;
