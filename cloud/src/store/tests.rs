//! Store-level tests on a temp-file SQLite (the HTTP suite runs the same
//! flows on both backends): the manifest log signs into manifests and deltas
//! that sync-protocol opens, and capacity is never oversold.

use super::*;
use crate::crypto::KeyVault;
use crate::crypto::signing::{event_signer, new_event_key};
use crate::model::{EventStatus, Role, TicketStatus, TierId, new_event_id, new_ticket_id};
use sync_protocol::manifest::{EntryStatus, ManifestState};
use sync_protocol::{KeyCertificate, KeyRing, Manifest, ManifestDelta, ManifestView, PublicKey};

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (dir, connect(&url, 4).await.unwrap())
}

fn ticket(event: &EventRecord, status: TicketStatus) -> TicketRecord {
    let tier = &event.tiers[0];
    TicketRecord {
        id: new_ticket_id(),
        event_id: event.id,
        tier_id: tier.id,
        tier: tier.tier,
        zone_mask: tier.zone_mask,
        owner_id: None,
        order_id: None,
        holder_name: "A. Jensen".into(),
        status,
        generation: 0,
        credential: None,
        price_minor: 0,
        currency: "EUR".into(),
        created_at: 1,
        updated_at: 1,
    }
}

async fn active_event(store: &dyn Store, vault: &KeyVault) -> EventRecord {
    let organizer = UserRecord {
        id: UserId::new(),
        email: "o@example.com".into(),
        password_hash: "x".into(),
        display_name: "O".into(),
        role: Role::Organizer,
        country: None,
        birth_year: None,
        created_at: 1,
        updated_at: 1,
    };
    store.create_user(&organizer).await.unwrap();
    let id = new_event_id();
    let event = EventRecord {
        id,
        organizer_id: organizer.id,
        name: "E".into(),
        description: String::new(),
        venue: "V".into(),
        starts_at: 1_900_000_000_000,
        ends_at: 1_900_000_100_000,
        currency: "EUR".into(),
        status: EventStatus::Draft,
        manifest_version: 0,
        created_at: 1,
        zones: Vec::new(),
        updated_at: 1,
        tiers: vec![TierRecord {
            id: TierId::new(),
            event_id: id,
            tier: 1,
            name: "GA".into(),
            price_minor: 100,
            currency: "EUR".into(),
            capacity: 3,
            allocated: 0,
            zone_mask: 1,
            zone: "Floor".into(),
        }],
    };
    let key = new_event_key(store, vault, organizer.id, id, event.ends_at, 1_000)
        .await
        .unwrap();
    store.create_event(&event, &key).await.unwrap();
    store
        .set_event_status(id, EventStatus::Active, organizer.id, 2)
        .await
        .unwrap();
    store.event(id).await.unwrap()
}

fn new_tickets(event: &EventRecord, tickets: Vec<TicketRecord>) -> NewTickets {
    NewTickets {
        event_id: event.id,
        tier_id: event.tiers[0].id,
        tickets,
        order: None,
        actor: None,
        reason: "test".into(),
    }
}

#[tokio::test]
async fn manifest_log_signs_full_manifests_and_chained_deltas() {
    let (_dir, store) = store().await;
    let vault = KeyVault::new([3; 32]);
    let event = active_event(store.as_ref(), &vault).await;
    let signer = event_signer(store.as_ref(), &vault, event.id)
        .await
        .unwrap();
    let root = store.organizer_key(event.organizer_id).await.unwrap();
    let root = PublicKey::from_bytes(&root.public_key.try_into().unwrap()).unwrap();
    let mut ring = KeyRing::new(root);
    ring.insert(
        KeyCertificate::decode(&store.event_key(event.id).await.unwrap().certificate).unwrap(),
    )
    .unwrap();

    let (a, b) = (
        ticket(&event, TicketStatus::Issued),
        ticket(&event, TicketStatus::Issued),
    );
    store
        .create_tickets(&new_tickets(&event, vec![a.clone(), b.clone()]), 10)
        .await
        .unwrap();
    let (v1, full1) = store
        .signed_manifest(event.id, &signer, 1_800_000_000)
        .await
        .unwrap();
    assert_eq!(v1, 2, "version 1 opened the door (active), 2 sold");
    let mut node = ManifestState::empty(event.id);
    node.replace(Manifest::open(&full1, &ring, &event.id).unwrap())
        .unwrap();

    let change = StatusChange {
        ticket_id: a.id,
        to: TicketStatus::Refunded,
        credential: None,
        actor: None,
        reason: "refund".into(),
    };
    store.change_ticket_status(&change, 11).await.unwrap();
    let (changes, base) = store.manifest_changes_since(event.id, 2).await.unwrap();
    let (v2, delta) = (
        changes.version,
        changes
            .sign_delta(2, &base, &signer, 1_800_000_000)
            .unwrap(),
    );
    assert_eq!(v2, 3);
    node.apply(ManifestDelta::open(&delta, &ring, &event.id).unwrap())
        .unwrap();
    assert_eq!(
        node.entry(&a.id).unwrap().status,
        EntryStatus::Revoked,
        "the refund reaches the door"
    );
    assert_eq!(node.entry(&b.id).unwrap().status, EntryStatus::Valid);
    let (_, full2) = store
        .signed_manifest(event.id, &signer, 1_800_000_000)
        .await
        .unwrap();
    assert_eq!(
        &Manifest::open(&full2, &ring, &event.id).unwrap().digest,
        node.digest()
    );
}

#[tokio::test]
async fn capacity_is_never_oversold_and_refusals_write_nothing() {
    let (_dir, store) = store().await;
    let event = active_event(store.as_ref(), &KeyVault::new([3; 32])).await;
    let two = vec![
        ticket(&event, TicketStatus::Issued),
        ticket(&event, TicketStatus::Issued),
    ];
    store
        .create_tickets(&new_tickets(&event, two.clone()), 10)
        .await
        .unwrap();
    let more = vec![
        ticket(&event, TicketStatus::Issued),
        ticket(&event, TicketStatus::Issued),
    ];
    assert!(matches!(
        store.create_tickets(&new_tickets(&event, more), 11).await,
        Err(StoreError::SoldOut { asked: 2, .. })
    ));
    let filter = TicketFilter {
        event_id: Some(event.id),
        limit: 100,
        ..TicketFilter::default()
    };
    assert_eq!(
        store.list_tickets(&filter).await.unwrap().len(),
        2,
        "the refused batch left no rows"
    );
    assert_eq!(
        store.manifest_snapshot(event.id).await.unwrap().version,
        2,
        "nor a manifest version (1: the door opened, 2: the sale)"
    );
    // Same ticket id twice: the whole batch fails and the capacity taken is given back.
    let dup = ticket(&event, TicketStatus::Issued);
    assert!(
        store
            .create_tickets(&new_tickets(&event, vec![dup.clone()]), 12)
            .await
            .is_ok()
    );
    assert!(
        store
            .create_tickets(&new_tickets(&event, vec![two[0].clone()]), 13)
            .await
            .is_err()
    );
    assert_eq!(store.event(event.id).await.unwrap().tiers[0].allocated, 3);
}
