//! Offline provisioning: a JSON bundle with the same fields as the cloud's
//! enrollment answer (`docs/device-api.md`, which the cloud client reads
//! into a [`Bundle`] too), plus an optional signed manifest, so a node can
//! be set up and tested without the cloud.
//!
//! Every field is parsed defensively; a bundle that does not verify writes
//! nothing.

use crate::store::{Identity, Store, StoreError};
use serde::{Deserialize, Serialize};
use sync_protocol::{EventId, GatePolicy, KeyCertificate, NodeId};

/// A provisioning bundle (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bundle {
    /// This node's id.
    pub node_id: NodeId,
    /// The event.
    pub event_id: EventId,
    /// Organizer root public key, 64 hex digits.
    pub root_public_key: String,
    /// Key certificates, hex.
    pub key_certificates: Vec<String>,
    /// LAN sync HMAC key, 64 hex digits.
    pub gossip_key: String,
    /// The roster version the gossip key belongs to.
    #[serde(default)]
    pub gossip_key_version: u64,
    /// The event's signed device roster (full), hex: without it the node
    /// believes no peer's records.
    #[serde(default)]
    pub roster: Option<String>,
    /// Gate policy.
    pub policy: GatePolicy,
    /// Gate label.
    pub gate: String,
    /// The guarded zone's name in the event (the cloud's `policy.zone_name`).
    #[serde(default)]
    pub zone_name: Option<String>,
    /// Device key seed, 64 hex digits (drawn by the caller when absent).
    #[serde(default)]
    pub device_seed: Option<String>,
    /// Cloud bearer token, if any.
    #[serde(default)]
    pub device_token: Option<String>,
    /// Cloud base URL, if any.
    #[serde(default)]
    pub cloud_url: Option<String>,
    /// A full signed manifest, hex.
    #[serde(default)]
    pub manifest: Option<String>,
}

/// A bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A field is malformed.
    #[error("bundle field {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The store refused it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decodes exactly `N` bytes of hex.
pub fn hex_array<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], ProvisionError> {
    let bytes = hex::decode(s.trim()).map_err(|e| ProvisionError::Field {
        field,
        reason: e.to_string(),
    })?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| ProvisionError::Field {
        field,
        reason: format!("expected {N} bytes, got {}", bytes.len()),
    })
}

/// Parses hex key certificates.
pub fn parse_certs(list: &[String]) -> Result<Vec<KeyCertificate>, ProvisionError> {
    list.iter()
        .map(|hex_cert| {
            let bytes = hex::decode(hex_cert.trim()).map_err(|e| ProvisionError::Field {
                field: "key_certificates",
                reason: e.to_string(),
            })?;
            KeyCertificate::decode(&bytes).map_err(|e| ProvisionError::Field {
                field: "key_certificates",
                reason: e.to_string(),
            })
        })
        .collect()
}

impl Bundle {
    /// The identity and key set this bundle describes, every field checked.
    /// `fresh_seed` is used when the bundle carries no device seed.
    pub fn identity(
        &self,
        fresh_seed: [u8; 32],
    ) -> Result<(Identity, Vec<KeyCertificate>), ProvisionError> {
        if self.policy.event_id != self.event_id {
            return Err(ProvisionError::Field {
                field: "policy",
                reason: "policy is for another event".into(),
            });
        }
        let identity = Identity {
            node_id: self.node_id,
            event_id: self.event_id,
            device_seed: match &self.device_seed {
                Some(s) => hex_array("device_seed", s)?,
                None => fresh_seed,
            },
            device_token: self.device_token.clone(),
            gossip_key: hex_array("gossip_key", &self.gossip_key)?,
            gossip_key_version: self.gossip_key_version,
            root_public_key: hex_array("root_public_key", &self.root_public_key)?,
            policy: self.policy.clone(),
            gate: self.gate.clone(),
            zone_name: self.zone_name.clone(),
            cloud_url: self.cloud_url.clone(),
        };
        Ok((identity, parse_certs(&self.key_certificates)?))
    }
}

/// Writes the bundle's identity, keys and manifest into `store`.
/// `fresh_seed` is used when the bundle carries no device seed.
pub fn import(store: &Store, bundle: &Bundle, fresh_seed: [u8; 32]) -> Result<(), ProvisionError> {
    let (identity, certs) = bundle.identity(fresh_seed)?;
    let manifest = bundle
        .manifest
        .as_deref()
        .map(|m| {
            hex::decode(m.trim()).map_err(|e| ProvisionError::Field {
                field: "manifest",
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let roster = bundle
        .roster
        .as_deref()
        .map(|m| {
            hex::decode(m.trim()).map_err(|e| ProvisionError::Field {
                field: "roster",
                reason: e.to_string(),
            })
        })
        .transpose()?;
    store.provision(&identity, &certs)?;
    if let Some(bytes) = manifest {
        store.apply_manifest(&bytes)?;
    }
    if let Some(bytes) = roster {
        apply_roster_once(store, &bytes)?;
    }
    Ok(())
}

/// Applies a bundle's roster; one the node already holds (same or newer
/// version, e.g. a re-import) is not an error.
fn apply_roster_once(store: &Store, bytes: &[u8]) -> Result<(), ProvisionError> {
    match store.apply_roster(bytes, None) {
        Ok(_) | Err(StoreError::Manifest(sync_protocol::manifest::ManifestError::Stale { .. })) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
