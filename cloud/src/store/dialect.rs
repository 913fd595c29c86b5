//! What differs between the two backends. Everything else is shared SQL.

use sqlx::migrate::Migrator;

/// A SQL dialect: migrations, write-transaction start and row locking.
pub trait Dialect: Send + Sync + std::fmt::Debug + 'static {
    /// `postgres` or `sqlite`.
    const NAME: &'static str;
    /// Statement that starts a transaction that will write.
    const BEGIN_WRITE: &'static str;
    /// Reads an event's manifest head and status, locking the row until
    /// commit against other writers of its tickets and manifest.
    const LOCK_EVENT: &'static str;
    /// [`Self::LOCK_EVENT`] that also waits for every transaction issuing
    /// tickets of the event (a status change: cancelling must see them all).
    const LOCK_EVENT_STATUS: &'static str;
    /// Reads an event's head and status with a lock that only keeps its
    /// status from changing: many ticket-issuing transactions hold it at
    /// once, and it does not block the manifest sequencer.
    const SHARE_EVENT: &'static str;
    /// Statements run on every new connection.
    const ON_CONNECT: &'static [&'static str];
    /// Commerce statements (inventory claims, row locks).
    const COMMERCE: &'static super::inventory::CommerceSql;
    /// Whether the backend has session advisory locks (migrations run
    /// under one, see `store::migrate`).
    const ADVISORY_LOCKS: bool;
    /// Whether orders are group-committed (`group.rs`): the batch's
    /// statements (`FOR UPDATE SKIP LOCKED`, `UPDATE ... FROM (VALUES ..)`)
    /// are PostgreSQL's; SQLite has one writer at a time anyway, and pays
    /// each order alone.
    const GROUP_COMMIT: bool;
    /// The embedded migrations.
    fn migrator() -> &'static Migrator;
}

/// PostgreSQL (production; many replicas over one database).
#[derive(Debug, Clone, Copy)]
pub struct Postgres;

/// SQLite (the embedded default and a fast test backend).
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for Postgres {
    const NAME: &'static str = "postgres";
    const BEGIN_WRITE: &'static str = "BEGIN";
    // NO KEY UPDATE still serialises every writer of the event's tickets and
    // manifest, but does not block the FOR KEY SHARE locks that foreign keys
    // to the event take: new orders (inventory holds) keep flowing while a
    // payment issues tickets.
    const LOCK_EVENT: &'static str = "SELECT status, ends_at, manifest_version, manifest_digest FROM events WHERE id = $1 FOR NO KEY UPDATE";
    // FOR UPDATE conflicts with the FOR KEY SHARE of SHARE_EVENT (and of
    // foreign keys to the event), so a status change waits for the
    // issuing transactions in flight and new ones wait for it.
    const LOCK_EVENT_STATUS: &'static str = "SELECT status, ends_at, manifest_version, manifest_digest FROM events WHERE id = $1 FOR UPDATE";
    const SHARE_EVENT: &'static str = "SELECT status, ends_at, manifest_version, manifest_digest FROM events WHERE id = $1 FOR KEY SHARE";
    const ON_CONNECT: &'static [&'static str] = &[];
    const COMMERCE: &'static super::inventory::CommerceSql = &super::inventory::POSTGRES;
    const ADVISORY_LOCKS: bool = true;
    const GROUP_COMMIT: bool = true;
    fn migrator() -> &'static Migrator {
        &PG_MIGRATOR
    }
}

impl Dialect for Sqlite {
    const NAME: &'static str = "sqlite";
    // IMMEDIATE takes the write lock up front: a deferred transaction that
    // reads then writes can fail with SQLITE_BUSY when another writer got in
    // between, and busy_timeout cannot help it.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_EVENT: &'static str =
        "SELECT status, ends_at, manifest_version, manifest_digest FROM events WHERE id = $1";
    const LOCK_EVENT_STATUS: &'static str = Self::LOCK_EVENT;
    const SHARE_EVENT: &'static str = Self::LOCK_EVENT;
    const ON_CONNECT: &'static [&'static str] = &[
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA foreign_keys = ON",
        "PRAGMA busy_timeout = 10000",
    ];
    const COMMERCE: &'static super::inventory::CommerceSql = &super::inventory::SQLITE;
    const ADVISORY_LOCKS: bool = false;
    const GROUP_COMMIT: bool = false;
    fn migrator() -> &'static Migrator {
        &SQLITE_MIGRATOR
    }
}
