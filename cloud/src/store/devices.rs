//! Gate devices: enrollment codes, enrolled devices and their tokens, and
//! each event's gossip key (sealed like signing keys).
//!
//! Codes and device tokens are stored as SHA-256 only (both carry at least
//! 58 bits of randomness, so a plain hash is enough). A code is spent with a
//! conditional `UPDATE ... WHERE used_at IS NULL AND expires_at > now` in the
//! same transaction that inserts the device: two devices racing for one code
//! cannot both enroll.

use super::sql::{col, map_err, not_found, parsed, parsed_opt};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sync_protocol::{Direction, NodeId};

/// How a gate is set up: what an enrollment code hands to its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSetup {
    /// The event.
    pub event_id: EventId,
    /// Gate label, e.g. "North 2".
    pub gate: String,
    /// Zone guarded (None: any zone).
    pub zone: Option<u8>,
    /// Entry or exit.
    pub direction: Direction,
    /// Tolerance at both ends of a validity window.
    pub grace_secs: u32,
    /// Refuse tickets missing from the manifest.
    pub require_listed: bool,
}

/// An enrollment code (its hash).
#[derive(Debug, Clone)]
pub struct EnrollmentCodeRecord {
    /// SHA-256 of the normalised code, hex.
    pub code_hash: String,
    /// What the enrolled device gets.
    pub setup: GateSetup,
    /// Who made it.
    pub created_by: UserId,
    /// Created.
    pub created_at: UnixMillis,
    /// Unusable from then on.
    pub expires_at: UnixMillis,
    /// When a device used it.
    pub used_at: Option<UnixMillis>,
}

/// An enrolled device.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// Id, also the device's node id in the check-in CRDT.
    pub id: NodeId,
    /// Name the device gave.
    pub name: String,
    /// Gate setup from its code.
    pub setup: GateSetup,
    /// ed25519 public key it proved possession of.
    pub public_key: Vec<u8>,
    /// SHA-256 of its bearer token, hex.
    pub token_hash: String,
    /// Enrolled.
    pub enrolled_at: UnixMillis,
    /// Last authenticated call (updated at most once a minute).
    pub last_seen_at: Option<UnixMillis>,
    /// Revoked (the token stops working at once).
    pub revoked_at: Option<UnixMillis>,
    /// Who put it on the event: the creator of its enrollment code, or the
    /// account that enrolled it directly (staff self-enrollment).
    pub enrolled_by: Option<UserId>,
}

/// Enrollment codes, devices and gossip keys.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Stores a new code.
    async fn create_enrollment_code(&self, code: &EnrollmentCodeRecord) -> StoreResult<()>;
    /// By hash.
    async fn enrollment_code(&self, code_hash: &str) -> StoreResult<EnrollmentCodeRecord>;
    /// Spends the code and inserts the device in one transaction;
    /// `Gone` when the code was used or expired meanwhile.
    async fn enroll_device(
        &self,
        code_hash: &str,
        device: &DeviceRecord,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Inserts a device enrolled without a code (staff self-enrollment).
    /// With `roster_member`, only while that account is on the event's
    /// staff roster, checked in the inserting statement itself (a removal
    /// that committed first wins): `NotFound("staff member")` otherwise.
    async fn enroll_device_directly(
        &self,
        device: &DeviceRecord,
        roster_member: Option<UserId>,
    ) -> StoreResult<()>;
    /// By token hash.
    async fn device_by_token(&self, token_hash: &str) -> StoreResult<DeviceRecord>;
    /// By id.
    async fn device(&self, id: NodeId) -> StoreResult<DeviceRecord>;
    /// An event's devices, by id.
    async fn list_devices(&self, event: EventId) -> StoreResult<Vec<DeviceRecord>>;
    /// Revokes (idempotent: the first revocation time is kept).
    async fn revoke_device(&self, id: NodeId, now: UnixMillis) -> StoreResult<DeviceRecord>;
    /// Records an authenticated call.
    async fn touch_device(&self, id: NodeId, now: UnixMillis) -> StoreResult<()>;
    /// The event's sealed gossip key, inserting `candidate` if there is none.
    async fn ensure_gossip_key(
        &self,
        event: EventId,
        candidate: &[u8],
        now: UnixMillis,
    ) -> StoreResult<Vec<u8>>;
}

/// `entry` / `exit`.
pub fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Entry => "entry",
        Direction::Exit => "exit",
    }
}

/// Parses `entry` / `exit`.
pub fn parse_direction(s: &str) -> StoreResult<Direction> {
    match s {
        "entry" => Ok(Direction::Entry),
        "exit" => Ok(Direction::Exit),
        other => Err(StoreError::Other(format!("unknown direction {other:?}"))),
    }
}

fn setup_from_row(row: &AnyRow) -> StoreResult<GateSetup> {
    let zone: Option<i64> = col(row, "zone")?;
    let require_listed: i64 = col(row, "require_listed")?;
    let grace: i64 = col(row, "grace_secs")?;
    Ok(GateSetup {
        event_id: parsed(row, "event_id")?,
        gate: col(row, "gate")?,
        zone: zone
            .map(|z| u8::try_from(z).map_err(|_| StoreError::Other("zone out of range".into())))
            .transpose()?,
        direction: parse_direction(&col::<String>(row, "direction")?)?,
        grace_secs: u32::try_from(grace)
            .map_err(|_| StoreError::Other("grace_secs out of range".into()))?,
        require_listed: require_listed != 0,
    })
}

fn device_from_row(row: &AnyRow) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: parsed(row, "id")?,
        name: col(row, "name")?,
        setup: setup_from_row(row)?,
        public_key: col(row, "public_key")?,
        token_hash: col(row, "token_hash")?,
        enrolled_at: col(row, "enrolled_at")?,
        last_seen_at: col(row, "last_seen_at")?,
        revoked_at: col(row, "revoked_at")?,
        enrolled_by: parsed_opt(row, "enrolled_by")?,
    })
}

const SELECT_DEVICE: &str = "SELECT id, event_id, name, gate, zone, direction, grace_secs, require_listed, \
     public_key, token_hash, enrolled_at, last_seen_at, revoked_at, enrolled_by FROM devices";

#[async_trait]
impl<D: Dialect> DeviceStore for SqlStore<D> {
    async fn create_enrollment_code(&self, c: &EnrollmentCodeRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO enrollment_codes (code_hash, event_id, gate, zone, direction, grace_secs, require_listed, \
             created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(c.code_hash.clone())
        .bind(c.setup.event_id.to_string())
        .bind(c.setup.gate.clone())
        .bind(c.setup.zone.map(i64::from))
        .bind(direction_str(c.setup.direction))
        .bind(i64::from(c.setup.grace_secs))
        .bind(i64::from(c.setup.require_listed))
        .bind(c.created_by.to_string())
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn enrollment_code(&self, code_hash: &str) -> StoreResult<EnrollmentCodeRecord> {
        let row = sqlx::query(
            "SELECT code_hash, event_id, gate, zone, direction, grace_secs, require_listed, created_by, \
             created_at, expires_at, used_at FROM enrollment_codes WHERE code_hash = $1",
        )
        .bind(code_hash.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(not_found("enrollment code"))?;
        Ok(EnrollmentCodeRecord {
            code_hash: col(&row, "code_hash")?,
            setup: setup_from_row(&row)?,
            created_by: parsed(&row, "created_by")?,
            created_at: col(&row, "created_at")?,
            expires_at: col(&row, "expires_at")?,
            used_at: col(&row, "used_at")?,
        })
    }

    async fn enroll_device(
        &self,
        code_hash: &str,
        d: &DeviceRecord,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let spent = sqlx::query(
            "UPDATE enrollment_codes SET used_at = $1, device_id = $2 \
             WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(d.id.to_string())
        .bind(code_hash.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if spent != 1 {
            return Err(StoreError::Gone(
                "the enrollment code was used or has expired".into(),
            ));
        }
        bind_device(
            sqlx::query(
                "INSERT INTO devices (id, event_id, name, gate, zone, direction, grace_secs, require_listed, \
                 public_key, token_hash, enrolled_at, enrolled_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            ),
            d,
        )
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn enroll_device_directly(
        &self,
        d: &DeviceRecord,
        roster_member: Option<UserId>,
    ) -> StoreResult<()> {
        let inserted = bind_device(
            sqlx::query(
                "INSERT INTO devices (id, event_id, name, gate, zone, direction, grace_secs, require_listed, \
                 public_key, token_hash, enrolled_at, enrolled_by) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
                 WHERE $13 IS NULL OR EXISTS (SELECT 1 FROM event_staff WHERE event_id = $2 AND user_id = $13)",
            ),
            d,
        )
        .bind(roster_member.map(|u| u.to_string()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if inserted != 1 {
            return Err(StoreError::NotFound("staff member"));
        }
        Ok(())
    }

    async fn device_by_token(&self, token_hash: &str) -> StoreResult<DeviceRecord> {
        let sql = format!("{SELECT_DEVICE} WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("device"))?;
        device_from_row(&row)
    }

    async fn device(&self, id: NodeId) -> StoreResult<DeviceRecord> {
        let sql = format!("{SELECT_DEVICE} WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("device"))?;
        device_from_row(&row)
    }

    async fn list_devices(&self, event: EventId) -> StoreResult<Vec<DeviceRecord>> {
        let sql = format!("{SELECT_DEVICE} WHERE event_id = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(device_from_row).collect()
    }

    async fn revoke_device(&self, id: NodeId, now: UnixMillis) -> StoreResult<DeviceRecord> {
        sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        self.device(id).await
    }

    async fn touch_device(&self, id: NodeId, now: UnixMillis) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn ensure_gossip_key(
        &self,
        event: EventId,
        candidate: &[u8],
        now: UnixMillis,
    ) -> StoreResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO event_gossip_keys (event_id, sealed_key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.to_string())
        .bind(candidate.to_vec())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        let row = sqlx::query("SELECT sealed_key FROM event_gossip_keys WHERE event_id = $1")
            .bind(event.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("gossip key"))?;
        col(&row, "sealed_key")
    }
}

/// Binds a device row's twelve columns as `$1..$12`, in the order both
/// enrollment inserts name them.
fn bind_device<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    d: &DeviceRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(d.id.to_string())
        .bind(d.setup.event_id.to_string())
        .bind(d.name.clone())
        .bind(d.setup.gate.clone())
        .bind(d.setup.zone.map(i64::from))
        .bind(direction_str(d.setup.direction))
        .bind(i64::from(d.setup.grace_secs))
        .bind(i64::from(d.setup.require_listed))
        .bind(d.public_key.clone())
        .bind(d.token_hash.clone())
        .bind(d.enrolled_at)
        .bind(d.enrolled_by.map(|u| u.to_string()))
}
