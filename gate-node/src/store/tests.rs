use super::*;
use crate::fixture::EventFixture;
use sync_protocol::manifest::{EntryStatus, ManifestError};
use sync_protocol::{
    CheckinLog, Decision, Direction, ScanId, ScanRecord, SecretKey, SyncMessage, TimeReading,
    decide,
};

const NOW_MS: u64 = 1_750_000_000_000;

fn store_for(f: &EventFixture, n: u8) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    crate::provision::import(&store, &f.bundle(n, "North 2"), [9; 32]).unwrap();
    (dir, store)
}

fn template(store: &Store) -> RecordTemplate {
    let id = store.require_identity().unwrap();
    RecordTemplate {
        node: id.node_id,
        event_id: id.event_id,
        direction: Direction::Entry,
        zone: None,
        gate: id.gate,
        operator: String::new(),
    }
}

fn scan(store: &Store, text: &str, wall_ms: u64) -> (Decision, Option<ScanRecord>) {
    let policy = store.require_identity().unwrap().policy;
    let now = TimeReading {
        unix_secs: wall_ms / 1000,
        trusted: true,
    };
    store
        .decide_and_record(wall_ms, &template(store), |keys, m, c| {
            decide(text, keys, m, c, &policy, now)
        })
        .unwrap()
}

#[test]
fn admits_once_then_already_inside_and_malformed_writes_nothing() {
    let f = EventFixture::new(1, 10);
    let (_dir, store) = store_for(&f, 1);
    let text = f.credential(f.ticket(3));
    let (d, r) = scan(&store, &text, NOW_MS);
    assert!(
        d.outcome.is_admit(),
        "a listed, signed ticket is admitted: {d:?}"
    );
    assert_eq!(
        r.unwrap().id.seq,
        1,
        "the first scan of a node has sequence 1"
    );
    let (d, r) = scan(&store, &text, NOW_MS + 1);
    assert_eq!(
        d.outcome.reason().map(|r| r.as_str()),
        Some("already_inside")
    );
    assert_eq!(
        r.unwrap().id.seq,
        2,
        "rejections that parsed are recorded too"
    );
    let (d, r) = scan(&store, "garbage", NOW_MS + 2);
    assert_eq!(d.outcome.reason().map(|r| r.as_str()), Some("malformed"));
    assert!(r.is_none(), "malformed text is never recorded");
    assert_eq!(store.record_count().unwrap(), 2);
}

#[test]
fn sequence_and_hlc_survive_reopen_and_a_clock_that_jumped_back() {
    let f = EventFixture::new(2, 10);
    let (dir, store) = store_for(&f, 1);
    let (_, a) = scan(&store, &f.credential(f.ticket(0)), NOW_MS);
    drop(store);
    let store = Store::open_in(dir.path()).unwrap();
    // The wall clock came back from a reboot without a battery: 1970.
    let (_, b) = scan(&store, &f.credential(f.ticket(1)), 5_000);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        b.id.seq, 2,
        "sequence numbers are never reused across restarts"
    );
    assert!(
        b.hlc > a.hlc,
        "a backwards clock never orders a later scan first"
    );
}

#[test]
fn deltas_apply_on_their_base_only_and_forgeries_write_nothing() {
    let mut f = EventFixture::new(3, 10);
    let (_dir, store) = store_for(&f, 1);
    assert_eq!(store.manifest_info().unwrap().version, 1);
    let t = f.ticket(4);
    let d2 = f.revoke(t);
    let d3 = f.delta(vec![f.entry(20)]);
    let gap = store.apply_delta(&d3).unwrap_err();
    assert!(
        matches!(
            gap,
            StoreError::Manifest(ManifestError::Gap { held: 1, base: 2 })
        ),
        "a delta that skips a version is a gap: {gap}"
    );
    assert_eq!(
        store.manifest_info().unwrap().version,
        1,
        "a gap writes nothing"
    );
    store.apply_delta(&d2).unwrap();
    store.apply_delta(&d3).unwrap();
    let info = store.manifest_info().unwrap();
    assert_eq!((info.version, info.entries), (3, 11));
    assert_eq!(
        store.manifest_entry(&t).unwrap().unwrap().status,
        EntryStatus::Revoked
    );
    // Signed by a key the root never certified.
    let mut rogue = f.clone();
    rogue.event_key = SecretKey::from_seed([77; 32]);
    rogue.cert = f.root.certify(f.event_id, &f.event_key.public(), 0, 1);
    let forged = rogue.delta(vec![f.entry(30)]);
    assert!(
        store.apply_delta(&forged).is_err(),
        "a forged delta is refused"
    );
    let mut tampered = f.clone().delta(vec![f.entry(31)]);
    let n = tampered.len();
    tampered[n - 70] ^= 1;
    assert!(
        store.apply_delta(&tampered).is_err(),
        "a tampered delta is refused"
    );
    assert_eq!(
        store.manifest_info().unwrap().version,
        3,
        "refusals write nothing"
    );
    // A full manifest may not roll back.
    let old = EventFixture::new(3, 10).manifest_bytes();
    assert!(matches!(
        store.apply_manifest(&old),
        Err(StoreError::Manifest(ManifestError::Stale { .. }))
    ));
}

#[test]
fn full_manifest_replaces_entries_in_one_go() {
    let mut f = EventFixture::new(4, 1000);
    let (_dir, store) = store_for(&f, 1);
    f.revoke(f.ticket(1));
    f.delta(vec![f.entry(5000)]);
    let applied = store.apply_manifest(&f.manifest_bytes()).unwrap();
    assert_eq!((applied.from, applied.to, applied.entries), (1, 3, 1001));
    assert_eq!(
        store.manifest_entry(&f.ticket(1)).unwrap().unwrap().status,
        EntryStatus::Revoked
    );
}

#[test]
fn batches_are_all_or_nothing_and_sync_matches_the_reference_log() {
    let f = EventFixture::new(5, 10);
    let (_da, a) = store_for(&f, 1);
    let (_db, b) = store_for(&f, 2);
    let mut reference = CheckinLog::new(f.event_id);
    for i in 0..5 {
        let (_, r) = scan(&a, &f.credential(f.ticket(i)), NOW_MS + u64::from(i));
        reference.insert(r.unwrap()).unwrap();
    }
    let (_, rb) = scan(&b, &f.credential(f.ticket(0)), NOW_MS + 10);
    let rb = rb.unwrap();
    reference.insert(rb.clone()).unwrap();
    // A conflicting copy of a held record poisons the whole batch.
    let mut evil = a
        .record(&ScanId {
            node: a.require_identity().unwrap().node_id,
            seq: 1,
        })
        .unwrap()
        .unwrap();
    evil.gate = "elsewhere".into();
    evil.sign(&f.device_key(1));
    let err = b.apply_records(&[rb.clone(), evil.clone()], NOW_MS, u64::MAX);
    assert!(
        err.is_ok(),
        "the evil copy is new to b, so it is accepted as new: {err:?}"
    );
    let before = a.summary().unwrap();
    let err = a
        .apply_records(&[rb.clone(), evil], NOW_MS, u64::MAX)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Refused(sync_protocol::roster::RecordRefusal::OwnNode(_))
        ),
        "nobody but a records under a's id: {err}"
    );
    assert_eq!(
        a.summary().unwrap(),
        before,
        "a refused batch writes nothing, not even rb"
    );

    // Fresh pair for the sync itself.
    let (_dc, c) = store_for(&f, 3);
    let mut msg = Some(a.sync_message(None, 2).unwrap());
    let (mut from, mut to) = (&a, &c);
    let mut rounds = 0;
    while let Some(m) = msg {
        let bytes = m.encode();
        let m = SyncMessage::decode(&bytes).unwrap();
        msg = to.sync_receive(&m, 2, NOW_MS, u64::MAX).unwrap().reply;
        std::mem::swap(&mut from, &mut to);
        rounds += 1;
        assert!(rounds < 20, "sync terminates");
    }
    assert_eq!(
        a.summary().unwrap(),
        c.summary().unwrap(),
        "both replicas converge"
    );
    let mut ref_a = CheckinLog::new(f.event_id);
    for r in a.recent(100).unwrap() {
        ref_a.insert(r).unwrap();
    }
    assert_eq!(
        &a.summary().unwrap(),
        ref_a.summary(),
        "SQLite summary equals the reference"
    );
}

#[test]
fn double_admissions_are_kept_and_flagged() {
    let f = EventFixture::new(6, 10);
    let (_da, a) = store_for(&f, 1);
    let (_db, b) = store_for(&f, 2);
    let text = f.credential(f.ticket(2));
    let (da, ra) = scan(&a, &text, NOW_MS);
    let (db, rb) = scan(&b, &text, NOW_MS + 5);
    assert!(
        da.outcome.is_admit() && db.outcome.is_admit(),
        "partitioned gates both admit"
    );
    a.apply_records(&[rb.unwrap()], NOW_MS, u64::MAX).unwrap();
    b.apply_records(&[ra.unwrap()], NOW_MS, u64::MAX).unwrap();
    for s in [&a, &b] {
        let flagged = s.double_admissions(10).unwrap();
        assert_eq!(
            flagged.len(),
            1,
            "the double admission is flagged on both nodes"
        );
        assert_eq!(s.record_count().unwrap(), 2, "and neither scan is lost");
    }
}

#[test]
fn cloud_backlog_counts_what_the_cloud_cursor_lacks() {
    let f = EventFixture::new(7, 10);
    let (_d, s) = store_for(&f, 1);
    for i in 0..3 {
        scan(&s, &f.credential(f.ticket(i)), NOW_MS + u64::from(i));
    }
    assert_eq!(s.cloud_backlog().unwrap().pending, 3);
    let mut acked = CheckinLog::new(f.event_id);
    let first: Vec<_> = s
        .recent(10)
        .unwrap()
        .into_iter()
        .filter(|r| r.id.seq <= 2)
        .collect();
    acked.apply(first).unwrap();
    s.set_cursor("cloud", acked.summary(), NOW_MS).unwrap();
    assert_eq!(s.cloud_backlog().unwrap().pending, 1);
    assert_eq!(s.cursor("cloud").unwrap().as_ref(), Some(acked.summary()));
}

#[test]
fn a_version_1_database_opens_with_current_code() {
    let f = EventFixture::new(8, 10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.db");
    {
        // What the first release left on disk: schema 1 and its rows.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    {
        let store = Store::open(&path).unwrap();
        crate::provision::import(&store, &f.bundle(1, "v1"), [1; 32]).unwrap();
        scan(&store, &f.credential(f.ticket(1)), NOW_MS);
    }
    // Roll the file back to a version-1 shape with a version-1 row in it.
    let v1 = tempfile::tempdir().unwrap();
    let v1_path = v1.path().join("gate.db");
    {
        let conn = rusqlite::Connection::open(&v1_path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS cur", [path.to_str().unwrap()])
            .unwrap();
        conn.execute_batch(
            "INSERT INTO meta SELECT * FROM cur.meta;
             INSERT INTO key_certs SELECT * FROM cur.key_certs;
             INSERT INTO manifest_entries SELECT * FROM cur.manifest_entries;
             INSERT INTO checkins SELECT node, seq, ticket_id, hlc, outcome, direction, record FROM cur.checkins;
             INSERT INTO summary_prefix SELECT * FROM cur.summary_prefix;",
        )
        .unwrap();
    }
    let store = Store::open(&v1_path).unwrap();
    assert_eq!(
        schema::version(&store.lock().conn).unwrap(),
        schema::SCHEMA_VERSION
    );
    assert_eq!(
        store.record_count().unwrap(),
        1,
        "v1 rows stay readable after migrating"
    );
    let (d, r) = scan(&store, &f.credential(f.ticket(1)), NOW_MS + 1);
    assert_eq!(
        d.outcome.reason().map(|r| r.as_str()),
        Some("already_inside")
    );
    assert_eq!(r.unwrap().id.seq, 2);
    drop(store);
    let conn = rusqlite::Connection::open(&v1_path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&v1_path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn another_process_provisioning_or_adding_keys_is_seen_without_a_restart() {
    let f = EventFixture::new(9, 3);
    let dir = tempfile::tempdir().unwrap();
    let daemon = Store::open_in(dir.path()).unwrap();
    assert!(daemon.identity().is_none());
    let cli = Store::open_in(dir.path()).unwrap();
    crate::provision::import(&cli, &f.bundle(1, "G"), [1; 32]).unwrap();
    assert_eq!(
        daemon.identity().map(|i| i.node_id),
        Some(f.bundle(1, "G").node_id),
        "the daemon sees what the CLI committed"
    );
    // A rotated event key arrives through a delta applied by the CLI.
    let mut g = f.clone();
    g.event_key = SecretKey::from_seed([123; 32]);
    g.cert = f
        .root
        .certify(f.event_id, &g.event_key.public(), 0, u64::MAX / 2);
    let mut carrier = f.clone();
    carrier.cert = g.cert.clone();
    cli.apply_delta(&carrier.delta(vec![f.entry(50)])).unwrap();
    let (d, _) = scan(&daemon, &g.credential(f.ticket(1)), NOW_MS);
    assert!(
        d.outcome.is_admit(),
        "the daemon trusts the new key at once: {d:?}"
    );
}

#[test]
fn every_commit_is_fsynced_wal_with_synchronous_full() {
    // kill -9 cannot test power loss (the page cache survives the process),
    // so pin the setting that makes a commit durable when COMMIT returns.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let inner = store.lock();
    let mode: String = inner
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let sync: i64 = inner
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        sync, 2,
        "synchronous=FULL (2): the WAL is fsynced at every commit"
    );
}

fn remote(f: &EventFixture, node: u8, seq: u64) -> ScanRecord {
    let mut r = ScanRecord {
        id: ScanId {
            node: f.node_id(node),
            seq,
        },
        event_id: f.event_id,
        ticket_id: f.ticket(u32::from(node) * 100 + seq as u32),
        generation: 0,
        direction: Direction::Entry,
        hlc: sync_protocol::Hlc::new(NOW_MS + seq, u16::from(node)),
        zone: None,
        outcome: sync_protocol::Outcome::Admit,
        gate: format!("G{node}"),
        operator: String::new(),
        signature: Default::default(),
    };
    r.sign(&f.device_key(node));
    r
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 24, ..Default::default() })]

    /// Records arriving in any order and any batching leave the SQLite
    /// summary and the records it offers exactly as the reference log's.
    #[test]
    fn out_of_order_arrival_matches_the_reference_log(
        picks in proptest::collection::vec((1u8..4, 1u64..10), 1..24),
        cuts in proptest::collection::vec(1usize..5, 1..8),
    ) {
        let f = EventFixture::new(10, 1);
        let (_d, store) = store_for(&f, 9);
        let mut reference = CheckinLog::new(f.event_id);
        let mut seen = std::collections::BTreeSet::new();
        let records: Vec<ScanRecord> = picks
            .into_iter()
            .filter(|p| seen.insert(*p))
            .map(|(n, s)| remote(&f, n, s))
            .collect();
        let mut rest = records.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*cut).min(rest.len()));
            rest = tail;
            store.apply_records(batch, NOW_MS, u64::MAX).unwrap();
            reference.apply(batch.to_vec()).unwrap();
            proptest::prop_assert_eq!(&store.summary().unwrap(), reference.summary());
        }
        let probe = CheckinLog::new(f.event_id);
        let mut mine = store.missing_for(probe.summary(), 1000).unwrap();
        let mut theirs = reference.missing_for(probe.summary(), 1000);
        mine.sort_by_key(|r| r.id);
        theirs.sort_by_key(|r| r.id);
        proptest::prop_assert_eq!(mine, theirs);
    }
}

#[test]
fn an_ended_event_closes_the_door_and_the_gate_says_how_old_its_news_is() {
    use sync_protocol::manifest::DoorState;
    let mut f = EventFixture::new(1, 10);
    let (_dir, store) = store_for(&f, 1);
    let text = f.credential(f.ticket(3));
    assert_eq!(
        store.manifest_info().unwrap().door.state,
        None,
        "never told"
    );
    store.apply_delta(&f.door(DoorState::Live)).unwrap();
    let info = store.manifest_info().unwrap();
    assert_eq!(info.door.state, Some(DoorState::Live));
    assert_eq!(info.door.as_of, Some(crate::fixture::ISSUED_AT));
    let (d, _) = scan(&store, &text, NOW_MS);
    assert!(d.outcome.is_admit(), "doors open: {d:?}");
    assert_eq!(
        d.door_news_age_secs,
        Some(NOW_MS / 1000 - crate::fixture::ISSUED_AT),
        "the decision says how old the door news is"
    );
    store
        .confirm_manifest_current(crate::fixture::ISSUED_AT + 60)
        .unwrap();
    assert_eq!(
        store.manifest_info().unwrap().door.as_of,
        Some(crate::fixture::ISSUED_AT + 60),
        "an up-to-date answer refreshes the news"
    );
    store.apply_delta(&f.door(DoorState::Ended)).unwrap();
    let other = f.credential(f.ticket(4));
    let (d, r) = scan(&store, &other, NOW_MS + 1);
    assert_eq!(
        d.outcome,
        sync_protocol::Outcome::Reject(sync_protocol::Reason::EventClosed),
        "an ended event admits nobody"
    );
    assert!(r.is_some(), "the refusal is recorded like any scan");
}

/// A stolen SD card aside, nobody else on the box reads the device key:
/// gate.db and its WAL/shm files are the service user's alone, even with a
/// permissive umask.
#[cfg(unix)]
#[test]
fn the_store_and_its_journal_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let f = EventFixture::new(41, 3);
    let (dir, _store) = store_for(&f, 1);
    let mut checked = 0;
    for name in ["gate.db", "gate.db-wal", "gate.db-shm"] {
        let p = dir.path().join(name);
        if let Ok(meta) = std::fs::metadata(&p) {
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{name} is readable by others"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "gate.db and its WAL exist while open");
}

#[test]
fn a_retired_key_is_refused_from_the_retirement_on_and_after_a_restart() {
    let mut f = EventFixture::new(12, 10);
    let (dir, store) = store_for(&f, 1);
    let text = f.credential(f.ticket(2));
    let stranger = SecretKey::from_seed([99; 32]);
    let forged = stranger
        .retire(f.event_id, f.event_key.key_id(), 1)
        .encode();
    assert!(
        matches!(
            store.apply_retirements(&[forged]),
            Err(StoreError::BadCertificate(_))
        ),
        "a retirement not signed by the root is refused"
    );
    let other_event = f
        .root
        .retire(
            sync_protocol::EventId::from_bytes([1; 16]),
            f.event_key.key_id(),
            1,
        )
        .encode();
    assert!(store.apply_retirements(&[other_event]).is_err());
    let (d, _) = scan(&store, &text, NOW_MS);
    assert!(d.outcome.is_admit(), "nothing retired yet: {d:?}");

    let retirement = f
        .root
        .retire(f.event_id, f.event_key.key_id(), NOW_MS / 1000)
        .encode();
    assert_eq!(
        store
            .apply_retirements(std::slice::from_ref(&retirement))
            .unwrap(),
        1
    );
    assert_eq!(
        store.apply_retirements(&[retirement]).unwrap(),
        0,
        "applying it again is a no-op"
    );
    let other = f.credential(f.ticket(3));
    let (d, _) = scan(&store, &other, NOW_MS + 1);
    assert_eq!(
        d.outcome.reason().map(|r| r.as_str()),
        Some("key_not_valid")
    );
    let delta = f.delta(vec![f.entry(4)]);
    assert!(
        matches!(
            store.apply_delta(&delta),
            Err(StoreError::Manifest(ManifestError::RetiredSigner(_)))
        ),
        "a manifest the retired key signed is refused"
    );
    drop(store);
    let store = Store::open_in(dir.path()).unwrap();
    let (d, _) = scan(&store, &f.credential(f.ticket(5)), NOW_MS + 2);
    assert_eq!(
        d.outcome.reason().map(|r| r.as_str()),
        Some("key_not_valid"),
        "the retirement is durable"
    );
}
