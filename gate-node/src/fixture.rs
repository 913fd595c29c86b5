//! Deterministic events for tests, benchmarks and development: an organizer
//! root key, a certified event key, signed manifests and deltas, ticket
//! credentials and provisioning bundles. Never used by the daemon itself.

use crate::provision::Bundle;
use std::collections::BTreeMap;
use sync_protocol::manifest::{EntryStatus, Header, chain_digest, genesis_digest};
use sync_protocol::roster::{self, RosterEntry, RosterHeader, SignedRoster};
use sync_protocol::{
    Claims, Credential, EventId, GatePolicy, KeyCertificate, Manifest, ManifestDelta,
    ManifestEntry, NodeId, SecretKey, TicketId,
};

/// `issued_at` of every fixture manifest (unix seconds, November 2023).
pub const ISSUED_AT: u64 = 1_700_000_000;

/// One event with its keys and the cloud's view of its manifest.
#[derive(Debug, Clone)]
pub struct EventFixture {
    /// Organizer root key.
    pub root: SecretKey,
    /// The certified event signing key.
    pub event_key: SecretKey,
    /// Its certificate.
    pub cert: KeyCertificate,
    /// The event.
    pub event_id: EventId,
    /// LAN sync key.
    pub gossip_key: [u8; 32],
    /// Current manifest version.
    pub version: u64,
    /// Current chain digest.
    pub digest: [u8; 32],
    /// Current entries.
    pub entries: BTreeMap<TicketId, ManifestEntry>,
    /// Current roster version.
    pub roster_version: u64,
    /// Current roster chain digest.
    pub roster_digest: [u8; 32],
    /// The roster: devices 1 to [`FIXTURE_DEVICES`] (see [`Self::node_id`]).
    pub devices: BTreeMap<NodeId, RosterEntry>,
    seed: u8,
}

/// Devices every fixture roster lists (node numbers 1 to 16).
pub const FIXTURE_DEVICES: u8 = 16;

impl EventFixture {
    /// An event with `tickets` valid tickets at manifest version 1; `seed`
    /// makes keys and ids distinct between fixtures.
    pub fn new(seed: u8, tickets: u32) -> Self {
        let root = SecretKey::from_seed([seed; 32]);
        let event_key = SecretKey::from_seed([seed.wrapping_add(100); 32]);
        let mut id = [0u8; 16];
        id[0] = seed;
        id[6] = 0x70;
        id[8] = 0x80;
        let event_id = EventId::from_bytes(id);
        let cert = root.certify(event_id, &event_key.public(), 0, u64::MAX / 2);
        let mut f = Self {
            root,
            event_key,
            cert,
            event_id,
            gossip_key: [seed.wrapping_add(7); 32],
            version: 0,
            digest: genesis_digest(&event_id),
            entries: BTreeMap::new(),
            roster_version: 0,
            roster_digest: roster::genesis_digest(&event_id),
            devices: BTreeMap::new(),
            seed,
        };
        let entries: Vec<ManifestEntry> = (0..tickets).map(|i| f.entry(i)).collect();
        f.advance(&entries);
        let devices: Vec<RosterEntry> = (1..=FIXTURE_DEVICES)
            .map(|n| RosterEntry {
                node_id: f.node_id(n),
                public_key: f.device_key(n).public(),
                enrolled_at_ms: 0,
                revoked_at_ms: None,
            })
            .collect();
        f.advance_roster(&devices);
        f
    }

    /// The node id of device number `n`.
    pub fn node_id(&self, n: u8) -> NodeId {
        let mut node = [0u8; 16];
        node[0] = self.seed;
        node[1] = 0xaa;
        node[6] = 0x70;
        node[8] = 0x80;
        node[15] = n;
        NodeId::from_bytes(node)
    }

    /// The device key of device number `n` (its bundle's seed).
    pub fn device_key(&self, n: u8) -> SecretKey {
        SecretKey::from_seed([n.wrapping_add(1); 32])
    }

    /// The gossip key of roster version `v` (fixture rule: version 1 is
    /// [`Self::gossip_key`], later ones differ).
    pub fn gossip_key_at(&self, v: u64) -> [u8; 32] {
        if v <= 1 {
            return self.gossip_key;
        }
        let mut k = self.gossip_key;
        k[0] ^= v as u8;
        k[1] ^= 0x5a;
        k
    }

    fn advance_roster(&mut self, changed: &[RosterEntry]) {
        self.roster_version += 1;
        self.roster_digest =
            roster::chain_digest(&self.roster_digest, self.roster_version, changed);
        for e in changed {
            self.devices.insert(e.node_id, e.clone());
        }
    }

    fn roster_header(&self) -> RosterHeader {
        RosterHeader {
            event_id: self.event_id,
            version: self.roster_version,
            digest: self.roster_digest,
            issued_at: ISSUED_AT,
        }
    }

    /// The full signed roster at the current version.
    pub fn roster_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<RosterEntry> = self.devices.values().cloned().collect();
        SignedRoster::sign(&self.event_key, &self.roster_header(), None, &mut entries)
            .unwrap_or_default()
    }

    /// Revokes device number `n` as of `at_ms` and returns the signed roster delta.
    pub fn revoke_device(&mut self, n: u8, at_ms: u64) -> Vec<u8> {
        let Some(mut e) = self.devices.get(&self.node_id(n)).cloned() else {
            return Vec::new();
        };
        e.revoked_at_ms = Some(at_ms.max(e.enrolled_at_ms).max(1));
        let base = (self.roster_version, self.roster_digest);
        self.advance_roster(std::slice::from_ref(&e));
        SignedRoster::sign(&self.event_key, &self.roster_header(), Some(base), &mut [e])
            .unwrap_or_default()
    }

    /// The id of ticket number `i`.
    pub fn ticket(&self, i: u32) -> TicketId {
        let mut id = [0u8; 16];
        id[0] = self.seed;
        id[1] = 0xee;
        id[6] = 0x70;
        id[8] = 0x80;
        id[12..].copy_from_slice(&i.to_be_bytes());
        TicketId::from_bytes(id)
    }

    /// A valid manifest entry for ticket number `i`.
    pub fn entry(&self, i: u32) -> ManifestEntry {
        ManifestEntry {
            ticket_id: self.ticket(i),
            generation: 0,
            tier: 1,
            zones: 1,
            status: EntryStatus::Valid,
            reentry: false,
            display_name: format!("Guest {i}"),
        }
    }

    /// QR text of a credential for `ticket` signed by the event key.
    pub fn credential(&self, ticket: TicketId) -> String {
        self.credential_with(&self.event_key, ticket)
    }

    /// QR text of a credential for `ticket` signed by `key` (forgeries).
    pub fn credential_with(&self, key: &SecretKey, ticket: TicketId) -> String {
        let claims = Claims {
            event_id: self.event_id,
            ticket_id: ticket,
            generation: 0,
            tier: 1,
            zones: 1,
            window: None,
            holder_key: None,
        };
        Credential::issue(key, claims)
            .map(|c| c.to_qr_text())
            .unwrap_or_default()
    }

    fn advance(&mut self, changed: &[ManifestEntry]) {
        self.version += 1;
        self.digest = chain_digest(&self.digest, self.version, changed);
        for e in changed {
            self.entries.insert(e.ticket_id, e.clone());
        }
    }

    fn header(&self) -> Header<'_> {
        Header {
            event_id: self.event_id,
            version: self.version,
            digest: self.digest,
            issued_at: ISSUED_AT,
            certs: std::slice::from_ref(&self.cert),
        }
    }

    /// The full signed manifest at the current version.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<ManifestEntry> = self.entries.values().cloned().collect();
        Manifest::sign(&self.event_key, &self.header(), &mut entries).unwrap_or_default()
    }

    /// Applies `changed` and returns the signed delta from the previous version.
    pub fn delta(&mut self, changed: Vec<ManifestEntry>) -> Vec<u8> {
        let (base_version, base_digest) = (self.version, self.digest);
        self.advance(&changed);
        let mut changed = changed;
        ManifestDelta::sign(
            &self.event_key,
            &self.header(),
            base_version,
            &base_digest,
            &mut changed,
        )
        .unwrap_or_default()
    }

    /// Publishes the event's door state (a status change at the cloud) and
    /// returns the signed delta (layout 2, no entries).
    pub fn door(&mut self, door: sync_protocol::manifest::DoorState) -> Vec<u8> {
        let (base_version, base_digest) = (self.version, self.digest);
        self.version += 1;
        self.digest =
            sync_protocol::manifest::door_chain_digest(&self.digest, self.version, door, &[]);
        ManifestDelta::sign_with_door(
            &self.event_key,
            &self.header(),
            base_version,
            &base_digest,
            door,
            &mut [],
        )
        .unwrap_or_default()
    }

    /// Revokes `ticket` (a refund) and returns the signed delta.
    pub fn revoke(&mut self, ticket: TicketId) -> Vec<u8> {
        let mut e = self.entries.get(&ticket).cloned().unwrap_or(ManifestEntry {
            ticket_id: ticket,
            generation: 0,
            tier: 1,
            zones: 1,
            status: EntryStatus::Revoked,
            reentry: false,
            display_name: String::new(),
        });
        e.status = EntryStatus::Revoked;
        self.delta(vec![e])
    }

    /// A provisioning bundle for node number `n` at this event's entry gate,
    /// carrying the current full manifest.
    pub fn bundle(&self, n: u8, gate: &str) -> Bundle {
        Bundle {
            node_id: self.node_id(n),
            event_id: self.event_id,
            root_public_key: hex::encode(self.root.public().to_bytes()),
            key_certificates: vec![hex::encode(self.cert.encode())],
            gossip_key: hex::encode(self.gossip_key_at(self.roster_version)),
            gossip_key_version: self.roster_version,
            roster: Some(hex::encode(self.roster_bytes())),
            policy: GatePolicy::entry(self.event_id),
            gate: gate.to_owned(),
            zone_name: None,
            device_seed: Some(hex::encode([n.wrapping_add(1); 32])),
            device_token: None,
            cloud_url: None,
            manifest: Some(hex::encode(self.manifest_bytes())),
        }
    }
}
