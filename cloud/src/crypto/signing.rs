//! Organizer root keys and event signing keys.
//!
//! Each organizer gets one ed25519 root key (created with their first event);
//! each event gets its own signing key, certified by the root with a
//! sync-protocol `KeyCertificate` valid from an hour before creation (clock
//! skew at the gates) until 30 days after the event ends.
//!
//! Rotation: an event may hold several keys. The newest one not retired
//! signs; every key not retired travels to the gates in each manifest's
//! certificates; a retired key travels as the root's `KeyRetirement`
//! (`events::keys`).

use super::{CryptoError, KeyVault, random_bytes};
use crate::model::{EventId, UnixMillis, UserId};
use crate::store::{EventKeyRecord, EventKeyRow, EventSigner, SealedKey, Store, StoreError};
use sync_protocol::{KeyCertificate, KeyRetirement, SecretKey};

/// Why a signing key could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A stored certificate or retirement does not parse.
    #[error("stored key certificate is corrupt")]
    Corrupt,
    /// Every key of the event is retired (cannot happen through the API).
    #[error("the event has no signing key in service")]
    NoKeyInService,
}

const CERT_SLACK_BEFORE_SECS: i64 = 3_600;
const CERT_SLACK_AFTER_SECS: i64 = 30 * 86_400;

fn root_aad(organizer: UserId) -> String {
    format!("organizer-root/{organizer}")
}

pub(crate) fn event_aad(event: EventId) -> String {
    format!("event-key/{event}")
}

fn sealed(key: &SecretKey, vault: &KeyVault, aad: &str) -> Result<SealedKey, CryptoError> {
    Ok(SealedKey {
        key_id: key.key_id().to_string(),
        public_key: key.public().to_bytes().to_vec(),
        sealed_seed: vault.seal(&key.seed(), aad)?,
    })
}

/// The organizer's root key, created on first use.
pub async fn organizer_root(
    store: &dyn Store,
    vault: &KeyVault,
    organizer: UserId,
    now: UnixMillis,
) -> Result<SecretKey, SigningError> {
    let aad = root_aad(organizer);
    let candidate = SecretKey::from_seed(random_bytes::<32>()?);
    let stored = store
        .ensure_organizer_key(organizer, &sealed(&candidate, vault, &aad)?, now)
        .await?;
    Ok(SecretKey::from_seed(vault.open(&stored.sealed_seed, &aad)?))
}

/// A new signing key for `event`, certified by the organizer's root.
pub async fn new_event_key(
    store: &dyn Store,
    vault: &KeyVault,
    organizer: UserId,
    event: EventId,
    ends_at: UnixMillis,
    now: UnixMillis,
) -> Result<EventKeyRecord, SigningError> {
    let root = organizer_root(store, vault, organizer, now).await?;
    let key = SecretKey::from_seed(random_bytes::<32>()?);
    let not_before = (now / 1000 - CERT_SLACK_BEFORE_SECS).max(0);
    let not_after = ends_at.max(now) / 1000 + CERT_SLACK_AFTER_SECS;
    let cert = root.certify(event, &key.public(), not_before as u64, not_after as u64);
    Ok(EventKeyRecord {
        key: sealed(&key, vault, &event_aad(event))?,
        certificate: cert.encode(),
        not_before,
        not_after,
    })
}

/// Re-certifies the event's signing keys in service when the event now
/// ends later than their certificates allow (an edited date): same keys,
/// wider windows, so credentials already issued stay valid. Returns whether
/// any changed.
pub async fn extend_certificate(
    store: &dyn Store,
    vault: &KeyVault,
    organizer: UserId,
    event: EventId,
    ends_at: UnixMillis,
    now: UnixMillis,
) -> Result<bool, SigningError> {
    let not_after = ends_at.max(now) / 1000 + CERT_SLACK_AFTER_SECS;
    let stale: Vec<EventKeyRow> = store
        .event_keys(event)
        .await?
        .into_iter()
        .filter(|k| k.retired_at.is_none() && k.record.not_after < not_after)
        .collect();
    if stale.is_empty() {
        return Ok(false);
    }
    let root = organizer_root(store, vault, organizer, now).await?;
    for k in stale {
        let record = k.record;
        let public = KeyCertificate::decode(&record.certificate)
            .map_err(|_| SigningError::Corrupt)?
            .public_key;
        let cert = root.certify(event, &public, record.not_before as u64, not_after as u64);
        let updated = EventKeyRecord {
            certificate: cert.encode(),
            not_after,
            ..record.clone()
        };
        store
            .set_key_certificate(event, &record.key.key_id, &updated)
            .await?;
    }
    Ok(true)
}

/// What gates are told to trust for an event: the certificates of every
/// key in service, and the retirements of the others.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Certificates of the keys in service, oldest first.
    pub certs: Vec<KeyCertificate>,
    /// Root-signed retirements of the retired keys, oldest first.
    pub retirements: Vec<KeyRetirement>,
}

/// Splits an event's keys into [`Trust`].
pub fn trust(keys: &[EventKeyRow]) -> Result<Trust, SigningError> {
    let mut out = Trust::default();
    for k in keys {
        match &k.retirement {
            Some(r) => out
                .retirements
                .push(KeyRetirement::decode(r).map_err(|_| SigningError::Corrupt)?),
            None => out.certs.push(
                KeyCertificate::decode(&k.record.certificate).map_err(|_| SigningError::Corrupt)?,
            ),
        }
    }
    Ok(out)
}

/// The event's trust material as stored.
pub async fn event_trust(store: &dyn Store, event: EventId) -> Result<Trust, SigningError> {
    trust(&store.event_keys(event).await?)
}

/// The event's current signing key (the newest in service), opened for
/// use, with the certificates of every key in service and the
/// retirements of the others.
pub async fn event_signer(
    store: &dyn Store,
    vault: &KeyVault,
    event: EventId,
) -> Result<EventSigner, SigningError> {
    let keys = store.event_keys(event).await?;
    let current = keys
        .iter()
        .rev()
        .find(|k| k.retired_at.is_none())
        .ok_or(SigningError::NoKeyInService)?;
    let key = SecretKey::from_seed(vault.open(&current.record.key.sealed_seed, &event_aad(event))?);
    let trust = trust(&keys)?;
    Ok(EventSigner {
        key,
        certs: trust.certs,
        retirements: trust.retirements,
    })
}
