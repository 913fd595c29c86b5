//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the stable
//! property tests, so CI exercises every decoder on hostile bytes without a
//! nightly toolchain. Each must return (an error is fine) and never panic.

use crate::checkin::ScanRecord;
use crate::keys::{KeyCertificate, KeyRing, SecretKey};
use crate::manifest::{Manifest, ManifestDelta};
use crate::sync::SyncMessage;
use crate::{Credential, EventId, base45, sync};
use std::sync::OnceLock;

/// A ring trusting one certified event key, built once (signing and
/// verifying a certificate per input would dominate the fuzzer's time).
fn ring() -> &'static (KeyRing, EventId) {
    static RING: OnceLock<(KeyRing, EventId)> = OnceLock::new();
    RING.get_or_init(|| {
        let root = SecretKey::from_seed([0x11; 32]);
        let key = SecretKey::from_seed([0x22; 32]);
        let event = EventId::from_bytes([0x33; 16]);
        let mut ring = KeyRing::new(root.public());
        // Cannot fail: the certificate is signed by the ring's own root.
        let _ = ring.insert(root.certify(event, &key.public(), 0, u64::MAX));
        (ring, event)
    })
}

/// Credential parsers: QR text (as UTF-8, lossy) and raw bytes.
pub fn credential(data: &[u8]) {
    if let Ok(c) = Credential::from_bytes(data) {
        let again = Credential::from_qr_text(&c.to_qr_text());
        assert_eq!(again.as_ref(), Ok(&c), "a parsed credential re-parses");
    }
    let text = String::from_utf8_lossy(data);
    let _ = Credential::from_qr_text(&text);
    let _ = base45::decode(&text);
    let _ = KeyCertificate::decode(data);
}

/// Manifest and delta decoders, including the entries block behind the
/// signature (reached directly, since random bytes never carry a valid one).
pub fn manifest(data: &[u8]) {
    let (ring, event) = ring();
    let _ = Manifest::open(data, ring, event);
    let _ = ManifestDelta::open(data, ring, event);
    crate::manifest::fuzz_entries_section(data);
}

/// Sync message, scan record and LAN envelope decoders.
pub fn sync_message(data: &[u8]) {
    if let Ok(m) = SyncMessage::decode(data) {
        assert_eq!(SyncMessage::decode(&m.encode()).as_ref(), Ok(&m));
    }
    let _ = ScanRecord::from_bytes(data);
    let _ = ScanRecord::from_signed_bytes(data);
    let _ = sync::open(&[7; 32], data);
    let (ring, event) = ring();
    let _ = crate::roster::SignedRoster::open(data, ring, event);
}
