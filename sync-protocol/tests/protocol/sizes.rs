//! Size limits that hold by construction (deterministic, not timed): the QR
//! code of a holder-less credential fits version 10-M, a 100k-ticket manifest
//! with display names fits 3 MB, a one-ticket delta fits 512 bytes.

use crate::common::*;
use qrcode::{EcLevel, QrCode, Version};
use sync_protocol::manifest::{Header, ManifestDelta, chain_digest, genesis_digest};
use sync_protocol::{Credential, Manifest, ValidityWindow};

#[path = "../../benches/support/data.rs"]
mod data;

fn qr_version(text: &str) -> i16 {
    match QrCode::with_error_correction_level(text, EcLevel::M)
        .unwrap()
        .version()
    {
        Version::Normal(v) => v,
        Version::Micro(_) => 0,
    }
}

#[test]
fn holderless_credential_fits_qr_version_10_m_in_alphanumeric_mode() {
    let mut c = claims(1);
    c.window = Some(ValidityWindow {
        not_before: u64::MAX - 1,
        not_after: u64::MAX,
    });
    c.generation = u16::MAX;
    c.zones = u32::MAX;
    let text = Credential::issue(&event_key(), c.clone())
        .unwrap()
        .to_qr_text();
    assert!(qr_version(&text) <= 10, "version {}", qr_version(&text));
    // Even the holder key variant fits.
    c.holder_key = Some([0xff; 32]);
    let text = Credential::issue(&event_key(), c).unwrap().to_qr_text();
    assert!(qr_version(&text) <= 10, "version {}", qr_version(&text));
    // Only alphanumeric mode fits 250 characters in version 9-M (byte mode holds 180).
    assert!(QrCode::with_version(&text, Version::Normal(9), EcLevel::M).is_ok());
}

#[test]
fn manifest_of_100k_tickets_with_names_fits_3_mb() {
    let mut entries = data::entries(100_000, 7);
    let header = Header {
        event_id: data::event(),
        version: 1,
        digest: [0; 32],
        issued_at: NOW,
        certs: &[cert()],
    };
    let bytes = Manifest::sign(&event_key(), &header, &mut entries).unwrap();
    assert!(bytes.len() <= 3_000_000, "{} bytes", bytes.len());
}

#[test]
fn one_ticket_delta_fits_512_bytes() {
    let mut entry = data::entries(1, 3);
    entry[0].display_name = "x".repeat(64);
    let d1 = genesis_digest(&data::event());
    let header = Header {
        event_id: data::event(),
        version: 2,
        digest: chain_digest(&d1, 2, &entry),
        issued_at: NOW,
        certs: &[],
    };
    let bytes = ManifestDelta::sign(&event_key(), &header, 1, &d1, &mut entry).unwrap();
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
}
