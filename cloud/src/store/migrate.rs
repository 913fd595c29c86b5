//! Running the embedded migrations when several replicas start at once.
//!
//! On PostgreSQL every replica runs the migrations at start-up, so N
//! replicas of a new release race to upgrade one database. A replica holds
//! the session-level advisory lock [`MIGRATION_LOCK`] for the whole run: the first replica migrates, the
//! others wait, then find nothing left to apply. The lock is released with
//! the connection, also when a replica dies mid-migration (PostgreSQL drops
//! a session's advisory locks when its connection ends), and each migration
//! is its own transaction, so a half-applied one is rolled back.
//!
//! sqlx's migrator takes an advisory lock of its own (keyed on the database
//! name); ours does not depend on that default, has a key an operator can
//! find in `pg_locks` (docs/operations.md), and says in the log when a
//! replica is waiting for another.
//!
//! Before migrating, a replica compares the database's newest applied
//! migration with the newest it embeds: a database migrated by a newer
//! release (a rollback of the binary, an old replica restarted during a
//! rolling update) is refused with [`StoreError::SchemaTooNew`], since this
//! binary cannot know what the newer schema changed.
//!
//! SQLite is the single-process embedded backend: it has no advisory locks
//! and needs none.

use super::sql::map_err;
use super::{Dialect, StoreError, StoreResult};
use sqlx::{AnyConnection, AnyPool, Connection};

/// The advisory lock key held while migrating: the bytes of "GATEHOUS".
pub const MIGRATION_LOCK: i64 = 0x4741_5445_484F_5553;

/// Runs `D`'s migrations on `pool`, under [`MIGRATION_LOCK`] where the
/// backend has advisory locks. The lock is held by a connection of its own
/// (`url`), outside the pool, so even a one-connection pool can migrate.
pub(super) async fn run<D: Dialect>(url: &str, pool: &AnyPool) -> StoreResult<()> {
    if !D::ADVISORY_LOCKS {
        return migrate::<D>(pool).await;
    }
    let mut lock = AnyConnection::connect(url).await.map_err(map_err)?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .fetch_one(&mut lock)
        .await
        .map_err(map_err)?;
    if !got {
        tracing::info!(
            lock = MIGRATION_LOCK,
            "another replica is migrating the database; waiting for it"
        );
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut lock)
            .await
            .map_err(map_err)?;
    }
    let migrated = migrate::<D>(pool).await;
    // Ending the session releases the lock, whatever happened above.
    let _ = lock.close().await;
    migrated
}

async fn migrate<D: Dialect>(pool: &AnyPool) -> StoreResult<()> {
    let known = D::migrator().iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(applied) = applied_version(pool).await
        && applied > known
    {
        return Err(StoreError::SchemaTooNew {
            database: applied,
            binary: known,
        });
    }
    D::migrator()
        .run(pool)
        .await
        .map_err(|e| StoreError::Other(format!("migrations failed: {e}")))
}

/// The newest migration the database has applied (none on a fresh
/// database, which has no migrations table yet).
async fn applied_version(pool: &AnyPool) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .ok()
        .flatten()
}
