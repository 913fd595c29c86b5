//! The per-event staff roster: which staff accounts work which event's door.

use super::events::event_from_row;
use super::sql::{col, map_err, parsed};
use super::{Dialect, EventRecord, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, UnixMillis, UserId};
use async_trait::async_trait;

/// One staff member of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRecord {
    /// The event.
    pub event_id: EventId,
    /// The staff account.
    pub user_id: UserId,
    /// Their email.
    pub email: String,
    /// Their display name.
    pub display_name: String,
    /// Who added them.
    pub added_by: UserId,
    /// When.
    pub created_at: UnixMillis,
}

/// The roster.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Adds `user` to `event`'s staff; `Duplicate` if they are on it.
    async fn add_staff(
        &self,
        event: EventId,
        user: UserId,
        added_by: UserId,
        now: UnixMillis,
    ) -> StoreResult<StaffRecord>;
    /// Removes `user` from `event`'s staff; `NotFound` if they were not on it.
    async fn remove_staff(&self, event: EventId, user: UserId) -> StoreResult<()>;
    /// The event's staff, ascending by user id.
    async fn list_staff(&self, event: EventId) -> StoreResult<Vec<StaffRecord>>;
    /// Whether `user` is on `event`'s staff.
    async fn is_staff(&self, event: EventId, user: UserId) -> StoreResult<bool>;
    /// The events on whose roster `user` is (any status), with tiers,
    /// ascending by id after `after`.
    async fn staff_events(
        &self,
        user: UserId,
        after: Option<EventId>,
        limit: i64,
    ) -> StoreResult<Vec<EventRecord>>;
}

const SELECT_STAFF: &str = "SELECT s.event_id, s.user_id, u.email, u.display_name, s.added_by, s.created_at \
     FROM event_staff s JOIN users u ON u.id = s.user_id";

fn staff_from_row(row: &sqlx::any::AnyRow) -> StoreResult<StaffRecord> {
    Ok(StaffRecord {
        event_id: parsed(row, "event_id")?,
        user_id: parsed(row, "user_id")?,
        email: col(row, "email")?,
        display_name: col(row, "display_name")?,
        added_by: parsed(row, "added_by")?,
        created_at: col(row, "created_at")?,
    })
}

#[async_trait]
impl<D: Dialect> StaffStore for SqlStore<D> {
    async fn add_staff(
        &self,
        event: EventId,
        user: UserId,
        added_by: UserId,
        now: UnixMillis,
    ) -> StoreResult<StaffRecord> {
        sqlx::query(
            "INSERT INTO event_staff (event_id, user_id, added_by, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(event.to_string())
        .bind(user.to_string())
        .bind(added_by.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Duplicate(_) => {
                StoreError::Duplicate("this account is already on the event's staff".into())
            }
            other => other,
        })?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_STAFF} WHERE s.event_id = $1 AND s.user_id = $2"
        )))
        .bind(event.to_string())
        .bind(user.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        staff_from_row(&row)
    }

    async fn remove_staff(&self, event: EventId, user: UserId) -> StoreResult<()> {
        let n = sqlx::query("DELETE FROM event_staff WHERE event_id = $1 AND user_id = $2")
            .bind(event.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("staff member"));
        }
        Ok(())
    }

    async fn list_staff(&self, event: EventId) -> StoreResult<Vec<StaffRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_STAFF} WHERE s.event_id = $1 ORDER BY s.user_id"
        )))
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(staff_from_row).collect()
    }

    async fn is_staff(&self, event: EventId, user: UserId) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM event_staff WHERE event_id = $1 AND user_id = $2",
        )
        .bind(event.to_string())
        .bind(user.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn staff_events(
        &self,
        user: UserId,
        after: Option<EventId>,
        limit: i64,
    ) -> StoreResult<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT e.id, e.organizer_id, e.name, e.description, e.venue, e.starts_at, e.ends_at, \
             e.currency, e.status, e.manifest_version, e.created_at, e.updated_at \
             FROM events e JOIN event_staff s ON s.event_id = e.id \
             WHERE s.user_id = $1 AND ($2 IS NULL OR e.id > $2) ORDER BY e.id LIMIT $3",
        )
        .bind(user.to_string())
        .bind(after.map(|a| a.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        self.attach_tiers(&mut events).await?;
        Ok(events)
    }
}
