//! The app without a window, on a real store in a temp folder and real
//! engines: named door scenarios.

use crate::app::App;
use crate::device::SyncConfig;
use crate::error::AppError;
use crate::view::{Role, Verdict};
use gate_node::fixture::EventFixture;
use gate_node::time::SystemClock;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_protocol::SecretKey;
use time::UtcOffset;

fn config(peers: Vec<String>) -> SyncConfig {
    SyncConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        peers,
        anti_entropy_ms: 100,
        debounce_ms: 0,
        ..SyncConfig::default()
    }
}

async fn app_at(
    dir: &std::path::Path,
    f: &EventFixture,
    n: u8,
    gate: &str,
    peers: Vec<String>,
) -> App {
    let app = App::open(
        dir,
        Arc::new(SystemClock::new()),
        config(peers),
        UtcOffset::UTC,
    )
    .expect("open the data folder");
    app.enroll_with_bundle(&f.bundle(n, gate), "alice", "2468")
        .await
        .expect("set up from a bundle");
    app
}

#[tokio::test]
async fn valid_then_again_then_forged() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = EventFixture::new(21, 10);
    let app = app_at(dir.path(), &f, 1, "Side door", vec![]).await;
    let code = f.credential(f.ticket(3));

    let first = app.scan(&code).expect("scan");
    assert_eq!(
        first.verdict,
        Verdict::Green,
        "a valid ticket is admitted: {first:?}"
    );
    assert_eq!(first.headline, "Admit");
    assert_eq!(first.display_name.as_deref(), Some("Guest 3"));
    assert_eq!(first.tier, Some(1));

    let again = app.scan(&code).expect("scan again");
    assert_eq!(
        again.verdict,
        Verdict::Red,
        "the same ticket twice is refused"
    );
    assert_eq!(again.reason.as_deref(), Some("already_inside"));
    assert!(
        again.detail.starts_with("Already inside since ") && again.detail.ends_with(", Side door"),
        "the reason names when and where: {:?}",
        again.detail
    );

    let forger = SecretKey::from_seed([99; 32]);
    let forged = app
        .scan(&f.credential_with(&forger, f.ticket(4)))
        .expect("scan forged");
    assert_eq!(forged.verdict, Verdict::Red);
    assert!(
        forged.detail.contains("forged"),
        "a forged code is explained in words: {:?}",
        forged.detail
    );
    assert_eq!(
        (
            forged.display_name.as_deref(),
            forged.tier,
            forged.zones.as_deref()
        ),
        (None, None, None),
        "a forgery is shown nothing from the manifest"
    );
    let junk = app.scan("hello").expect("scan junk");
    assert_eq!(junk.reason.as_deref(), Some("malformed"));
}

#[tokio::test]
async fn manual_check_in_is_for_supervisors_and_obeys_the_decision() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut f = EventFixture::new(22, 10);
    let app = app_at(dir.path(), &f, 1, "Box office", vec![]).await;
    let ticket = f.ticket(5).to_string();

    app.lock().expect("kiosk");
    assert_eq!(app.role(), Role::Steward);
    assert!(matches!(
        app.check_in_manually(&ticket, "phone dead"),
        Err(AppError::NeedsSupervisor)
    ));
    assert!(matches!(app.unlock("1111"), Err(AppError::WrongPin)));
    app.unlock("2468").expect("supervisor");

    assert!(
        matches!(
            app.check_in_manually(&ticket, " "),
            Err(AppError::Invalid(_))
        ),
        "a reason is required"
    );
    let v = app
        .check_in_manually(&ticket, "phone dead")
        .expect("manual");
    assert_eq!(v.verdict, Verdict::Green, "{v:?}");
    let again = app
        .check_in_manually(&ticket, "phone dead")
        .expect("manual again");
    assert_eq!(
        again.reason.as_deref(),
        Some("already_inside"),
        "manual goes through the same decision"
    );
    let scanned = app
        .scan(&f.credential(f.ticket(5)))
        .expect("scan after manual");
    assert_eq!(scanned.reason.as_deref(), Some("already_inside"));

    let device = app.device().expect("device");
    let record = device
        .store()
        .recent(10)
        .expect("records")
        .into_iter()
        .find(|r| r.outcome.is_admit())
        .expect("the manual admission is recorded");
    assert_eq!(
        record.operator, "manual: alice: phone dead",
        "operator and reason logged"
    );

    let delta = f.revoke(f.ticket(6));
    device.store().apply_delta(&delta).expect("revoke");
    let revoked = app
        .check_in_manually(&f.ticket(6).to_string(), "no phone")
        .expect("manual revoked");
    assert_eq!(
        revoked.reason.as_deref(),
        Some("revoked"),
        "a refunded ticket stays out"
    );
    let unknown = app
        .check_in_manually(&EventFixture::new(23, 1).ticket(0).to_string(), "friend")
        .expect("manual unknown");
    assert_eq!(unknown.reason.as_deref(), Some("not_listed"));
}

#[tokio::test]
async fn exit_then_re_entry_where_the_ticket_allows_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut f = EventFixture::new(24, 10);
    let app = app_at(dir.path(), &f, 1, "Main", vec![]).await;
    let mut e = f.entry(2);
    e.reentry = true;
    let delta = f.delta(vec![e]);
    app.device()
        .expect("device")
        .store()
        .apply_delta(&delta)
        .expect("re-entry allowed");

    let code = f.credential(f.ticket(2));
    assert_eq!(app.scan(&code).expect("in").verdict, Verdict::Green);
    app.set_direction("exit").expect("exit mode");
    let out = app.scan(&code).expect("out");
    assert_eq!(
        (out.verdict, out.headline.as_str()),
        (Verdict::Green, "Exit")
    );
    app.set_direction("entry").expect("entry mode");
    assert_eq!(
        app.scan(&code).expect("back in").verdict,
        Verdict::Green,
        "re-entry allowed"
    );

    let other = f.credential(f.ticket(3));
    app.scan(&other).expect("in");
    app.set_direction("exit").expect("exit");
    app.scan(&other).expect("out");
    app.set_direction("entry").expect("entry");
    let refused = app.scan(&other).expect("back");
    assert_eq!(refused.reason.as_deref(), Some("reentry_denied"));
    assert!(
        refused.detail.starts_with("Left at "),
        "{:?}",
        refused.detail
    );

    app.lock().expect("kiosk");
    assert!(matches!(
        app.set_direction("exit"),
        Err(AppError::NeedsSupervisor)
    ));
}

#[tokio::test]
async fn search_counts_and_offline_sync_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = EventFixture::new(25, 40);
    let app = app_at(dir.path(), &f, 1, "North", vec![]).await;
    app.scan(&f.credential(f.ticket(12))).expect("scan");
    app.scan(&f.credential(f.ticket(13))).expect("scan");
    app.scan(&f.credential(f.ticket(13))).expect("repeat");

    // "12" also matches ticket 18's id (…0012), which sorts after by name.
    let found = app.search("guest 12").expect("search");
    assert_eq!(found.total, 2);
    assert_eq!(found.hits[0].display_name, "Guest 12");
    assert!(found.hits[0].inside);
    assert!(
        found.hits[0].presence.starts_with("inside since "),
        "{:?}",
        found.hits[0].presence
    );
    let by_id = app.search(&f.ticket(30).to_string()).expect("by id");
    assert_eq!(
        (by_id.total, by_id.hits[0].presence.as_str()),
        (1, "not checked in")
    );

    let c = app.counts().expect("counts");
    assert_eq!(
        (c.admitted, c.inside, c.capacity, c.last_5_min),
        (2, 2, 40, 2)
    );
    assert_eq!(c.rejected_here, 1);
    assert_eq!(
        (c.per_gate[0].gate.as_str(), c.per_gate[0].admitted),
        ("North", 2)
    );

    let s = app.sync_state().expect("sync");
    assert!(!s.online, "no cloud configured: offline");
    assert_eq!(s.waiting, 3, "every scan recorded here waits for the cloud");
    assert_eq!(s.summary, "Offline: 3 scans waiting, scanning goes on");
    assert_eq!((s.manifest_version, s.manifest_entries), (1.0, 40));
}

#[tokio::test]
async fn a_ticket_admitted_at_a_peer_is_already_inside_here_within_a_second() {
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let f = EventFixture::new(26, 10);
    let gate = app_at(da.path(), &f, 1, "Gate B", vec![]).await;
    let url = format!("http://{}", gate.device().expect("device").api_addr());
    let app = app_at(db.path(), &f, 2, "Desk", vec![url]).await;
    let code = f.credential(f.ticket(1));
    assert_eq!(
        gate.scan(&code).expect("gate admits").verdict,
        Verdict::Green
    );
    let start = Instant::now();
    loop {
        let s = app.search(&f.ticket(1).to_string()).expect("search");
        if s.hits[0].inside {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the peer's admission arrives within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = app.scan(&code).expect("scan here");
    assert!(
        v.detail.ends_with(", Gate B"),
        "names the other gate: {:?}",
        v.detail
    );
}

#[tokio::test]
async fn a_restarted_app_resumes_enrolled_and_locked() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = EventFixture::new(27, 3);
    let code = f.credential(f.ticket(0));
    {
        let app = app_at(dir.path(), &f, 1, "Side", vec![]).await;
        app.scan(&code).expect("scan");
        app.shutdown();
    }
    let app = App::open(
        dir.path(),
        Arc::new(SystemClock::new()),
        config(vec![]),
        UtcOffset::UTC,
    )
    .expect("reopen");
    app.resume().await.expect("resume");
    let s = app.status();
    assert_eq!(
        (s.role, s.pin_set),
        (Role::Steward, true),
        "a restart never opens supervisor mode"
    );
    assert_eq!(
        app.scan(&code).expect("scan").reason.as_deref(),
        Some("already_inside"),
        "the scan survived"
    );
    assert!(matches!(
        app.enroll_with_bundle(&f.bundle(2, "x"), "bob", "1234")
            .await,
        Err(AppError::AlreadyEnrolled)
    ));
}

#[tokio::test]
async fn a_festival_sized_index_is_rebuilt_in_the_background_and_shows_the_store() {
    use crate::device::BACKGROUND_REBUILD_FROM;
    let dir = tempfile::tempdir().expect("tmp");
    let tickets = BACKGROUND_REBUILD_FROM as u32 + 500;
    let mut f = EventFixture::new(27, tickets);
    let app = app_at(dir.path(), &f, 1, "North", vec![]).await;
    let first = app
        .search("guest 20400")
        .expect("first search builds the index");
    assert_eq!(first.total, 1);

    // Ticket 7 changes hands at the cloud: a new manifest version.
    let mut renamed = f.entry(7);
    renamed.generation = 1;
    renamed.display_name = "Zelda Newholder".into();
    let delta = f.delta(vec![renamed]);
    let device = app.device().expect("device");
    device
        .store()
        .apply_delta(&delta)
        .expect("the delta applies");

    // The keystroke does not wait for the rebuild: it searches the version
    // before, and what it shows is what the store holds now.
    let stale = app
        .search(&f.ticket(7).to_string())
        .expect("search while rebuilding");
    assert_eq!(stale.total, 1, "the previous version still finds ticket 7");
    assert_eq!(
        stale.hits[0].display_name, "Zelda Newholder",
        "shown from the store"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = app.search("zelda").expect("search");
        if found.total == 1 {
            assert_eq!(found.hits[0].ticket_id, f.ticket(7).to_string());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rebuilt index never found the new name"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!device.search_index_rebuilding());
}

/// Writes `img` into the injected camera's folder as the next frame
/// (written aside, then renamed: the folder never shows half a frame).
fn hold_up(dir: &std::path::Path, name: &str, img: &image::GrayImage) {
    let part = dir.join(format!("{name}.part"));
    img.save_with_format(&part, image::ImageFormat::Png)
        .expect("write the frame");
    std::fs::rename(&part, dir.join(name)).expect("publish the frame");
}

#[tokio::test]
async fn the_injected_camera_scans_what_is_held_up_until_stopped() {
    use crate::camera::{CameraInput, start};
    use std::sync::mpsc;
    let dir = tempfile::tempdir().expect("tmp");
    let frames = tempfile::tempdir().expect("tmp");
    let f = EventFixture::new(24, 10);
    let app = app_at(dir.path(), &f, 1, "Side door", vec![]).await;
    let (scans, scanned) = mpsc::channel();
    let (previews, previewed) = mpsc::channel();
    assert!(
        matches!(
            start(
                app.device().expect("device"),
                &CameraInput::Frames(frames.path().join("missing")),
                |_| {},
                |_| {},
            ),
            Err(AppError::Camera(_))
        ),
        "a missing frame folder is refused at start"
    );
    let run = start(
        app.device().expect("device"),
        &CameraInput::Frames(frames.path().to_path_buf()),
        move |r| {
            let _ = scans.send(r);
        },
        move |p| {
            let _ = previews.send(p);
        },
    )
    .expect("the injected camera starts");

    // A frame with no code: a preview, no scan.
    hold_up(
        frames.path(),
        "1-empty.png",
        &image::GrayImage::from_pixel(640, 480, image::Luma([128])),
    );
    let p = previewed
        .recv_timeout(Duration::from_secs(5))
        .expect("the empty frame is previewed");
    assert!(p.starts_with("data:image/png;base64,"), "{p:.40}");
    assert!(
        scanned.recv_timeout(Duration::from_millis(400)).is_err(),
        "a frame without a code scans nothing"
    );

    // A ticket's QR code on a grey scene, as a phone held up to a webcam.
    let code = f.credential(f.ticket(2));
    let qr = qrcode::QrCode::new(code.as_bytes())
        .expect("QR")
        .render::<image::Luma<u8>>()
        .min_dimensions(300, 300)
        .build();
    let mut scene = image::GrayImage::from_pixel(640, 480, image::Luma([150]));
    image::imageops::overlay(&mut scene, &qr, 150, 60);
    hold_up(frames.path(), "2-ticket.png", &scene);
    let view = scanned
        .recv_timeout(Duration::from_secs(5))
        .expect("the ticket's frame is scanned")
        .expect("a scan result");
    assert_eq!(view.verdict, Verdict::Green, "{view:?}");
    assert_eq!(view.display_name.as_deref(), Some("Guest 2"));
    let again = app.scan(&code).expect("typed after the camera");
    assert_eq!(
        again.reason.as_deref(),
        Some("already_inside"),
        "the camera's admission is recorded by the same engine"
    );

    // Stopping the camera ends its thread within a poll (a folder waits
    // for its next frame forever otherwise).
    assert!(!run.finished(), "the camera waits for the next frame");
    let t = Instant::now();
    drop(run);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        t.elapsed()
    );
}
