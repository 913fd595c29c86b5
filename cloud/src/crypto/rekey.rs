//! Rotating the master key: `cloud rekey` opens every sealed secret in the
//! database (organizer root keys, event signing keys, gossip keys, custodial
//! wallet keys, webhook signing secrets) with the old master key and seals
//! it with the new one, all in one transaction: a wrong old key, or any seal
//! that does not open, changes nothing. And the start-up check that refuses
//! a master key that does not open what the database holds.

use super::KeyVault;
use crate::store::{SealedItem, SealedKind, Store, StoreError};

/// Why re-sealing did not happen (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// The old key does not open a sealed secret of this database.
    #[error(
        "the old master key does not open the {0} sealed in this database: \
         give the key the cloud runs with now (keys.master_key, CLOUD_KEYS__MASTER_KEY, \
         or DATA_DIR/master.key); nothing was changed"
    )]
    WrongOldKey(String),
    /// A sealed value did not open with the old key (the others did).
    #[error("{0}; nothing was changed")]
    DoesNotOpen(String),
    /// Old and new are the same key.
    #[error("the new master key is the old one: generate a new one with `cloud keygen`")]
    SameKey,
    /// Storage failed (the transaction was rolled back).
    #[error("database: {0}; nothing was changed")]
    Store(StoreError),
}

/// What a sealed item is, in words (never its value).
pub fn describe(item: &SealedItem) -> String {
    let what = match item.kind {
        SealedKind::OrganizerRoot => "root key of organizer",
        SealedKind::EventKey => "signing key of event",
        SealedKind::GossipKey | SealedKind::RosterGossipKey => "gossip key of event",
        SealedKind::Wallet => "custodial wallet key",
        SealedKind::WebhookSecret => "signing secret of webhook endpoint",
    };
    format!("{what} {}", item.owner)
}

/// Whether `vault` opens the sample sealed value of the database (`None`:
/// nothing sealed yet, any key fits); `Some(what)` names what did not open.
pub async fn check(store: &dyn Store, vault: &KeyVault) -> Result<Option<String>, StoreError> {
    Ok(store.sealed_sample().await?.and_then(|item| {
        vault
            .open(&item.sealed, &item.kind.aad(&item.owner))
            .is_err()
            .then(|| describe(&item))
    }))
}

/// Re-seals everything from `old` to `new`; returns the count per kind.
pub async fn rekey(
    store: &dyn Store,
    old: &KeyVault,
    new: &KeyVault,
    same: bool,
) -> Result<Vec<(SealedKind, usize)>, RekeyError> {
    if same {
        return Err(RekeyError::SameKey);
    }
    if let Some(what) = check(store, old).await.map_err(RekeyError::Store)? {
        return Err(RekeyError::WrongOldKey(what));
    }
    let reseal = |item: &SealedItem| -> Result<Vec<u8>, String> {
        let aad = item.kind.aad(&item.owner);
        let seed = old
            .open(&item.sealed, &aad)
            .map_err(|_| format!("the {} does not open with the old key", describe(item)))?;
        new.seal(&seed, &aad).map_err(|e| e.to_string())
    };
    store.reseal_all(&reseal).await.map_err(|e| match e {
        StoreError::InvalidState(why) => RekeyError::DoesNotOpen(why),
        other => RekeyError::Store(other),
    })
}
