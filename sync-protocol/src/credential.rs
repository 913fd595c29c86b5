//! The ticket credential: what the QR code holds.
//!
//! Bytes (all integers big-endian; see `docs/protocol.md`):
//!
//! ```text
//! 0   2  magic "TK"
//! 2   1  layout version = 1
//! 3   1  flags: bit0 validity window present, bit1 holder key present; others 0
//! 4   8  key id of the event signing key
//! 12  16 event id
//! 28  16 ticket id
//! 44  2  generation (bumped by every transfer or re-issue)
//! 46  2  tier number
//! 48  4  zone mask (bit z set = admitted to zone z)
//! 52  8+8 not_before, not_after (unix seconds)     if flags bit0
//! ..  32 holder public key (for rotating codes)      if flags bit1
//! ..  64 ed25519 signature over every preceding byte
//! ```
//!
//! QR text: `TK1:` followed by Base45 (RFC 9285) of those bytes; every
//! character is in the QR alphanumeric set. Without a holder key the text is
//! at most 202 characters (QR version 8-M); with everything, 250 (9-M).

use crate::keys::{PublicKey, SecretKey};
use crate::wire::{Reader, Writer};
use crate::{DecodeError, EventId, KeyId, TicketId, VerifyError, base45};
use serde::{Deserialize, Serialize};

/// Text prefix of a credential in a QR code.
pub const QR_PREFIX: &str = "TK1:";
/// Magic bytes at the start of the credential.
pub const CREDENTIAL_MAGIC: [u8; 2] = *b"TK";
/// Current layout version.
pub const CREDENTIAL_VERSION: u8 = 1;
/// Longest QR text accepted before decoding (a version-10-M QR holds 311
/// alphanumeric characters); longer input is refused without allocating.
pub const MAX_QR_TEXT_LEN: usize = 311;

const FLAG_WINDOW: u8 = 0b01;
const FLAG_HOLDER: u8 = 0b10;
const FIXED_LEN: usize = 52;
const SIG_LEN: usize = 64;

/// An inclusive validity window in unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidityWindow {
    /// First valid second.
    pub not_before: u64,
    /// Last valid second.
    pub not_after: u64,
}

/// What a credential asserts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The event the ticket is for.
    pub event_id: EventId,
    /// The ticket.
    pub ticket_id: TicketId,
    /// Credential generation; older generations are revoked by the manifest.
    pub generation: u16,
    /// Tier number within the event.
    pub tier: u16,
    /// Zones the ticket admits to (bit z = zone z).
    pub zones: u32,
    /// Optional validity window.
    pub window: Option<ValidityWindow>,
    /// Optional holder public key, reserved for rotating codes.
    pub holder_key: Option<[u8; 32]>,
}

/// A signed credential, as parsed from or produced for a QR code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Key id of the event key that signed it.
    pub key_id: KeyId,
    /// The signed claims.
    pub claims: Claims,
    bytes: Vec<u8>,
}

impl Credential {
    /// Signs `claims` with an event key.
    pub fn issue(key: &SecretKey, claims: Claims) -> Result<Self, EncodeError> {
        if let Some(w) = claims.window
            && w.not_after < w.not_before
        {
            return Err(EncodeError("validity window ends before it starts"));
        }
        let mut flags = 0;
        if claims.window.is_some() {
            flags |= FLAG_WINDOW;
        }
        if claims.holder_key.is_some() {
            flags |= FLAG_HOLDER;
        }
        let mut w = Writer::with_capacity(FIXED_LEN + 48 + SIG_LEN);
        w.bytes(&CREDENTIAL_MAGIC);
        w.u8(CREDENTIAL_VERSION);
        w.u8(flags);
        w.bytes(&key.key_id().0);
        w.bytes(claims.event_id.as_bytes());
        w.bytes(claims.ticket_id.as_bytes());
        w.u16(claims.generation);
        w.u16(claims.tier);
        w.u32(claims.zones);
        if let Some(win) = claims.window {
            w.u64(win.not_before);
            w.u64(win.not_after);
        }
        if let Some(holder) = claims.holder_key {
            w.bytes(&holder);
        }
        let signature = key.sign(&w.buf);
        w.bytes(&signature);
        Ok(Self {
            key_id: key.key_id(),
            claims,
            bytes: w.into_inner(),
        })
    }

    /// The signed bytes followed by the signature.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `TK1:` + Base45 of the bytes.
    pub fn to_qr_text(&self) -> String {
        let mut s = String::from(QR_PREFIX);
        s.push_str(&base45::encode(&self.bytes));
        s
    }

    /// Parses QR text. Checks structure only; call [`Credential::verify`].
    pub fn from_qr_text(text: &str) -> Result<Self, DecodeError> {
        if text.len() > MAX_QR_TEXT_LEN {
            return Err(DecodeError::TooLarge);
        }
        let body = text
            .strip_prefix(QR_PREFIX)
            .ok_or(DecodeError::Invalid("text does not start with TK1:"))?;
        Self::from_bytes(&base45::decode(body)?)
    }

    /// Parses the binary form. Checks structure only; call [`Credential::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<2>()? != CREDENTIAL_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != CREDENTIAL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let flags = r.u8()?;
        if flags & !(FLAG_WINDOW | FLAG_HOLDER) != 0 {
            return Err(DecodeError::Invalid("unknown credential flags"));
        }
        let key_id = KeyId(r.array()?);
        let event_id = EventId::from_bytes(r.array()?);
        let ticket_id = TicketId::from_bytes(r.array()?);
        let generation = r.u16()?;
        let tier = r.u16()?;
        let zones = r.u32()?;
        let window = if flags & FLAG_WINDOW != 0 {
            let not_before = r.u64()?;
            let not_after = r.u64()?;
            if not_after < not_before {
                return Err(DecodeError::Invalid(
                    "validity window ends before it starts",
                ));
            }
            Some(ValidityWindow {
                not_before,
                not_after,
            })
        } else {
            None
        };
        let holder_key = if flags & FLAG_HOLDER != 0 {
            Some(r.array()?)
        } else {
            None
        };
        r.take(SIG_LEN)?;
        r.finish()?;
        Ok(Self {
            key_id,
            claims: Claims {
                event_id,
                ticket_id,
                generation,
                tier,
                zones,
                window,
                holder_key,
            },
            bytes: bytes.to_vec(),
        })
    }

    /// Checks the signature against an event public key.
    pub fn verify(&self, key: &PublicKey) -> Result<(), VerifyError> {
        if key.key_id() != self.key_id {
            return Err(VerifyError::UnknownKey);
        }
        let (signed, sig) = self.bytes.split_at(self.bytes.len() - SIG_LEN);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(sig);
        key.verify(signed, &signature)
    }
}

/// A credential could not be built from the given claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode credential: {0}")]
pub struct EncodeError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn claims() -> Claims {
        Claims {
            event_id: EventId::from_bytes([1; 16]),
            ticket_id: TicketId::from_bytes([2; 16]),
            generation: 0,
            tier: 3,
            zones: 0b101,
            window: None,
            holder_key: None,
        }
    }

    #[test]
    fn round_trips_through_qr_text() {
        let key = SecretKey::from_seed([5; 32]);
        let mut c = claims();
        for (window, holder, max_len) in [
            (None, None, 178),
            (Some((10, 20)), None, 202),
            (Some((10, 20)), Some([7; 32]), 250),
        ] {
            c.window = window.map(|(not_before, not_after)| ValidityWindow {
                not_before,
                not_after,
            });
            c.holder_key = holder;
            let cred = Credential::issue(&key, c.clone()).unwrap();
            let text = cred.to_qr_text();
            assert!(text.len() <= max_len, "{} > {max_len}", text.len());
            assert!(
                text.bytes()
                    .all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b))
            );
            let back = Credential::from_qr_text(&text).unwrap();
            assert_eq!(back, cred);
            back.verify(&key.public()).unwrap();
        }
    }

    #[test]
    fn rejects_wrong_prefix_and_tampering() {
        let key = SecretKey::from_seed([5; 32]);
        let text = Credential::issue(&key, claims()).unwrap().to_qr_text();
        assert!(Credential::from_qr_text(&text.replacen("TK1:", "TK2:", 1)).is_err());
        assert!(Credential::from_qr_text(&text[4..]).is_err());
        let mut bytes = Credential::from_qr_text(&text).unwrap().as_bytes().to_vec();
        bytes[30] ^= 1;
        let forged = Credential::from_bytes(&bytes).unwrap();
        assert_eq!(forged.verify(&key.public()), Err(VerifyError::BadSignature));
        let other = SecretKey::from_seed([6; 32]);
        assert_eq!(forged.verify(&other.public()), Err(VerifyError::UnknownKey));
    }
}
