//! Typed identifiers. Event, ticket and node ids are UUIDs (UUIDv7 when the
//! cloud mints them) carried on the wire as their 16 raw bytes; a key id is
//! the first 8 bytes of SHA-256 of an ed25519 public key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The id from its 16 wire bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
            /// The 16 wire bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            /// The id as a UUID.
            pub const fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An event (a show, a match, a festival day).
    EventId
);
uuid_id!(
    /// A ticket. Stable across transfers; each transfer bumps the credential generation.
    TicketId
);
uuid_id!(
    /// A device that records scans: a gate node, a scanner app, or the cloud itself.
    NodeId
);

/// Short identifier of an ed25519 public key: `SHA-256(public_key)[0..8]`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The key id of a 32-byte ed25519 public key.
    pub fn of(public_key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(public_key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for KeyId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.is_ascii() {
            return Err("key id must be 16 hex digits");
        }
        let mut out = [0u8; 8];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| "key id must be 16 hex digits")?;
        }
        Ok(Self(out))
    }
}

/// Identity of one scan: the node that made it and that node's sequence
/// number (1, 2, 3, ... without gaps). Ordered by node, then sequence.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ScanId {
    /// The recording node.
    pub node: NodeId,
    /// Per-node sequence number, starting at 1.
    pub seq: u64,
}

impl fmt::Display for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.seq)
    }
}

impl fmt::Debug for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScanId({self})")
    }
}

impl FromStr for ScanId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (node, seq) = s.rsplit_once(':').ok_or("scan id must be NODE:SEQ")?;
        Ok(Self {
            node: node.parse().map_err(|_| "scan id node is not a UUID")?,
            seq: seq
                .parse()
                .map_err(|_| "scan id sequence is not a number")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_sha256_prefix_and_round_trips_as_hex() {
        // SHA-256 of 32 zero bytes starts 66687aadf862bd77.
        let id = KeyId::of(&[0u8; 32]);
        assert_eq!(id.to_string(), "66687aadf862bd77");
        assert_eq!("66687aadf862bd77".parse::<KeyId>().unwrap(), id);
        assert!("66687aadf862bd7".parse::<KeyId>().is_err());
        assert!("zz687aadf862bd77".parse::<KeyId>().is_err());
    }

    #[test]
    fn scan_id_parses_its_display() {
        let id = ScanId {
            node: NodeId::from_bytes([7; 16]),
            seq: 42,
        };
        assert_eq!(id.to_string().parse::<ScanId>().unwrap(), id);
        assert!("nonsense".parse::<ScanId>().is_err());
    }
}
