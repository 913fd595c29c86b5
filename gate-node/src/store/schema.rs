//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! Invariants: a migration that has shipped is never edited (add a new file);
//! migrations are additive (new tables, new nullable columns), so the previous
//! release still reads a database this release has migrated; a database newer
//! than this build is refused rather than guessed at.

use super::StoreError;
use rusqlite::Connection;

/// Every migration in order; index + 1 is the version it produces.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_sync_cursors.sql"),
    include_str!("migrations/003_signed_records.sql"),
    include_str!("migrations/004_key_retirements.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The database's schema version.
pub fn version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("user_version {v}")))
}

/// Brings the database up to [`SCHEMA_VERSION`], each step in its own
/// transaction together with its `user_version` bump.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current = version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
