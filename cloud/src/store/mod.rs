//! Storage: the [`Store`] trait (one sub-trait per domain, so later modules
//! add theirs), and its SQL implementation for two backends.
//!
//! Both backends run through sqlx's `Any` driver so every query that the two
//! dialects agree on is written once (with `$1` placeholders, ids as TEXT,
//! times as BIGINT unix milliseconds). What differs lives in a [`Dialect`]:
//! the embedded migrations, how a write transaction starts (SQLite:
//! `BEGIN IMMEDIATE`, so two writers never deadlock upgrading their locks),
//! and row locking (`FOR UPDATE` on PostgreSQL, implied by the write
//! transaction on SQLite).

pub mod chain;
mod checkins;
mod commerce;
mod console;
mod devices;
mod dialect;
mod doors;
mod events;
mod group;
mod group_rows;
pub mod inventory;
mod keys;
mod manifest;
mod market;
pub mod migrate;
#[cfg(test)]
mod migration_drift;
pub mod notifications;
mod notify_sql;
mod orders;
pub mod outbox;
mod outbox_batch;
mod payments;
mod push;
mod records;
mod refund;
mod reports;
mod sequencer;
mod settle;
mod sql;
mod staff;
#[cfg(test)]
mod tests;
mod tickets;
mod users;
pub mod wallets;
mod writes;
mod zones;

pub use chain::ChainStore;
pub use checkins::{CheckinStore, CloudScan, GateCount, ScanFilter, StoredScan, SyncOutcome};
pub use commerce::*;
pub use console::{ConsoleStore, EventOrderFilter, OrderWithBuyer, PublicEventFilter};
pub use devices::{
    DeviceRecord, DeviceStore, EnrollmentCodeRecord, GateSetup, direction_str, parse_direction,
};
pub use dialect::{Dialect, Postgres, Sqlite};
pub use doors::{DoorsStore, FleetRow, GateReport};
pub use group::{BatchError, BatchOrder, IssueBatch};
pub use keys::{
    EventKeyRow, KeyStore, Reissue, Resealer, RetireKey, SealedItem, SealedKind, signed_by,
};
pub use manifest::{EventSigner, ManifestSnapshot};
pub use notifications::NotificationStore;
pub use push::{PushHead, PushStore};
pub use records::*;
pub use sql::SqlStore;
pub use staff::{StaffRecord, StaffStore};
pub use wallets::WalletStore;
pub use zones::{DeleteZoneError, ZoneRecord, ZoneStore, ZoneUsers};

use crate::model::{EventId, ReportId, SessionId, TicketId, UnixMillis, UserId};
use async_trait::async_trait;
use std::sync::Arc;

/// A storage failure, typed so nobody matches on strings: a caller decides
/// on the kind (a refund only on [`StoreError::SoldOut`] or
/// [`StoreError::Gone`], a retry only on [`StoreError::Retryable`]), never on
/// a message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Not enough inventory left.
    #[error("not enough tickets left in this tier: asked for {asked}, {left} left")]
    SoldOut {
        /// Units asked for.
        asked: i64,
        /// Units left when asked.
        left: i64,
    },
    /// The buyer would hold more than the event allows.
    #[error("purchase limit reached: at most {limit} tickets per customer for this event")]
    PurchaseLimit {
        /// Most tickets one customer may hold at the event.
        limit: i64,
    },
    /// The event does not sell or issue tickets in its current status.
    #[error("{0}")]
    NotOnSale(String),
    /// A lifecycle step the state machine does not allow.
    #[error("this {entity} cannot go from {from} to {to}")]
    IllegalTransition {
        /// What moves (`ticket`, `order`, `event`, `listing`, `payment`).
        entity: &'static str,
        /// Current status.
        from: String,
        /// Status asked for.
        to: String,
    },
    /// A uniqueness rule refused the write (the message names the value).
    #[error("{0}")]
    Duplicate(String),
    /// What the request refers to was taken or withdrawn meanwhile (a
    /// listing sold or cancelled, a hold expired and not renewable, a code
    /// spent).
    #[error("{0}")]
    Gone(String),
    /// The object's current state refuses the request (not a lifecycle
    /// step: "the ticket is listed, cancel the listing first").
    #[error("{0}")]
    InvalidState(String),
    /// A transient failure (deadlock, serialization failure, an inventory
    /// too busy to claim from): nothing was written and the same request can
    /// succeed when retried.
    #[error("{0}")]
    Retryable(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database was migrated by a newer release than this binary.
    #[error(
        "the database schema is at migration {database}, newer than this binary knows \
         (its newest is {binary}): run the release that migrated it (or newer), \
         or restore the database from before that upgrade"
    )]
    SchemaTooNew {
        /// The newest migration applied to the database.
        database: i64,
        /// The newest migration this binary embeds.
        binary: i64,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// An illegal lifecycle step.
    pub fn illegal(entity: &'static str, from: &str, to: &str) -> Self {
        Self::IllegalTransition {
            entity,
            from: from.to_string(),
            to: to.to_string(),
        }
    }

    /// Whether the write was refused for lack of stock (sold out, or the
    /// thing bought is gone): the only refusals after which a late payment
    /// is owed back.
    pub fn is_gone_or_sold_out(&self) -> bool {
        matches!(self, Self::SoldOut { .. } | Self::Gone(_))
    }
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// Accounts and login sessions.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts an account; `Duplicate` if the email is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// By id.
    async fn user(&self, id: UserId) -> StoreResult<UserRecord>;
    /// By (lower-cased) email.
    async fn user_by_email(&self, email: &str) -> StoreResult<UserRecord>;
    /// Changes profile fields.
    async fn update_profile(
        &self,
        id: UserId,
        change: &ProfileChange,
        now: UnixMillis,
    ) -> StoreResult<UserRecord>;
    /// Changes the role.
    async fn set_role(
        &self,
        id: UserId,
        role: crate::model::Role,
        now: UnixMillis,
    ) -> StoreResult<UserRecord>;
    /// Starts a session with its first refresh token (stored as a hash).
    async fn create_session(
        &self,
        user: UserId,
        session: SessionId,
        token_hash: &str,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> StoreResult<()>;
    /// Spends `token_hash` and stores `new_hash` in the same session; a
    /// second spend of one token revokes the session.
    async fn rotate_refresh(
        &self,
        token_hash: &str,
        new_hash: &str,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes the session holding `token_hash`; returns whether one was live.
    async fn revoke_session_by_token(&self, token_hash: &str, now: UnixMillis)
    -> StoreResult<bool>;
}

/// Events, tiers and signing keys.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// The organizer's root key, inserting `candidate` if there is none yet;
    /// returns whichever is stored.
    async fn ensure_organizer_key(
        &self,
        organizer: UserId,
        candidate: &SealedKey,
        now: UnixMillis,
    ) -> StoreResult<SealedKey>;
    /// Inserts an event with its tiers and certified signing key.
    async fn create_event(&self, event: &EventRecord, key: &EventKeyRecord) -> StoreResult<()>;
    /// By id, with tiers.
    async fn event(&self, id: EventId) -> StoreResult<EventRecord>;
    /// A page of events, ascending by id.
    async fn list_events(&self, filter: &EventFilter) -> StoreResult<Vec<EventRecord>>;
    /// Edits fields; `InvalidState` once the event is over.
    async fn update_event(
        &self,
        id: EventId,
        change: &EventChange,
        now: UnixMillis,
    ) -> StoreResult<EventRecord>;
    /// Moves the lifecycle (`IllegalTransition` for an illegal step). Cancelling
    /// revokes every ticket in one manifest version.
    async fn set_event_status(
        &self,
        id: EventId,
        to: crate::model::EventStatus,
        actor: UserId,
        now: UnixMillis,
    ) -> StoreResult<EventRecord>;
    /// Adds a tier; `Duplicate` if its number or name is taken.
    async fn add_tier(&self, tier: &TierRecord, now: UnixMillis) -> StoreResult<()>;
    /// The event's current signing key: the newest one not retired.
    async fn event_key(&self, id: EventId) -> StoreResult<EventKeyRecord>;
    /// Replaces the certificate of the event's signing key `key_id` (a
    /// re-certification with a new validity window).
    async fn set_key_certificate(
        &self,
        event: EventId,
        key_id: &str,
        key: &EventKeyRecord,
    ) -> StoreResult<()>;
    /// The organizer's root key.
    async fn organizer_key(&self, organizer: UserId) -> StoreResult<SealedKey>;
    /// Adds buffered page views.
    async fn add_views(&self, views: &[(EventId, i64)]) -> StoreResult<()>;
}

/// Tickets, their audit trail, and the manifest log.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Creates tickets (and an order) atomically, taking tier capacity;
    /// `SoldOut` or `NotOnSale`.
    async fn create_tickets(&self, new: &NewTickets, now: UnixMillis) -> StoreResult<()>;
    /// By id.
    async fn ticket(&self, id: TicketId) -> StoreResult<TicketRecord>;
    /// A page of tickets, ascending by id.
    async fn list_tickets(&self, filter: &TicketFilter) -> StoreResult<Vec<TicketRecord>>;
    /// Moves a ticket's lifecycle (`IllegalTransition` for an illegal step).
    async fn change_ticket_status(
        &self,
        change: &StatusChange,
        now: UnixMillis,
    ) -> StoreResult<TicketRecord>;
    /// Audit trail, oldest first.
    async fn ticket_history(&self, id: TicketId) -> StoreResult<Vec<AuditRecord>>;
    /// Every ticket's current manifest entry, at one consistent version.
    async fn manifest_snapshot(&self, event: EventId) -> StoreResult<ManifestSnapshot>;
    /// Entries changed after version `since`, with the digest at `since`
    /// (for [`ManifestSnapshot::sign_delta`]); no entries and the current
    /// version when `since` is current. `NotFound` if `since` is ahead of
    /// the current version.
    async fn manifest_changes_since(
        &self,
        event: EventId,
        since: u64,
    ) -> StoreResult<(ManifestSnapshot, [u8; 32])>;

    /// The event's full manifest at its current version, signed by `signer`:
    /// `(version, bytes)` for `Manifest::open`.
    async fn signed_manifest(
        &self,
        event: EventId,
        signer: &EventSigner,
        issued_at: u64,
    ) -> StoreResult<(u64, Vec<u8>)> {
        let snapshot = self.manifest_snapshot(event).await?;
        let version = snapshot.version;
        let bytes = snapshot
            .sign_full(signer, issued_at)
            .map_err(|e| StoreError::Other(format!("signing manifest: {e}")))?;
        Ok((version, bytes))
    }
}

/// Figures for stats, analytics and reports, and stored reports.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Tickets checked in (at least one admitted entry scan): the one
    /// figure every endpoint reports as checked in / admitted.
    async fn checked_in(&self, event: EventId) -> StoreResult<i64>;
    /// Per-tier sales.
    async fn tier_stats(&self, event: EventId) -> StoreResult<Vec<TierStats>>;
    /// Views → orders → paid → checked in.
    async fn funnel(&self, event: EventId) -> StoreResult<Funnel>;
    /// Paid primary orders (status paid or fulfilled) by `paid_at` in
    /// buckets of `bucket_ms`, ascending; empty buckets are left out.
    async fn sales_over_time(
        &self,
        event: EventId,
        bucket_ms: i64,
    ) -> StoreResult<Vec<SalesBucket>>;
    /// Orders by channel and status.
    async fn revenue(&self, event: EventId) -> StoreResult<Vec<RevenueLine>>;
    /// Valid tickets by holder country and birth decade.
    async fn demographics(&self, event: EventId) -> StoreResult<Vec<DemographicLine>>;
    /// Stores a report.
    async fn save_report(&self, report: &ReportRecord) -> StoreResult<()>;
    /// By id.
    async fn report(&self, id: ReportId) -> StoreResult<ReportRecord>;
    /// An event's reports, ascending by id.
    async fn list_reports(
        &self,
        event: EventId,
        after: Option<ReportId>,
        limit: i64,
    ) -> StoreResult<Vec<ReportRecord>>;
}

/// Everything the service stores. Later domains (orders, devices) add
/// sub-traits here.
#[async_trait]
pub trait Store:
    UserStore
    + EventStore
    + TicketStore
    + ReportStore
    + OrderStore
    + PaymentStore
    + MarketStore
    + DeviceStore
    + CheckinStore
    + StaffStore
    + ChainStore
    + WalletStore
    + NotificationStore
    + ConsoleStore
    + DoorsStore
    + ZoneStore
    + PushStore
    + KeyStore
    + std::fmt::Debug
{
    /// Which backend (`postgres` or `sqlite`).
    fn backend(&self) -> &'static str;
    /// Round-trips to the database (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Closes the pool.
    async fn close(&self);
}

/// Opens the backend named by the URL scheme and runs its migrations.
/// The file a `sqlite:` URL names (none for in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path.is_empty() || path == ":memory:" || query.contains("mode=memory");
    (!memory).then(|| std::path::PathBuf::from(path))
}

/// Creates the database file readable by its owner only (0600, like the
/// keys beside it) before SQLite would create it with the umask's 0644;
/// SQLite gives its `-wal` and `-shm` files the database file's mode.
fn create_private(path: &std::path::Path) -> StoreResult<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Other(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

/// Connects to the database the URL names, creating a SQLite file 0600.
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            SqlStore::<Postgres>::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("sqlite:") {
        if let Some(path) = sqlite_file(url) {
            create_private(&path)?;
        }
        Ok(Arc::new(
            SqlStore::<Sqlite>::connect(url, max_connections).await?,
        ))
    } else {
        Err(StoreError::Other(
            "database URL must start with postgres:// or sqlite:".into(),
        ))
    }
}
