//! Organizer root keys and event signing keys.
//!
//! Each organizer gets one ed25519 root key (created with their first event);
//! each event gets its own signing key, certified by the root with a
//! sync-protocol `KeyCertificate` valid from an hour before creation (clock
//! skew at the gates) until 30 days after the event ends.

use super::{CryptoError, KeyVault, random_bytes};
use crate::model::{EventId, UnixMillis, UserId};
use crate::store::{EventKeyRecord, EventSigner, SealedKey, Store, StoreError};
use sync_protocol::{KeyCertificate, SecretKey};

/// Why a signing key could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A stored certificate does not parse.
    #[error("stored key certificate is corrupt")]
    Corrupt,
}

const CERT_SLACK_BEFORE_SECS: i64 = 3_600;
const CERT_SLACK_AFTER_SECS: i64 = 30 * 86_400;

fn root_aad(organizer: UserId) -> String {
    format!("organizer-root/{organizer}")
}

fn event_aad(event: EventId) -> String {
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

/// Re-certifies the event's signing key when the event now ends later than
/// its certificate allows (an edited date): same key, wider window, so
/// credentials already issued stay valid. Returns whether it changed.
pub async fn extend_certificate(
    store: &dyn Store,
    vault: &KeyVault,
    organizer: UserId,
    event: EventId,
    ends_at: UnixMillis,
    now: UnixMillis,
) -> Result<bool, SigningError> {
    let record = store.event_key(event).await?;
    let not_after = ends_at.max(now) / 1000 + CERT_SLACK_AFTER_SECS;
    if not_after <= record.not_after {
        return Ok(false);
    }
    let root = organizer_root(store, vault, organizer, now).await?;
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
    Ok(true)
}

/// The event's signing key and certificate, opened for use.
pub async fn event_signer(
    store: &dyn Store,
    vault: &KeyVault,
    event: EventId,
) -> Result<EventSigner, SigningError> {
    let record = store.event_key(event).await?;
    let key = SecretKey::from_seed(vault.open(&record.key.sealed_seed, &event_aad(event))?);
    let cert = KeyCertificate::decode(&record.certificate).map_err(|_| SigningError::Corrupt)?;
    Ok(EventSigner {
        key,
        certs: vec![cert],
    })
}
