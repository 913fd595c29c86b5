//! Access tokens: HS256 JWTs with a fixed algorithm. The decoder accepts
//! exactly HS256, so `alg: none`, other HMAC sizes and public-key algorithms
//! (algorithm confusion) are refused before any signature check.
//!
//! Refresh tokens are not JWTs: they are 256-bit random strings, stored only
//! as SHA-256 hashes, rotated on every use (see `store::users`).

use crate::config::Secret;
use crate::crypto::{CryptoError, random_bytes};
use crate::model::{Role, SessionId, UserId};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const ISSUER: &str = "gatehouse-cloud";
const ACCESS: &str = "access";

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    /// Their role when the token was issued.
    pub role: Role,
    /// The login session.
    pub sid: SessionId,
    /// Always `access`.
    pub typ: String,
    /// Issuer.
    pub iss: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Expires, unix seconds.
    pub exp: u64,
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: u64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens(HS256, <redacted>, ttl {} s)", self.access_ttl)
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid access token: {0}")]
pub struct TokenError(String);

impl Tokens {
    /// From the configured secret.
    pub fn new(secret: &Secret, access_ttl: u64) -> Self {
        let key = secret.expose().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            access_ttl,
        }
    }

    /// Access-token lifetime in seconds.
    pub fn access_ttl(&self) -> u64 {
        self.access_ttl
    }

    /// A signed access token.
    pub fn issue(
        &self,
        user: UserId,
        role: Role,
        sid: SessionId,
        now_secs: u64,
    ) -> Result<String, TokenError> {
        let claims = AccessClaims {
            sub: user,
            role,
            sid,
            typ: ACCESS.into(),
            iss: ISSUER.into(),
            iat: now_secs,
            exp: now_secs + self.access_ttl,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError(e.to_string()))
    }

    /// The claims of a valid, unexpired HS256 access token.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError(e.to_string()))?;
        if data.header.alg != Algorithm::HS256 || data.claims.typ != ACCESS {
            return Err(TokenError("not an access token".into()));
        }
        Ok(data.claims)
    }
}

/// A new refresh token (base64url of 32 random bytes).
pub fn new_refresh_token() -> Result<String, CryptoError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// What the database stores for a refresh token.
pub fn refresh_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn tokens() -> Tokens {
        Tokens::new(&Secret::new("k".repeat(32)), 3600)
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn round_trips() {
        let t = tokens();
        let tok = t
            .issue(UserId::new(), Role::Organizer, SessionId::new(), now())
            .unwrap();
        assert_eq!(t.verify(&tok).unwrap().role, Role::Organizer);
    }

    #[test]
    fn refuses_alg_none_and_other_algorithms() {
        let t = tokens();
        let tok = t
            .issue(UserId::new(), Role::Customer, SessionId::new(), now())
            .unwrap();
        let payload = tok.split('.').nth(1).unwrap();
        // Admin claims with alg none and an empty signature.
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(t.verify(&format!("{none_header}.{payload}.")).is_err());
        // Same secret, different HMAC: still refused (algorithm is fixed).
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &t.verify(&tok).unwrap(),
            &EncodingKey::from_secret("k".repeat(32).as_bytes()),
        )
        .unwrap();
        assert!(t.verify(&hs512).is_err());
    }

    #[test]
    fn refuses_expired_and_foreign_keys() {
        let t = tokens();
        let old = t
            .issue(
                UserId::new(),
                Role::Customer,
                SessionId::new(),
                now() - 7200,
            )
            .unwrap();
        assert!(t.verify(&old).is_err());
        let other = Tokens::new(&Secret::new("x".repeat(32)), 3600);
        let tok = other
            .issue(UserId::new(), Role::Admin, SessionId::new(), now())
            .unwrap();
        assert!(t.verify(&tok).is_err());
    }
}
