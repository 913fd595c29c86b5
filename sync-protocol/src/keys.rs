//! Keys and key certificates.
//!
//! An organizer holds a root key (ed25519). For each event it certifies one or
//! more event signing keys with a [`KeyCertificate`] (event id, public key,
//! validity window, signed by the root). Credentials, manifests and deltas are
//! signed by event keys; a node trusts the organizer's root public key and any
//! event key the root has certified, so event keys rotate without re-enrolling.

use crate::wire::{Reader, Writer};
use crate::{DecodeError, EventId, KeyId, VerifyError};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::collections::BTreeMap;

/// Magic bytes of a key certificate.
pub const CERT_MAGIC: [u8; 2] = *b"KC";
/// Current key-certificate layout version.
pub const CERT_VERSION: u8 = 1;
/// Encoded length of a version-1 key certificate.
pub const CERT_LEN: usize = 2 + 1 + 16 + 32 + 8 + 8 + 8 + 64;

/// A signing key (organizer root or event key). Its secret never appears in
/// `Debug` output.
#[derive(Clone)]
pub struct SecretKey {
    signing: SigningKey,
    key_id: KeyId,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.key_id)
    }
}

impl SecretKey {
    /// The key from its 32-byte seed. Callers draw the seed from the OS RNG.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let key_id = KeyId::of(signing.verifying_key().as_bytes());
        Self { signing, key_id }
    }
    /// The 32-byte seed (for encrypted storage by its owner).
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }
    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey::from_verifying(self.signing.verifying_key())
    }
    /// `SHA-256(public key)[0..8]`.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// Certifies `event_key` for `event_id` over `[not_before, not_after]`
    /// (unix seconds), making this key the root of that certificate.
    pub fn certify(
        &self,
        event_id: EventId,
        event_key: &PublicKey,
        not_before: u64,
        not_after: u64,
    ) -> KeyCertificate {
        let mut cert = KeyCertificate {
            event_id,
            public_key: event_key.clone(),
            not_before,
            not_after,
            root_key_id: self.key_id,
            signature: [0; 64],
        };
        cert.signature = self.sign(&cert.signed_bytes());
        cert
    }
}

/// An ed25519 public key, decompressed once (verification then costs one
/// signature check, no point decoding).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    key_id: KeyId,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.key_id)
    }
}

impl PublicKey {
    fn from_verifying(key: VerifyingKey) -> Self {
        let key_id = KeyId::of(key.as_bytes());
        Self { key, key_id }
    }
    /// Parses a 32-byte compressed ed25519 point; rejects non-points and
    /// small-order (weak) keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| DecodeError::Invalid("not an ed25519 public key"))?;
        if key.is_weak() {
            return Err(DecodeError::Invalid("weak ed25519 public key"));
        }
        Ok(Self::from_verifying(key))
    }
    /// The 32 wire bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
    /// `SHA-256(public key)[0..8]`.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    pub(crate) fn verifying(&self) -> &VerifyingKey {
        &self.key
    }
    /// Strict ed25519 verification (rejects malleable signatures).
    pub fn verify(&self, msg: &[u8], signature: &[u8; 64]) -> Result<(), VerifyError> {
        let sig = Signature::from_bytes(signature);
        self.key
            .verify_strict(msg, &sig)
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// A root-signed statement: "this public key signs for this event during
/// this window". Layout in `docs/protocol.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCertificate {
    /// The event the key may sign for.
    pub event_id: EventId,
    /// The certified event key.
    pub public_key: PublicKey,
    /// Start of validity, unix seconds, inclusive.
    pub not_before: u64,
    /// End of validity, unix seconds, inclusive.
    pub not_after: u64,
    /// Key id of the root that signed this certificate.
    pub root_key_id: KeyId,
    /// ed25519 signature by the root over every preceding byte.
    pub signature: [u8; 64],
}

impl KeyCertificate {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(CERT_LEN);
        w.bytes(&CERT_MAGIC);
        w.u8(CERT_VERSION);
        w.bytes(self.event_id.as_bytes());
        w.bytes(&self.public_key.to_bytes());
        w.u64(self.not_before);
        w.u64(self.not_after);
        w.bytes(&self.root_key_id.0);
        w.into_inner()
    }

    /// The 139-byte wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.signed_bytes();
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Parses the wire form (the signature is checked by [`KeyRing::insert`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let cert = Self::read(&mut r)?;
        r.finish()?;
        Ok(cert)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.array::<2>()? != CERT_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != CERT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let event_id = EventId::from_bytes(r.array()?);
        let public_key = PublicKey::from_bytes(&r.array()?)?;
        let not_before = r.u64()?;
        let not_after = r.u64()?;
        if not_after < not_before {
            return Err(DecodeError::Invalid(
                "certificate window ends before it starts",
            ));
        }
        let root_key_id = KeyId(r.array()?);
        let signature = r.array()?;
        Ok(Self {
            event_id,
            public_key,
            not_before,
            not_after,
            root_key_id,
            signature,
        })
    }

    /// Checks the root's signature.
    pub fn verify(&self, root: &PublicKey) -> Result<(), VerifyError> {
        if self.root_key_id != root.key_id() {
            return Err(VerifyError::UnknownKey);
        }
        root.verify(&self.signed_bytes(), &self.signature)
    }

    /// Whether `now` (unix seconds) lies in the validity window.
    pub fn valid_at(&self, now: u64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// The keys a node trusts: the organizer's root public key and the event keys
/// it has certified (verified once on insert, cached decompressed).
#[derive(Clone, Debug)]
pub struct KeyRing {
    root: PublicKey,
    certs: BTreeMap<KeyId, Vec<KeyCertificate>>,
}

impl KeyRing {
    /// An empty ring trusting `root`.
    pub fn new(root: PublicKey) -> Self {
        Self {
            root,
            certs: BTreeMap::new(),
        }
    }
    /// The trust anchor.
    pub fn root(&self) -> &PublicKey {
        &self.root
    }
    /// Adds a certificate after checking the root's signature. Adding the
    /// same certificate twice is a no-op.
    pub fn insert(&mut self, cert: KeyCertificate) -> Result<(), VerifyError> {
        cert.verify(&self.root)?;
        let list = self.certs.entry(cert.public_key.key_id()).or_default();
        if !list.contains(&cert) {
            list.push(cert);
        }
        Ok(())
    }
    /// Every certificate held, in key-id order.
    pub fn certificates(&self) -> impl Iterator<Item = &KeyCertificate> {
        self.certs.values().flatten()
    }
    /// Certificates for `key_id` (empty if the key is unknown).
    pub fn lookup(&self, key_id: &KeyId) -> &[KeyCertificate] {
        self.certs.get(key_id).map(Vec::as_slice).unwrap_or(&[])
    }
    /// A certified key with this id for `event_id` whose window contains
    /// `now`, or the reason there is none.
    pub fn key_for(
        &self,
        key_id: &KeyId,
        event_id: &EventId,
        now: u64,
    ) -> Result<&PublicKey, KeyLookupError<'_>> {
        let certs = self.lookup(key_id);
        let for_event: Vec<_> = certs.iter().filter(|c| &c.event_id == event_id).collect();
        if for_event.is_empty() {
            return Err(KeyLookupError::Unknown);
        }
        for_event
            .iter()
            .find(|c| c.valid_at(now))
            .map(|c| &c.public_key)
            .ok_or(KeyLookupError::OutsideWindow(&for_event[0].public_key))
    }
}

/// Why [`KeyRing::key_for`] found no usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError<'a> {
    /// No certificate for this key id and event.
    Unknown,
    /// The key is certified for the event, but not at this time; the key is
    /// returned so callers can still check a signature before saying so.
    OutsideWindow(&'a PublicKey),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> SecretKey {
        SecretKey::from_seed([1; 32])
    }

    #[test]
    fn certificate_round_trips_and_verifies() {
        let event = EventId::from_bytes([9; 16]);
        let key = SecretKey::from_seed([2; 32]);
        let cert = root().certify(event, &key.public(), 100, 200);
        let bytes = cert.encode();
        assert_eq!(bytes.len(), CERT_LEN);
        let back = KeyCertificate::decode(&bytes).unwrap();
        assert_eq!(back, cert);
        back.verify(&root().public()).unwrap();
        assert!(back.valid_at(100) && back.valid_at(200) && !back.valid_at(201));
    }

    #[test]
    fn ring_refuses_certificates_from_another_root() {
        let event = EventId::from_bytes([9; 16]);
        let key = SecretKey::from_seed([2; 32]);
        let stranger = SecretKey::from_seed([3; 32]);
        let mut ring = KeyRing::new(root().public());
        let forged = stranger.certify(event, &key.public(), 0, u64::MAX);
        assert_eq!(ring.insert(forged), Err(VerifyError::UnknownKey));
        let mut tampered = root().certify(event, &key.public(), 0, 10);
        tampered.not_after = u64::MAX;
        assert_eq!(ring.insert(tampered), Err(VerifyError::BadSignature));
        assert!(ring.lookup(&key.key_id()).is_empty());
    }

    #[test]
    fn ring_finds_key_by_event_and_window() {
        let event = EventId::from_bytes([9; 16]);
        let other = EventId::from_bytes([8; 16]);
        let key = SecretKey::from_seed([2; 32]);
        let mut ring = KeyRing::new(root().public());
        ring.insert(root().certify(event, &key.public(), 100, 200))
            .unwrap();
        assert!(ring.key_for(&key.key_id(), &event, 150).is_ok());
        assert_eq!(
            ring.key_for(&key.key_id(), &other, 150),
            Err(KeyLookupError::Unknown)
        );
        assert!(matches!(
            ring.key_for(&key.key_id(), &event, 201),
            Err(KeyLookupError::OutsideWindow(_))
        ));
    }
}
