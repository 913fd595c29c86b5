//! The SQL store shared by both backends, parameterised by its [`Dialect`].

use super::{Dialect, Store, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

/// A [`Store`] over one connection pool.
#[derive(Debug, Clone)]
pub struct SqlStore<D: Dialect> {
    pub(super) pool: AnyPool,
    /// Where this process's manifest publishers queue (`sequencer.rs`).
    pub(super) publishers: std::sync::Arc<super::sequencer::Publishers>,
    _dialect: PhantomData<D>,
}

static DRIVERS: Once = Once::new();

impl<D: Dialect> SqlStore<D> {
    /// Connects and runs the dialect's migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    for stmt in D::ON_CONNECT {
                        conn.execute(*stmt).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(map_err)?;
        super::migrate::run::<D>(url, &pool).await?;
        Ok(Self {
            pool,
            publishers: Default::default(),
            _dialect: PhantomData,
        })
    }

    /// Starts a transaction that will write.
    pub(super) async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        if D::BEGIN_WRITE == "BEGIN" {
            self.pool.begin().await.map_err(map_err)
        } else {
            self.pool.begin_with(D::BEGIN_WRITE).await.map_err(map_err)
        }
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps driver errors to typed store errors.
pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row"),
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => {
                StoreError::Duplicate("a record with the same unique value exists".into())
            }
            ErrorKind::ForeignKeyViolation => {
                StoreError::InvalidState("a referenced record does not exist".into())
            }
            ErrorKind::CheckViolation => {
                StoreError::InvalidState("the change would break a consistency rule".into())
            }
            // PostgreSQL deadlock_detected / serialization_failure /
            // lock_not_available, SQLite BUSY / LOCKED (and their extended
            // codes): the transaction was rolled back and a retry can succeed.
            _ if is_transient(db.code().as_deref()) => {
                StoreError::Retryable("a concurrent change got in the way; try again".into())
            }
            _ => StoreError::Other(e.to_string()),
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// Whether a database error code names a transient failure.
fn is_transient(code: Option<&str>) -> bool {
    match code {
        Some("40P01" | "40001" | "55P03") => true,
        // SQLite primary codes 5 (BUSY) and 6 (LOCKED); extended codes keep
        // the primary one in their low byte. (PostgreSQL's SQLSTATEs are
        // always five characters; SQLite's codes are shorter.)
        Some(c) if c.len() < 5 => c.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)),
        Some(_) => false,
        None => false,
    }
}

/// Reads a column.
pub(super) fn col<'r, T>(row: &'r AnyRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Other(format!("column {name}: {e}")))
}

/// Reads a text column and parses it (ids, enums).
pub(super) fn parsed<T: FromStr>(row: &AnyRow, name: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    let s: String = col(row, name)?;
    s.parse()
        .map_err(|e| StoreError::Other(format!("column {name}: {e}")))
}

/// Reads a nullable text column and parses it.
pub(super) fn parsed_opt<T: FromStr>(row: &AnyRow, name: &str) -> StoreResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let s: Option<String> = col(row, name)?;
    s.map(|s| {
        s.parse()
            .map_err(|e| StoreError::Other(format!("column {name}: {e}")))
    })
    .transpose()
}

/// Reads an integer column into a narrower type.
pub(super) fn narrow<T: TryFrom<i64>>(row: &AnyRow, name: &str) -> StoreResult<T> {
    let v: i64 = col(row, name)?;
    T::try_from(v).map_err(|_| StoreError::Other(format!("column {name}: {v} out of range")))
}

/// Reads a 32-byte column.
pub(super) fn bytes32(row: &AnyRow, name: &str) -> StoreResult<[u8; 32]> {
    let v: Vec<u8> = col(row, name)?;
    v.try_into()
        .map_err(|_| StoreError::Other(format!("column {name}: not 32 bytes")))
}

/// `NotFound(what)` for a missing row, other errors mapped.
pub(super) fn not_found(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::RowNotFound => StoreError::NotFound(what),
        other => map_err(other),
    }
}
