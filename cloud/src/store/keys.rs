//! Key rotation at rest: an event's signing keys over time (added,
//! retired with the tickets they signed re-issued in the same
//! transaction), and re-sealing every sealed secret under a new master key
//! (`cloud rekey`), all rows in one transaction.
//!
//! Invariants: an event always keeps at least one key in service (the
//! newest one signs); a retired key's row stays, with the root-signed
//! retirement statement gates learn; after a retirement commits, no valid
//! ticket of the event holds a credential signed by the retired key.

use super::manifest::entry_for;
use super::notify_sql::{secrets_from_json, secrets_to_json};
use super::sql::{col, map_err, not_found};
use super::tickets::{audit, select_ticket, ticket_from_row};
use super::{Dialect, EventKeyRecord, SqlStore, StoreError, StoreResult, TicketRecord};
use crate::model::{EventId, TicketId, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use std::collections::HashMap;

/// One signing key of an event as stored, in service or retired.
#[derive(Debug, Clone)]
pub struct EventKeyRow {
    /// The key and its certificate.
    pub record: EventKeyRecord,
    /// When it was added, unix ms.
    pub created_at: UnixMillis,
    /// When it was retired, unix ms (`None`: in service).
    pub retired_at: Option<UnixMillis>,
    /// The encoded root-signed `KeyRetirement`, once retired.
    pub retirement: Option<Vec<u8>>,
}

/// A ticket whose credential is signed again by the event's current key.
#[derive(Debug, Clone)]
pub struct Reissue {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its generation when the new credential was signed (checked).
    pub from_generation: u16,
    /// The `TK1:` text of the new credential, at `from_generation + 1`.
    pub credential: String,
}

/// A retirement of one event key.
#[derive(Debug, Clone)]
pub struct RetireKey {
    /// The event.
    pub event: EventId,
    /// The retired key (hex key id).
    pub key_id: String,
    /// The encoded root-signed `KeyRetirement`.
    pub retirement: Vec<u8>,
    /// Every valid ticket the key signed, with its new credential.
    pub reissue: Vec<Reissue>,
    /// Who retired it.
    pub actor: UserId,
    /// When.
    pub now: UnixMillis,
}

/// Which secret a sealed value is: with the id it names, its AEAD
/// associated data (so the row a seal belongs to is checked on open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedKind {
    /// `organizer_keys.sealed_seed`: an organizer's root key.
    OrganizerRoot,
    /// `event_keys.sealed_seed`: an event signing key.
    EventKey,
    /// `event_gossip_keys.sealed_key` (the first gossip key of an event).
    GossipKey,
    /// `device_roster_versions.sealed_gossip_key`.
    RosterGossipKey,
    /// `wallets.sealed_key`: a custodial wallet.
    Wallet,
    /// One entry of `webhook_endpoints.secrets`.
    WebhookSecret,
}

impl SealedKind {
    /// Every kind, in the order `cloud rekey` reports them.
    pub const ALL: [SealedKind; 6] = [
        Self::OrganizerRoot,
        Self::EventKey,
        Self::GossipKey,
        Self::RosterGossipKey,
        Self::Wallet,
        Self::WebhookSecret,
    ];

    /// The table (and column) it lives in.
    pub fn table(self) -> &'static str {
        match self {
            Self::OrganizerRoot => "organizer_keys",
            Self::EventKey => "event_keys",
            Self::GossipKey => "event_gossip_keys",
            Self::RosterGossipKey => "device_roster_versions",
            Self::Wallet => "wallets",
            Self::WebhookSecret => "webhook_endpoints",
        }
    }

    /// The associated data its seal is bound to; the same strings the
    /// modules that seal them use (`crypto::signing`, `device_sync`,
    /// `wallets`, `notifications::api`).
    pub fn aad(self, owner: &str) -> String {
        match self {
            Self::OrganizerRoot => format!("organizer-root/{owner}"),
            Self::EventKey => format!("event-key/{owner}"),
            Self::GossipKey | Self::RosterGossipKey => format!("gossip-key/{owner}"),
            Self::Wallet => format!("wallet-key/{owner}"),
            Self::WebhookSecret => format!("webhook-secret/{owner}"),
        }
    }
}

/// One sealed value, for re-sealing.
#[derive(Debug, Clone)]
pub struct SealedItem {
    /// What it is.
    pub kind: SealedKind,
    /// The id its associated data names (organizer, event, wallet, endpoint).
    pub owner: String,
    /// Nonce and ciphertext.
    pub sealed: Vec<u8>,
}

/// Opens a seal under the old master key and seals it under the new one;
/// an `Err` (a seal that does not open) rolls the whole re-sealing back.
pub type Resealer<'a> = dyn Fn(&SealedItem) -> Result<Vec<u8>, String> + Send + Sync + 'a;

/// Signing keys over time, and the master key's seals.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every signing key of the event, oldest first.
    async fn event_keys(&self, event: EventId) -> StoreResult<Vec<EventKeyRow>>;
    /// Adds a signing key to a live event: from now on it signs. Refuses
    /// (`InvalidState`) when `max_in_service` keys are already in service.
    async fn add_event_key(
        &self,
        event: EventId,
        key: &EventKeyRecord,
        max_in_service: usize,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// The event's valid tickets that hold a credential.
    async fn tickets_with_credentials(&self, event: EventId) -> StoreResult<Vec<TicketRecord>>;
    /// Retires a key and stores the re-issued credentials of every valid
    /// ticket it signed, with one new manifest version, in one transaction.
    /// `Gone` if already retired, `InvalidState` if it is the last key in
    /// service, `Retryable` if a ticket it signed is missing from
    /// `reissue` or changed meanwhile.
    async fn retire_event_key(&self, retire: &RetireKey) -> StoreResult<usize>;
    /// Re-seals every sealed value with `reseal`, in one transaction;
    /// returns how many of each kind. Nothing changes if any fails.
    async fn reseal_all(&self, reseal: &Resealer<'_>) -> StoreResult<Vec<(SealedKind, usize)>>;
    /// One sealed value, if any exists (to check a master key at start-up).
    async fn sealed_sample(&self) -> StoreResult<Option<SealedItem>>;
}

/// Whether a `TK1:` credential was signed by `key_id` (hex).
pub fn signed_by(credential: &str, key_id: &str) -> bool {
    sync_protocol::Credential::from_qr_text(credential)
        .is_ok_and(|c| c.key_id.to_string() == key_id)
}

fn key_row(row: &AnyRow) -> StoreResult<EventKeyRow> {
    Ok(EventKeyRow {
        record: EventKeyRecord {
            key: super::SealedKey {
                key_id: col(row, "key_id")?,
                public_key: col(row, "public_key")?,
                sealed_seed: col(row, "sealed_seed")?,
            },
            certificate: col(row, "certificate")?,
            not_before: col(row, "not_before")?,
            not_after: col(row, "not_after")?,
        },
        created_at: col(row, "created_at")?,
        retired_at: col(row, "retired_at")?,
        retirement: col(row, "retirement")?,
    })
}

/// The event's valid tickets that hold a credential.
macro_rules! valid_with_credential {
    () => {
        select_ticket!(
            " WHERE t.event_id = $1 AND t.credential IS NOT NULL \
              AND t.status IN ('issued', 'transferred', 'checked_in') ORDER BY t.id"
        )
    };
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn reseal_column(
    tx: &mut Tx,
    kind: SealedKind,
    select: &'static str,
    update: &'static str,
    reseal: &Resealer<'_>,
) -> StoreResult<usize> {
    let rows = sqlx::query(select)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
    for row in &rows {
        let (pk, owner, sealed): (String, String, Vec<u8>) =
            (col(row, "pk")?, col(row, "owner")?, col(row, "sealed")?);
        let item = SealedItem {
            kind,
            owner,
            sealed,
        };
        let fresh = reseal(&item).map_err(|why| {
            StoreError::InvalidState(format!("{} of {}: {why}", kind.table(), item.owner))
        })?;
        sqlx::query(update)
            .bind(fresh)
            .bind(pk)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(rows.len())
}

impl<D: Dialect> SqlStore<D> {
    async fn reseal_webhooks(tx: &mut Tx, reseal: &Resealer<'_>) -> StoreResult<usize> {
        let rows = sqlx::query("SELECT id, secrets FROM webhook_endpoints ORDER BY id")
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        let mut n = 0;
        for row in &rows {
            let id: String = col(row, "id")?;
            let mut secrets = secrets_from_json(&col::<String>(row, "secrets")?)?;
            for s in &mut secrets {
                let item = SealedItem {
                    kind: SealedKind::WebhookSecret,
                    owner: id.clone(),
                    sealed: std::mem::take(&mut s.sealed),
                };
                s.sealed = reseal(&item).map_err(|why| {
                    StoreError::InvalidState(format!("webhook_endpoints of {id}: {why}"))
                })?;
                n += 1;
            }
            sqlx::query("UPDATE webhook_endpoints SET secrets = $1 WHERE id = $2")
                .bind(secrets_to_json(&secrets))
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok(n)
    }

    /// Checks every valid ticket the key signed is re-issued from its
    /// current generation, then writes the new credentials and audit rows;
    /// returns the manifest entries to publish.
    async fn store_reissues(
        tx: &mut Tx,
        r: &RetireKey,
    ) -> StoreResult<Vec<sync_protocol::ManifestEntry>> {
        let rows = sqlx::query(valid_with_credential!())
            .bind(r.event.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        let wanted: HashMap<TicketId, &Reissue> =
            r.reissue.iter().map(|x| (x.ticket_id, x)).collect();
        let changed_meanwhile = || {
            StoreError::Retryable(
                "the event's tickets changed while their credentials were re-signed: retry".into(),
            )
        };
        let reason = format!("credential re-signed: signing key {} retired", r.key_id);
        let mut changed = Vec::new();
        for row in &rows {
            let mut t = ticket_from_row(row)?;
            let signed = t
                .credential
                .as_deref()
                .is_some_and(|c| signed_by(c, &r.key_id));
            let Some(x) = wanted.get(&t.id) else {
                if signed {
                    return Err(changed_meanwhile());
                }
                continue;
            };
            if t.generation != x.from_generation {
                return Err(changed_meanwhile());
            }
            t.generation = x.from_generation.checked_add(1).ok_or_else(|| {
                StoreError::InvalidState(format!(
                    "ticket {} has reached the last credential generation",
                    t.id
                ))
            })?;
            t.credential = Some(x.credential.clone());
            t.updated_at = r.now;
            sqlx::query(
                "UPDATE tickets SET generation = $1, credential = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(i64::from(t.generation))
            .bind(t.credential.clone())
            .bind(r.now)
            .bind(t.id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            audit(
                tx,
                t.id,
                Some(t.status),
                t.status,
                Some(r.actor),
                &reason,
                r.now,
            )
            .await?;
            changed.push(entry_for(&t));
        }
        if changed.len() != r.reissue.len() {
            return Err(changed_meanwhile());
        }
        Ok(changed)
    }
}

#[async_trait]
impl<D: Dialect> KeyStore for SqlStore<D> {
    async fn event_keys(&self, event: EventId) -> StoreResult<Vec<EventKeyRow>> {
        let rows = sqlx::query(
            "SELECT key_id, public_key, sealed_seed, certificate, not_before, not_after, created_at, \
             retired_at, retirement FROM event_keys WHERE event_id = $1 ORDER BY created_at, key_id",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(key_row).collect()
    }

    async fn add_event_key(
        &self,
        event: EventId,
        key: &EventKeyRecord,
        max_in_service: usize,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::lock_event(&mut tx, event, now).await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(created_at) AS newest FROM event_keys WHERE event_id = $1 AND retired_at IS NULL",
        )
        .bind(event.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let in_service: i64 = col(&row, "n")?;
        if in_service as usize >= max_in_service {
            return Err(StoreError::InvalidState(format!(
                "this event already has {in_service} signing keys in service, the most a manifest carries: \
                 retire one first (POST /events/{event}/keys/{{key_id}}/retire)"
            )));
        }
        // The newest key signs, so the new one must sort after every other.
        let newest: Option<i64> = col(&row, "newest")?;
        let created_at = newest.map_or(now, |n| now.max(n + 1));
        sqlx::query(
            "INSERT INTO event_keys (key_id, event_id, public_key, sealed_seed, certificate, not_before, not_after, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.key.key_id.clone())
        .bind(event.to_string())
        .bind(key.key.public_key.clone())
        .bind(key.key.sealed_seed.clone())
        .bind(key.certificate.clone())
        .bind(key.not_before)
        .bind(key.not_after)
        .bind(created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn tickets_with_credentials(&self, event: EventId) -> StoreResult<Vec<TicketRecord>> {
        let rows = sqlx::query(valid_with_credential!())
            .bind(event.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(ticket_from_row).collect()
    }

    async fn retire_event_key(&self, r: &RetireKey) -> StoreResult<usize> {
        let mut tx = self.begin_write().await?;
        let mut head = Self::lock_event(&mut tx, r.event, r.now).await?;
        let row =
            sqlx::query("SELECT retired_at FROM event_keys WHERE event_id = $1 AND key_id = $2")
                .bind(r.event.to_string())
                .bind(r.key_id.clone())
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found("event key"))?;
        if col::<Option<i64>>(&row, "retired_at")?.is_some() {
            return Err(StoreError::Gone(format!(
                "key {} is already retired",
                r.key_id
            )));
        }
        let others = sqlx::query(
            "SELECT COUNT(*) AS n FROM event_keys WHERE event_id = $1 AND key_id <> $2 AND retired_at IS NULL",
        )
        .bind(r.event.to_string())
        .bind(r.key_id.clone())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if col::<i64>(&others, "n")? == 0 {
            return Err(StoreError::InvalidState(format!(
                "key {} is the event's only signing key in service: add a new one first \
                 (POST /events/{}/keys), then retire this one",
                r.key_id, r.event
            )));
        }
        let changed = Self::store_reissues(&mut tx, r).await?;
        Self::append_manifest(&mut tx, r.event, &mut head, &changed, r.now).await?;
        sqlx::query(
            "UPDATE event_keys SET retired_at = $1, retirement = $2 WHERE event_id = $3 AND key_id = $4",
        )
        .bind(r.now)
        .bind(r.retirement.clone())
        .bind(r.event.to_string())
        .bind(r.key_id.clone())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(changed.len())
    }

    async fn reseal_all(&self, reseal: &Resealer<'_>) -> StoreResult<Vec<(SealedKind, usize)>> {
        let mut tx = self.begin_write().await?;
        let columns = [
            (
                SealedKind::OrganizerRoot,
                "SELECT organizer_id AS pk, organizer_id AS owner, sealed_seed AS sealed FROM organizer_keys ORDER BY organizer_id",
                "UPDATE organizer_keys SET sealed_seed = $1 WHERE organizer_id = $2",
            ),
            (
                SealedKind::EventKey,
                "SELECT key_id AS pk, event_id AS owner, sealed_seed AS sealed FROM event_keys ORDER BY key_id",
                "UPDATE event_keys SET sealed_seed = $1 WHERE key_id = $2",
            ),
            (
                SealedKind::GossipKey,
                "SELECT event_id AS pk, event_id AS owner, sealed_key AS sealed FROM event_gossip_keys ORDER BY event_id",
                "UPDATE event_gossip_keys SET sealed_key = $1 WHERE event_id = $2",
            ),
            (
                SealedKind::Wallet,
                "SELECT id AS pk, id AS owner, sealed_key AS sealed FROM wallets WHERE sealed_key IS NOT NULL ORDER BY id",
                "UPDATE wallets SET sealed_key = $1 WHERE id = $2",
            ),
        ];
        let mut counts = Vec::new();
        for (kind, select, update) in columns {
            counts.push((
                kind,
                reseal_column(&mut tx, kind, select, update, reseal).await?,
            ));
        }
        // Roster versions are keyed by (event, version): one pass per row.
        let rows = sqlx::query(
            "SELECT event_id, version, sealed_gossip_key FROM device_roster_versions ORDER BY event_id, version",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for row in &rows {
            let item = SealedItem {
                kind: SealedKind::RosterGossipKey,
                owner: col(row, "event_id")?,
                sealed: col(row, "sealed_gossip_key")?,
            };
            let version: i64 = col(row, "version")?;
            let fresh = reseal(&item).map_err(|why| {
                StoreError::InvalidState(format!(
                    "device_roster_versions of {} version {version}: {why}",
                    item.owner
                ))
            })?;
            sqlx::query(
                "UPDATE device_roster_versions SET sealed_gossip_key = $1 WHERE event_id = $2 AND version = $3",
            )
            .bind(fresh)
            .bind(item.owner.clone())
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        counts.push((SealedKind::RosterGossipKey, rows.len()));
        counts.push((
            SealedKind::WebhookSecret,
            Self::reseal_webhooks(&mut tx, reseal).await?,
        ));
        counts.sort_by_key(|(k, _)| *k);
        tx.commit().await.map_err(map_err)?;
        Ok(counts)
    }

    async fn sealed_sample(&self) -> StoreResult<Option<SealedItem>> {
        let probes = [
            (
                SealedKind::OrganizerRoot,
                "SELECT organizer_id AS owner, sealed_seed AS sealed FROM organizer_keys ORDER BY created_at LIMIT 1",
            ),
            (
                SealedKind::Wallet,
                "SELECT id AS owner, sealed_key AS sealed FROM wallets WHERE sealed_key IS NOT NULL ORDER BY created_at LIMIT 1",
            ),
        ];
        for (kind, sql) in probes {
            if let Some(row) = sqlx::query(sql)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
            {
                return Ok(Some(SealedItem {
                    kind,
                    owner: col(&row, "owner")?,
                    sealed: col(&row, "sealed")?,
                }));
            }
        }
        Ok(None)
    }
}
