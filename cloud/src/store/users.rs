//! Accounts and refresh-token sessions.
//!
//! A session is the family of refresh tokens rotated from one login. Only
//! SHA-256 hashes of refresh tokens are stored. Spending a token is a
//! conditional `UPDATE ... WHERE used_at IS NULL`, so of two concurrent spends
//! exactly one wins and the other is treated as reuse.

use super::sql::{col, map_err, not_found, parsed};
use super::{
    Dialect, ProfileChange, RefreshOutcome, SqlStore, StoreError, StoreResult, UserRecord,
    UserStore,
};
use crate::model::{Role, SessionId, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;

macro_rules! select_user {
    ($tail:literal) => {
        concat!(
            "SELECT id, email, password_hash, display_name, role, country, birth_year, created_at, updated_at FROM users",
            $tail
        )
    };
}

pub(super) fn user_from_row(row: &AnyRow) -> StoreResult<UserRecord> {
    let birth_year: Option<i64> = col(row, "birth_year")?;
    Ok(UserRecord {
        id: parsed(row, "id")?,
        email: col(row, "email")?,
        password_hash: col(row, "password_hash")?,
        display_name: col(row, "display_name")?,
        role: parsed(row, "role")?,
        country: col(row, "country")?,
        birth_year: birth_year.and_then(|y| i32::try_from(y).ok()),
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

impl<D: Dialect> SqlStore<D> {
    async fn fetch_user(&self, sql: &'static str, key: String) -> StoreResult<UserRecord> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("user"))?;
        user_from_row(&row)
    }

    async fn revoke_session(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        session: &str,
        reason: &str,
        now: UnixMillis,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason.to_string())
        .bind(session.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl<D: Dialect> UserStore for SqlStore<D> {
    async fn create_user(&self, u: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, display_name, role, country, birth_year, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(u.id.to_string())
        .bind(u.email.clone())
        .bind(u.password_hash.clone())
        .bind(u.display_name.clone())
        .bind(u.role.as_str())
        .bind(u.country.clone())
        .bind(u.birth_year.map(i64::from))
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("email is already registered".into()),
            other => other,
        })?;
        Ok(())
    }

    async fn user(&self, id: UserId) -> StoreResult<UserRecord> {
        self.fetch_user(select_user!(" WHERE id = $1"), id.to_string())
            .await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<UserRecord> {
        self.fetch_user(select_user!(" WHERE email = $1"), email.to_string())
            .await
    }

    async fn update_profile(
        &self,
        id: UserId,
        c: &ProfileChange,
        now: UnixMillis,
    ) -> StoreResult<UserRecord> {
        let current = self.user(id).await?;
        let name = c.display_name.clone().unwrap_or(current.display_name);
        let country = c.country.clone().unwrap_or(current.country);
        let birth_year = c.birth_year.unwrap_or(current.birth_year);
        sqlx::query(
            "UPDATE users SET display_name = $1, country = $2, birth_year = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(name)
        .bind(country)
        .bind(birth_year.map(i64::from))
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        self.user(id).await
    }

    async fn set_role(&self, id: UserId, role: Role, now: UnixMillis) -> StoreResult<UserRecord> {
        let done = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
            .bind(role.as_str())
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        self.user(id).await
    }

    async fn create_session(
        &self,
        user: UserId,
        session: SessionId,
        token_hash: &str,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(session.to_string())
            .bind(user.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash.to_string())
        .bind(session.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn rotate_refresh(
        &self,
        token_hash: &str,
        new_hash: &str,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.revoked_at \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(token_hash.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Unknown);
        };
        let session: String = col(&row, "session_id")?;
        let revoked_at: Option<i64> = col(&row, "revoked_at")?;
        let used_at: Option<i64> = col(&row, "used_at")?;
        let token_expires: i64 = col(&row, "expires_at")?;
        if revoked_at.is_some() {
            return Ok(RefreshOutcome::Revoked);
        }
        let spent = if used_at.is_none() {
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
            )
            .bind(now)
            .bind(token_hash.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
        } else {
            0
        };
        if spent == 0 {
            // Someone already spent this token: a stolen copy is in use, so
            // the whole session goes.
            Self::revoke_session(&mut tx, &session, "refresh token reused", now).await?;
            tx.commit().await.map_err(map_err)?;
            return Ok(RefreshOutcome::Reused);
        }
        if token_expires <= now {
            tx.rollback().await.map_err(map_err)?;
            return Ok(RefreshOutcome::Expired);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(new_hash.to_string())
        .bind(session.clone())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(RefreshOutcome::Rotated {
            user_id: parsed(&row, "user_id")?,
            session_id: session
                .parse()
                .map_err(|e| StoreError::Other(format!("session id: {e}")))?,
        })
    }

    async fn revoke_session_by_token(
        &self,
        token_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let session: Option<String> =
            sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some(session) = session else {
            return Ok(false);
        };
        let n = Self::revoke_session(&mut tx, &session, "logout", now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(n > 0)
    }
}
