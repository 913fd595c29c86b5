//! Secrets at rest: [`KeyVault`] seals ed25519 seeds with ChaCha20-Poly1305
//! under the configured master key, and [`signing`] manages organizer root
//! keys and certified event keys.
//!
//! A sealed seed is `nonce (12 bytes) || ciphertext+tag (48 bytes)`. The
//! associated data names the row it belongs to (`organizer-root/<user>` or
//! `event-key/<event>`), so a sealed seed copied into another row fails to
//! open instead of signing for the wrong event.

use crate::config::Secret;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::path::Path;

/// A failure sealing or opening a key, or loading a secret.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Wrong master key, or tampered/misplaced ciphertext.
    #[error("sealed key does not open with the configured master key")]
    Open,
    /// Bad secret material in configuration.
    #[error("{0}")]
    Config(String),
    /// The OS random generator failed.
    #[error("random generator: {0}")]
    Random(String),
}

/// Fills a buffer from the OS random generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(buf)
}

/// Seals and opens 32-byte seeds.
#[derive(Clone)]
pub struct KeyVault {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyVault(<redacted>)")
    }
}

impl KeyVault {
    /// A vault from 32 key bytes.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// A vault from 64 hex digits.
    pub fn from_hex(hex_key: &Secret) -> Result<Self, CryptoError> {
        let bytes = hex::decode(hex_key.expose().trim())
            .map_err(|_| CryptoError::Config("keys.master_key must be 64 hex digits".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::Config("keys.master_key must be 64 hex digits".into()))?;
        Ok(Self::new(key))
    }

    /// Encrypts `seed` bound to `aad`.
    pub fn seal(&self, seed: &[u8; 32], aad: &str) -> Result<Vec<u8>, CryptoError> {
        let nonce = random_bytes::<12>()?;
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: seed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a sealed seed bound to `aad`.
    pub fn open(&self, sealed: &[u8], aad: &str) -> Result<[u8; 32], CryptoError> {
        if sealed.len() != 12 + 32 + 16 {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = sealed.split_at(12);
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)?;
        pt.try_into().map_err(|_| CryptoError::Open)
    }
}

/// Reads `dir/name` (hex), creating it with `N` random bytes (mode 0600)
/// when missing: the embedded default needs no configuration, and a restart
/// keeps tokens and sealed keys valid.
pub fn load_or_create_secret<const N: usize>(
    dir: &Path,
    name: &str,
) -> Result<Secret, CryptoError> {
    let path = dir.join(name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(Secret::new(text.trim()));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CryptoError::Config(format!("cannot create {}: {e}", dir.display())))?;
    let value = hex::encode(random_bytes::<N>()?);
    write_private(&path, &value)
        .map_err(|e| CryptoError::Config(format!("cannot write {}: {e}", path.display())))?;
    Ok(Secret::new(value))
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(value.as_bytes())
}

pub mod rekey;
pub mod signing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_is_bound_to_its_row() {
        let vault = KeyVault::new([7; 32]);
        let sealed = vault.seal(&[1; 32], "event-key/a").unwrap();
        assert_eq!(vault.open(&sealed, "event-key/a").unwrap(), [1; 32]);
        assert!(
            vault.open(&sealed, "event-key/b").is_err(),
            "moved to another row"
        );
        assert!(KeyVault::new([8; 32]).open(&sealed, "event-key/a").is_err());
        assert!(
            !sealed.windows(32).any(|w| w == [1; 32]),
            "seed not in clear"
        );
    }

    #[test]
    fn generated_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret::<32>(dir.path(), "k").unwrap();
        let b = load_or_create_secret::<32>(dir.path(), "k").unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 64);
    }
}
