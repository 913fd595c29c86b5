//! Password hashing: argon2id with the OWASP minimum parameters (19 MiB,
//! 2 iterations, 1 lane). Hashing runs on the blocking pool and at most
//! `max_concurrent_hashes` run at once, so a login flood cannot exhaust
//! memory or starve the async workers.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
pub const OWASP_MEMORY_KIB: u32 = 19_456;
/// Iterations.
pub const OWASP_ITERATIONS: u32 = 2;
/// Lanes.
pub const OWASP_LANES: u32 = 1;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<String>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords(argon2id)")
    }
}

/// Hashing failed (never a wrong password: that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Passwords {
    /// With OWASP parameters and a concurrency cap.
    pub fn new(max_concurrent: usize) -> Result<Self, HashError> {
        let params = Params::new(OWASP_MEMORY_KIB, OWASP_ITERATIONS, OWASP_LANES, None)
            .map_err(|e| HashError(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon
            .hash_password(b"timing-equaliser")
            .map_err(|e| HashError(e.to_string()))?
            .to_string();
        Ok(Self {
            argon: Arc::new(argon),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let argon = self.argon.clone();
        let password = password.as_bytes().to_vec();
        tokio::task::spawn_blocking(move || {
            argon
                .hash_password(&password)
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
        .map_err(|e| HashError(e.to_string()))?
    }

    /// Whether `password` matches `hash`. With `hash = None` (unknown
    /// account) it still does the work, so response time does not reveal
    /// which emails are registered.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let argon = self.argon.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy_hash).to_string();
        let password = password.as_bytes().to_vec();
        let ok = tokio::task::spawn_blocking(move || {
            argon.verify_password(&password, hash.as_str()).is_ok()
        })
        .await
        .map_err(|e| HashError(e.to_string()))?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let p = Passwords::new(2).unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(
            !p.verify("timing-equaliser", None).await.unwrap(),
            "no account, no login"
        );
    }
}
