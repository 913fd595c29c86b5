//! Keys and key certificates.
//!
//! An organizer holds a root key (ed25519). For each event it certifies one or
//! more event signing keys with a [`KeyCertificate`] (event id, public key,
//! validity window, signed by the root). Credentials, manifests and deltas are
//! signed by event keys; a node trusts the organizer's root public key and any
//! event key the root has certified, so event keys rotate without re-enrolling.
//!
//! A [`KeyRetirement`] is the root's word that one event key is no longer
//! trusted (rotated out, or compromised). A ring that holds one refuses the
//! key for that event from then on, whatever certificates it also holds:
//! certificates only ever widen trust, a retirement is the one way to end it
//! before a certificate's window closes.

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

/// Magic bytes of a key retirement.
pub const RETIREMENT_MAGIC: [u8; 2] = *b"KR";
/// Current key-retirement layout version.
pub const RETIREMENT_VERSION: u8 = 1;
/// Encoded length of a version-1 key retirement.
pub const RETIREMENT_LEN: usize = 2 + 1 + 16 + 8 + 8 + 8 + 64;

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

    /// Retires the event key `key_id` of `event_id` as of `retired_at`
    /// (unix seconds), making this key the root of that statement.
    pub fn retire(&self, event_id: EventId, key_id: KeyId, retired_at: u64) -> KeyRetirement {
        let mut r = KeyRetirement {
            event_id,
            key_id,
            retired_at,
            root_key_id: self.key_id,
            signature: [0; 64],
        };
        r.signature = self.sign(&r.signed_bytes());
        r
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

/// A root-signed statement: "this event key no longer signs for this
/// event". Layout in `docs/protocol.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRetirement {
    /// The event the key signed for.
    pub event_id: EventId,
    /// The retired event key.
    pub key_id: KeyId,
    /// When it was retired, unix seconds (for display; a held retirement
    /// refuses the key at any time).
    pub retired_at: u64,
    /// Key id of the root that signed this statement.
    pub root_key_id: KeyId,
    /// ed25519 signature by the root over every preceding byte.
    pub signature: [u8; 64],
}

impl KeyRetirement {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(RETIREMENT_LEN);
        w.bytes(&RETIREMENT_MAGIC);
        w.u8(RETIREMENT_VERSION);
        w.bytes(self.event_id.as_bytes());
        w.bytes(&self.key_id.0);
        w.u64(self.retired_at);
        w.bytes(&self.root_key_id.0);
        w.into_inner()
    }

    /// The 107-byte wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.signed_bytes();
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Parses the wire form (the signature is checked by [`KeyRing::retire`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<2>()? != RETIREMENT_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != RETIREMENT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let out = Self {
            event_id: EventId::from_bytes(r.array()?),
            key_id: KeyId(r.array()?),
            retired_at: r.u64()?,
            root_key_id: KeyId(r.array()?),
            signature: r.array()?,
        };
        r.finish()?;
        Ok(out)
    }

    /// Checks the root's signature.
    pub fn verify(&self, root: &PublicKey) -> Result<(), VerifyError> {
        if self.root_key_id != root.key_id() {
            return Err(VerifyError::UnknownKey);
        }
        root.verify(&self.signed_bytes(), &self.signature)
    }
}

/// The keys a node trusts: the organizer's root public key and the event keys
/// it has certified (verified once on insert, cached decompressed), minus
/// the keys the root has retired.
#[derive(Clone, Debug)]
pub struct KeyRing {
    root: PublicKey,
    certs: BTreeMap<KeyId, Vec<KeyCertificate>>,
    retired: BTreeMap<KeyId, Vec<KeyRetirement>>,
}

impl KeyRing {
    /// An empty ring trusting `root`.
    pub fn new(root: PublicKey) -> Self {
        Self {
            root,
            certs: BTreeMap::new(),
            retired: BTreeMap::new(),
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
    /// Adds a retirement after checking the root's signature; from then on
    /// [`KeyRing::key_for`] refuses that key for that event. Adding the same
    /// retirement twice is a no-op.
    pub fn retire(&mut self, retirement: KeyRetirement) -> Result<(), VerifyError> {
        retirement.verify(&self.root)?;
        let list = self.retired.entry(retirement.key_id).or_default();
        if !list.contains(&retirement) {
            list.push(retirement);
        }
        Ok(())
    }
    /// Every retirement held, in key-id order.
    pub fn retirements(&self) -> impl Iterator<Item = &KeyRetirement> {
        self.retired.values().flatten()
    }
    /// The retirement of `key_id` for `event_id`, if the ring holds one.
    pub fn retirement(&self, key_id: &KeyId, event_id: &EventId) -> Option<&KeyRetirement> {
        self.retired
            .get(key_id)?
            .iter()
            .find(|r| &r.event_id == event_id)
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
        if let Some(r) = self.retirement(key_id, event_id) {
            return Err(KeyLookupError::Retired(r.retired_at));
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
    /// The root retired the key (at this unix second): it signs nothing
    /// for this event any more.
    Retired(u64),
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
    fn retirement_round_trips_and_ends_trust_in_the_key() {
        let event = EventId::from_bytes([9; 16]);
        let other = EventId::from_bytes([8; 16]);
        let key = SecretKey::from_seed([2; 32]);
        let mut ring = KeyRing::new(root().public());
        ring.insert(root().certify(event, &key.public(), 0, u64::MAX))
            .unwrap();
        ring.insert(root().certify(other, &key.public(), 0, u64::MAX))
            .unwrap();
        let retirement = root().retire(event, key.key_id(), 500);
        let bytes = retirement.encode();
        assert_eq!(bytes.len(), RETIREMENT_LEN);
        let back = KeyRetirement::decode(&bytes).unwrap();
        assert_eq!(back, retirement);
        ring.retire(back).unwrap();
        assert_eq!(
            ring.key_for(&key.key_id(), &event, 100),
            Err(KeyLookupError::Retired(500)),
            "a retired key is refused at any time, even before its retirement second"
        );
        assert!(
            ring.key_for(&key.key_id(), &other, 100).is_ok(),
            "the retirement names one event"
        );
        let again = root().certify(event, &key.public(), 0, u64::MAX);
        ring.insert(again).unwrap();
        assert!(
            ring.key_for(&key.key_id(), &event, 100).is_err(),
            "a certificate seen again does not undo a retirement"
        );
    }

    #[test]
    fn ring_refuses_retirements_not_signed_by_its_root() {
        let event = EventId::from_bytes([9; 16]);
        let key = SecretKey::from_seed([2; 32]);
        let stranger = SecretKey::from_seed([3; 32]);
        let mut ring = KeyRing::new(root().public());
        assert_eq!(
            ring.retire(stranger.retire(event, key.key_id(), 1)),
            Err(VerifyError::UnknownKey)
        );
        let mut tampered = root().retire(event, key.key_id(), 1);
        tampered.key_id = KeyId([7; 8]);
        assert_eq!(ring.retire(tampered), Err(VerifyError::BadSignature));
        assert_eq!(ring.retirements().count(), 0);
        let mut bytes = root().retire(event, key.key_id(), 1).encode();
        bytes[2] = 2;
        assert_eq!(
            KeyRetirement::decode(&bytes),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let good = root().retire(event, key.key_id(), 1).encode();
        assert_eq!(
            KeyRetirement::decode(&good[..50]),
            Err(DecodeError::Truncated)
        );
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
