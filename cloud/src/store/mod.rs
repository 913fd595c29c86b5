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

mod checkins;
mod commerce;
mod console;
mod devices;
mod dialect;
mod doors;
mod events;
pub mod inventory;
mod manifest;
mod market;
mod orders;
mod payments;
mod records;
mod refund;
mod reports;
mod settle;
mod sql;
#[cfg(test)]
mod tests;
mod tickets;
mod users;

pub use checkins::{CheckinStore, CloudScan, GateCount, ScanFilter, StoredScan, SyncOutcome};
pub use commerce::*;
pub use console::{ConsoleStore, EventOrderFilter, OrderWithBuyer, PublicEventFilter};
pub use devices::{
    DeviceRecord, DeviceStore, EnrollmentCodeRecord, GateSetup, direction_str, parse_direction,
};
pub use dialect::{Dialect, Postgres, Sqlite};
pub use doors::{DoorsStore, FleetRow, GateReport};
pub use manifest::{EventSigner, ManifestSnapshot};
pub use records::*;
pub use sql::SqlStore;

use crate::model::{EventId, ReportId, SessionId, TicketId, UnixMillis, UserId};
use async_trait::async_trait;
use std::sync::Arc;

/// A storage failure, typed so nobody matches on strings.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule or a state check refused the write.
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// Accounts and login sessions.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts an account; `Conflict` if the email is taken.
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
    /// Edits fields; `Conflict` once the event is over.
    async fn update_event(
        &self,
        id: EventId,
        change: &EventChange,
        now: UnixMillis,
    ) -> StoreResult<EventRecord>;
    /// Moves the lifecycle (`Conflict` for an illegal step). Cancelling
    /// revokes every ticket in one manifest version.
    async fn set_event_status(
        &self,
        id: EventId,
        to: crate::model::EventStatus,
        actor: UserId,
        now: UnixMillis,
    ) -> StoreResult<EventRecord>;
    /// Adds a tier; `Conflict` if its number or name is taken.
    async fn add_tier(&self, tier: &TierRecord, now: UnixMillis) -> StoreResult<()>;
    /// The event's current signing key.
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
    /// `Conflict` when sold out or the event is not on sale.
    async fn create_tickets(&self, new: &NewTickets, now: UnixMillis) -> StoreResult<()>;
    /// By id.
    async fn ticket(&self, id: TicketId) -> StoreResult<TicketRecord>;
    /// A page of tickets, ascending by id.
    async fn list_tickets(&self, filter: &TicketFilter) -> StoreResult<Vec<TicketRecord>>;
    /// Moves a ticket's lifecycle (`Conflict` for an illegal step).
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
    /// Per-tier sales.
    async fn tier_stats(&self, event: EventId) -> StoreResult<Vec<TierStats>>;
    /// Views → orders → paid → checked in.
    async fn funnel(&self, event: EventId) -> StoreResult<Funnel>;
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
    + ConsoleStore
    + DoorsStore
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
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            SqlStore::<Postgres>::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqlStore::<Sqlite>::connect(url, max_connections).await?,
        ))
    } else {
        Err(StoreError::Other(
            "database URL must start with postgres:// or sqlite:".into(),
        ))
    }
}
