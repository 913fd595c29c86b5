//! The scanner app in its real window under Xvfb, through WebDriver
//! (tauri-driver + WebKitWebDriver), against the real `cloud` binary and a
//! real `gate-node` process on loopback (the e2e harness). One door-staff
//! journey, step by step, saving the README's screenshots on the way. The
//! camera is the injected one (`--camera-frames DIR`): the test writes
//! frames into a folder that the app's camera thread reads exactly as it
//! reads the webcam (no camera exists here, and no v4l2loopback module).
//!
//! Needs the workspace binaries (`cargo build --workspace --bins`, which
//! `cargo nextest run --workspace` does), Xvfb, webkit2gtk-driver and
//! tauri-driver (`scripts/setup`).

mod harness;

use e2e::node::Timings;
use e2e::venue::Venue;
use harness::Window;
use serde_json::Value;
use std::time::{Duration, Instant};
use sync_protocol::{Claims, Credential, EventId, SecretKey, TicketId};

const ENTER: &str = "\u{E007}";
/// A door-staff account on the event's roster (not its organizer): it
/// signs in, sees the roster's event and enrolls the app itself.
const STAFF: &str = "door@gatehouse.test";
const PASSWORD: &str = "correct horse battery";

/// A correctly formed credential for a real ticket, signed by a key the
/// event never certified.
fn forged(event: &str, ticket: &str) -> String {
    let claims = Claims {
        event_id: event.parse::<EventId>().expect("event id"),
        ticket_id: ticket.parse::<TicketId>().expect("ticket id"),
        generation: 0,
        tier: 1,
        zones: 1,
        window: None,
        holder_key: None,
    };
    Credential::issue(&SecretKey::from_seed([0x5a; 32]), claims)
        .expect("issue")
        .to_qr_text()
}

/// Switches screens with the keyboard (F1 scan, F2 search, F3 counts, F4
/// settings), as staff do; it also dismisses a result on screen.
async fn view(w: &Window, name: &str) {
    let key = match name {
        "scan" => "\u{E031}",
        "search" => "\u{E032}",
        "counts" => "\u{E033}",
        _ => "\u{E034}",
    };
    w.keys_to_focus(key).await;
    let panel = format!("view-{name}");
    w.wait(&format!("the {name} screen"), || async {
        w.shown(&panel).await
    })
    .await;
}

/// Scans `code` in the scan field and waits for a new result screen. The
/// field keeps the focus while a result shows: the next scan needs no click.
async fn scan(w: &Window, code: &str) -> (String, String) {
    let before = w.data("result", "seq").await;
    if !w.shown("view-scan").await {
        view(w, "scan").await;
    }
    let focused = w
        .js(
            "return document.activeElement && document.activeElement.id",
            vec![],
        )
        .await;
    assert_eq!(
        focused, "scan-input",
        "the scan field has the focus for the next scan"
    );
    w.keys_to_focus(&format!("{code}{ENTER}")).await;
    w.wait("a new result screen", || async {
        w.data("result", "seq").await != before
    })
    .await;
    (
        w.data("result", "verdict").await,
        w.text("result-detail").await,
    )
}

/// Holds `img` up to the injected camera: the next frame of its folder,
/// written aside and renamed (the folder never shows half a frame).
fn hold_up(dir: &std::path::Path, name: &str, img: &image::GrayImage) {
    let part = dir.join(format!("{name}.part"));
    img.save_with_format(&part, image::ImageFormat::Png)
        .expect("write the frame");
    std::fs::rename(&part, dir.join(name)).expect("publish the frame");
}

async fn sync_bar(w: &Window) -> (bool, u64, String) {
    (
        w.data("sync", "online").await == "true",
        w.data("sync", "waiting").await.parse().unwrap_or(u64::MAX),
        w.text("sync-summary").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_staff_journey_online_offline_and_back() {
    let venue = Venue::open(1, Timings::fast(), false).await;
    let sold = venue.cloud.sell(&venue.event, 7).await;
    venue.cloud.staff(&venue.event, STAFF).await;
    let data = tempfile::tempdir().expect("tmp");
    let frames = tempfile::tempdir().expect("tmp");
    let args: Vec<String> = [
        "--data-dir",
        &data.path().display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--peer",
        &venue.nodes[0].proxy.url(),
        "--cloud-interval-ms",
        "300",
        "--cloud-backoff-max-ms",
        "500",
        "--anti-entropy-ms",
        "200",
        "--debounce-ms",
        "0",
        "--utc-offset",
        "+00:00",
        "--camera-frames",
        &frames.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let w = Window::open(&e2e::binary("scanner-app"), &args).await;

    // Sign in and pick the event.
    assert!(
        w.shown("signin-form").await,
        "a fresh install opens on sign-in"
    );
    w.type_into("cloud-url", &venue.cloud_proxy.url()).await;
    w.type_into("email", STAFF).await;
    w.type_into("password", PASSWORD).await;
    w.click("signin").await;
    w.wait("the event list after sign-in", || async {
        w.shown("event-form").await
    })
    .await;
    assert!(
        w.text("event-list").await.contains("Harbour Lights"),
        "the event of the staff member's roster is offered: {}",
        w.text("event-list").await
    );
    w.type_into("gate-name", "Side door").await;
    w.type_into("pin", "2468").await;
    w.click("enroll").await;
    w.wait("the scan screen after enrolling", || async {
        w.shown("scan-input").await
    })
    .await;
    w.wait("the manifest with the sold tickets", || async {
        w.text("sync-details").await.contains("7 tickets")
    })
    .await;

    // A valid code, typed: admit. Again: already inside. A forgery: why.
    let (verdict, detail) = scan(&w, &sold[0].1).await;
    assert_eq!(verdict, "green", "a sold ticket is admitted: {detail}");
    assert_eq!(w.text("result-headline").await, "Admit");
    assert!(
        w.text("result-who").await.contains("Jensen"),
        "the holder's name is shown"
    );
    w.screenshot("scan-admit").await;

    // The same through the camera: the app's camera thread, decoder and
    // engine, fed by the injected camera (`--camera-frames`, a watched
    // folder standing in for the webcam). A frame with no code shows
    // nothing; the ticket's QR image as the cloud serves it, held up in
    // front of the camera, admits.
    view(&w, "scan").await;
    w.click("camera-toggle").await;
    w.wait("the camera on", || async {
        w.text("camera-toggle").await == "Stop camera"
    })
    .await;
    let before = w.data("result", "seq").await;
    hold_up(
        frames.path(),
        "1-empty.png",
        &image::GrayImage::from_pixel(640, 480, image::Luma([128])),
    );
    w.wait("the empty frame's preview", || async {
        w.js(
            "const p = document.getElementById('camera-preview'); return !p.hidden && p.src.startsWith('data:image/png;base64,')",
            vec![],
        )
        .await
        .as_bool()
        .unwrap_or(false)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        (w.data("result", "seq").await, w.text("scan-error").await),
        (before.clone(), String::new()),
        "a frame with no code shows no result and no error"
    );
    let png = venue.cloud.qr_png(&sold[6].0).await;
    let qr = image::load_from_memory(&png)
        .expect("the cloud's QR PNG")
        .to_luma8();
    let mut scene = image::GrayImage::from_pixel(640, 480, image::Luma([160]));
    let (qw, qh) = qr.dimensions();
    image::imageops::overlay(
        &mut scene,
        &qr,
        i64::from(640u32.saturating_sub(qw) / 2 + 40),
        i64::from(480u32.saturating_sub(qh) / 2),
    );
    hold_up(frames.path(), "2-ticket.png", &scene);
    w.wait("the camera's result", || async {
        w.data("result", "seq").await != before
    })
    .await;
    assert_eq!(
        (
            w.data("result", "verdict").await,
            w.text("result-headline").await
        ),
        ("green".to_string(), "Admit".to_string()),
        "the ticket held up to the camera is admitted: {}",
        w.text("result-detail").await
    );
    assert!(
        w.text("result-who").await.contains("Jensen")
            && w.text("result-facts").await.contains(&sold[6].0),
        "the camera's admit names the holder and that ticket: {}",
        w.text("result-facts").await
    );
    w.screenshot("camera-admit").await;
    view(&w, "scan").await;
    w.click("camera-toggle").await;
    w.wait("the camera off", || async {
        w.text("camera-toggle").await == "Start camera" && !w.shown("camera-preview").await
    })
    .await;

    let (verdict, detail) = scan(&w, &sold[0].1).await;
    assert_eq!(verdict, "red");
    assert!(
        detail.starts_with("Already inside since ") && detail.ends_with(", Side door"),
        "a repeat says since when and where: {detail}"
    );
    let (verdict, detail) = scan(&w, &forged(&venue.event, &sold[1].0)).await;
    assert_eq!(verdict, "red");
    assert!(
        detail.contains("forged"),
        "a forgery is explained in words: {detail}"
    );
    w.screenshot("scan-reject").await;

    // Admitted at the gate node: already inside here within a second.
    let gate = venue.nodes[0].scan(&sold[2].1).await;
    assert_eq!(gate["decision"], "admit", "{gate}");
    let t0 = Instant::now();
    view(&w, "search").await;
    loop {
        w.type_into("search-input", &sold[2].0).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if w.text("search-results").await.contains("inside since") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "an admission at Gate A shows here within 1 s"
        );
    }
    let (verdict, detail) = scan(&w, &sold[2].1).await;
    assert_eq!(verdict, "red");
    assert!(
        detail.ends_with(", Gate A"),
        "names the gate that let them in: {detail}"
    );

    // Online and caught up, then the venue's internet goes.
    w.wait("online with nothing waiting", || async {
        let (online, waiting, _) = sync_bar(&w).await;
        online && waiting == 0
    })
    .await;
    venue.cloud_proxy.cut();
    let (verdict, _) = scan(&w, &sold[3].1).await;
    assert_eq!(
        verdict, "green",
        "offline, a valid ticket is still admitted"
    );
    let offline_scan = w.data("result", "scanId").await;
    w.wait("offline with the scan waiting", || async {
        let (online, waiting, summary) = sync_bar(&w).await;
        !online && waiting >= 1 && summary.starts_with("Offline: ")
    })
    .await;
    assert_eq!(
        w.data("result", "verdict").await,
        "green",
        "the admit is still on screen"
    );
    w.screenshot("offline").await;

    // Heal: nothing waits and the cloud holds the offline scan.
    venue.cloud_proxy.heal();
    w.wait("online again with 0 waiting", || async {
        let (online, waiting, _) = sync_bar(&w).await;
        online && waiting == 0
    })
    .await;
    let held: Vec<Value> = venue.cloud.scans(&venue.event).await;
    assert!(
        held.iter().any(|s| s["scan_id"] == offline_scan.as_str()),
        "the cloud holds the scan made offline ({offline_scan})"
    );

    // Search by name, then a manual check-in with a reason.
    view(&w, "search").await;
    w.type_into("search-input", "jensen").await;
    w.wait("seven Jensens found", || async {
        w.text("search-total").await == "7 found"
    })
    .await;
    w.screenshot("search").await;
    w.click_css(&format!("li[data-ticket='{}'] button.manual", sold[4].0))
        .await;
    w.type_into("manual-reason", "phone battery dead").await;
    let before = w.data("result", "seq").await;
    w.click("manual-confirm").await;
    w.wait("the manual check-in result", || async {
        w.data("result", "seq").await != before
    })
    .await;
    assert_eq!(w.data("result", "verdict").await, "green");
    let (verdict, detail) = scan(&w, &sold[4].1).await;
    assert_eq!(
        (verdict.as_str(), detail.starts_with("Already inside")),
        ("red", true)
    );

    // Exit, then back in: this event's tickets do not allow re-entry.
    view(&w, "settings").await;
    w.click("mode-exit").await;
    w.wait("exit mode", || async {
        w.text("mode-badge").await == "EXIT"
    })
    .await;
    let (verdict, _) = scan(&w, &sold[0].1).await;
    assert_eq!(
        (verdict.as_str(), w.text("result-headline").await.as_str()),
        ("green", "Exit")
    );
    view(&w, "settings").await;
    w.click("mode-entry").await;
    w.wait("entry mode", || async {
        w.text("mode-badge").await == "ENTRY"
    })
    .await;
    let (verdict, detail) = scan(&w, &sold[0].1).await;
    assert_eq!(verdict, "red");
    assert!(
        detail.starts_with("Left at "),
        "re-entry refused in words: {detail}"
    );

    // Counts.
    view(&w, "counts").await;
    w.wait("counts", || async { w.text("count-admitted").await == "5" })
        .await;
    assert_eq!(w.text("count-inside").await, "4", "5 admitted, 1 left");
    assert_eq!(w.text("count-capacity").await, "7");
    w.screenshot("counts").await;

    // A USB scanner's burst while a person is searching goes to the scan,
    // and the search box keeps what the person typed. The person types
    // "jen" at a person's pace and reads the results; the scanner then
    // sends the whole code and Enter in one go (one WebDriver command, so
    // machine-paced however loaded the machine is).
    view(&w, "search").await;
    w.clear("search-input").await;
    w.type_like_a_person("jen", Duration::from_millis(120))
        .await;
    w.wait("the results for jen", || async {
        w.js(
            "return document.getElementById('search-input').value",
            vec![],
        )
        .await
            == "jen"
            && w.text("search-total").await == "7 found"
    })
    .await;
    let before = w.data("result", "seq").await;
    w.keys_to_focus(&format!("{}{ENTER}", sold[5].1)).await;
    let decided = || async { w.js("return JSON.stringify(window.__wedge)", vec![]).await };
    w.wait("the wedge scan's result", || async {
        w.data("result", "seq").await != before
    })
    .await;
    assert_eq!(
        w.data("result", "verdict").await,
        "green",
        "the burst is scanned whole ({}): {}",
        w.text("result-detail").await,
        decided().await
    );
    let left = w
        .js(
            "return document.getElementById('search-input').value",
            vec![],
        )
        .await;
    assert_eq!(left, "jen", "the burst did not land in the search box");
    // A burst the machine delivers in two parts (two WebDriver commands,
    // 150 ms plus a round trip apart, up to ~0.9 s under load: a loaded
    // laptop, a USB hiccup) is still one scan of the whole code. The app
    // joins parts at most WEDGE_BREAK_MS (1.5 s) apart; when this machine
    // stalls longer between the two commands (measured by the app's own
    // key timestamps), the test's premise did not hold and it tries again,
    // at most three times; a pause within the break that is not joined fails.
    const WEDGE_BREAK_MS: i64 = 1500;
    let code = &sold[1].1;
    let half = code.len() / 2;
    let mut stalls = Vec::new();
    loop {
        view(&w, "search").await;
        w.clear("search-input").await;
        let before = w.data("result", "seq").await;
        w.keys_to_focus(&code[..half]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        w.keys_to_focus(&format!("{}{ENTER}", &code[half..])).await;
        w.wait("the split burst's result", || async {
            w.data("result", "seq").await != before
        })
        .await;
        let verdict = w.data("result", "verdict").await;
        let wedge = decided().await;
        let pause = serde_json::from_str::<Value>(wedge.as_str().unwrap_or("{}"))
            .ok()
            .and_then(|v| {
                v["gaps"]
                    .as_array()
                    .map(|g| g.iter().filter_map(Value::as_i64).max())
            })
            .flatten()
            .unwrap_or(0);
        if verdict == "green" {
            break;
        }
        assert!(
            pause > WEDGE_BREAK_MS && stalls.len() < 2,
            "a split burst is scanned whole ({}): {wedge} (earlier stalls: {stalls:?} ms)",
            w.text("result-detail").await,
        );
        eprintln!("the split burst's parts were {pause} ms apart (over the break): again");
        stalls.push(pause);
    }
    // A person typing a long word and Enter in the search box is a search,
    // not a scan.
    view(&w, "search").await;
    w.clear("search-input").await;
    let before = w.data("result", "seq").await;
    w.type_like_a_person(&format!("jensenjensen{ENTER}"), Duration::from_millis(90))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        w.data("result", "seq").await,
        before,
        "typing is not a scan: {}",
        decided().await
    );
    assert_eq!(
        w.js(
            "return document.getElementById('search-input').value",
            vec![]
        )
        .await,
        "jensenjensen"
    );

    // Kiosk: locked, a steward cannot check in by hand or switch modes.
    view(&w, "settings").await;
    w.click("lock").await;
    w.wait("steward mode", || async {
        w.text("role-badge").await.starts_with("STEWARD")
    })
    .await;
    view(&w, "settings").await;
    assert!(
        !w.shown("mode-exit").await,
        "mode switching is hidden from stewards"
    );
    w.type_into("unlock-pin", &format!("1111{ENTER}")).await;
    w.wait("the wrong PIN refused", || async {
        w.text("settings-error").await == "wrong PIN"
    })
    .await;
    w.type_into("unlock-pin", &format!("2468{ENTER}")).await;
    w.wait("supervisor again", || async {
        w.text("role-badge").await == "SUPERVISOR"
    })
    .await;

    w.close().await;
}
