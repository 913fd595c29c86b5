//! `gate-node run` with real scan sources, as a process: a directory of
//! generated camera frames, scanner lines through a stdin pipe, and the
//! hardware checks at start (camera, GPIO).

use crate::harness::{Node, append_config, cli, daemon_command, provision, wait_until};
use gate_node::corpus::{self, Distortion};
use gate_node::fixture::EventFixture;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// A debounce window no test run outlasts, so "one scan" does not depend on
/// how fast this machine decodes.
const LONG_WINDOW: (&str, &str) = ("GATE_DEBOUNCE_MS", "600000");

fn counters(status: &serde_json::Value) -> [u64; 6] {
    let c = &status["counters"];
    [
        "scans",
        "admitted",
        "rejected",
        "malformed",
        "repeats",
        "source_errors",
    ]
    .map(|k| c[k].as_u64().unwrap_or(u64::MAX))
}

/// This node's own records, oldest first, as (ticket, decision, reason).
async fn own_records(node: &Node) -> Vec<(String, String, String)> {
    let me = node.status().await["node_id"].clone();
    let mut rows: Vec<_> = node
        .recent()
        .await
        .into_iter()
        .filter(|r| r["node_id"] == me)
        .collect();
    rows.sort_by_key(|r| r["seq"].as_u64());
    rows.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (s("ticket_id"), s("decision"), s("reason"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_camera_frames_admits_rejects_and_debounces() {
    let f = EventFixture::new(71, 10);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let (t1, t2, t3) = (
        f.credential(f.ticket(1)),
        f.credential(f.ticket(2)),
        f.credential(f.ticket(3)),
    );
    let forged = f.credential_with(&sync_protocol::SecretKey::from_seed([9; 32]), f.ticket(4));
    let out = cli(dir.path(), &["scan", "--text", &t3]);
    assert!(out.status.success(), "ticket 3 is inside before: {out:?}");

    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let shown = [
        (Some(&t1), Distortion::Clean),
        (Some(&t1), Distortion::Rotation),
        (Some(&t1), Distortion::Glare),
        (None, Distortion::Clean),
        (Some(&forged), Distortion::Clean),
        (Some(&forged), Distortion::LowContrast),
        (Some(&t2), Distortion::Clean),
        (Some(&t2), Distortion::Moire),
        (Some(&t3), Distortion::Clean),
    ];
    for (n, (text, class)) in shown.iter().enumerate() {
        let image = match (text, class) {
            (Some(text), Distortion::Clean) => corpus::code_frame(text, 640, 480).unwrap(),
            (Some(text), _) => corpus::render(*class, n as u64, 640, 480, text).unwrap(),
            (None, _) => corpus::empty_frame(n as u64, 640, 480),
        };
        image.save(frames.join(format!("f{n}.png"))).unwrap();
    }
    std::fs::write(frames.join("f4x.png"), b"a frame cut off mid-write").unwrap();
    append_config(
        dir.path(),
        &format!(
            "[source]\nkind = \"images\"\npath = {:?}\n",
            frames.display().to_string()
        ),
    );

    let (node, _) = Node::start_with(dir.path(), &[LONG_WINDOW], Stdio::null());
    wait_until(Duration::from_secs(60), "every frame replayed", || async {
        node.status().await["counters"]["frames"] == shown.len()
    })
    .await;
    let status = node.status().await;
    assert_eq!(
        counters(&status),
        [4, 2, 2, 0, 4, 1],
        "4 scans (t1, forged, t2, t3), 4 repeat reads folded, the broken frame skipped: {status}"
    );
    let id = |i: u32| f.ticket(i).to_string();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        own_records(&node).await,
        [
            (id(3), s("admit"), s("")),
            (id(1), s("admit"), s("")),
            (id(2), s("admit"), s("")),
            (id(3), s("reject"), s("already_inside")),
        ],
        "one durable record per genuine ticket shown, in the order shown (the forgery is not believed, so not recorded)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanner_lines_on_stdin_are_scanned_and_a_double_read_is_one_scan() {
    let f = EventFixture::new(72, 10);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    append_config(dir.path(), "[source]\nkind = \"stdin\"\n");
    let (node, pipe) = Node::start_with(dir.path(), &[LONG_WINDOW], Stdio::piped());
    let mut pipe = pipe.expect("a stdin pipe");
    let (t1, t2) = (f.credential(f.ticket(1)), f.credential(f.ticket(2)));
    let overlong = "A".repeat(5000);
    write!(pipe, "{t1}\r\n{t1}\r\nhello\n\n{overlong}\n{t2}\n").unwrap();
    pipe.flush().unwrap();
    // t2 is the last line: once it is admitted, every line before it is done.
    wait_until(Duration::from_secs(20), "the lines scanned", || async {
        counters(&node.status().await)[1] == 2
    })
    .await;
    assert_eq!(
        counters(&node.status().await),
        [3, 2, 0, 1, 1, 1],
        "t1 once (its second read folded), garbage counted, the overlong line skipped, t2"
    );
    let tickets: Vec<String> = own_records(&node).await.into_iter().map(|r| r.0).collect();
    assert_eq!(tickets, [f.ticket(1).to_string(), f.ticket(2).to_string()]);

    drop(pipe);
    let status = node.status().await;
    assert_eq!(
        status["records"], 2,
        "stdin closing ends the source, not the gate: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_folder_scans_frames_dropped_into_it_while_the_gate_runs() {
    let f = EventFixture::new(75, 10);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let frames = dir.path().join("inbox");
    std::fs::create_dir(&frames).unwrap();
    append_config(
        dir.path(),
        &format!(
            "[source]\nkind = \"images\"\npath = {:?}\nwatch = true\nwatch_poll_ms = 50\n",
            frames.display().to_string()
        ),
    );
    let (node, _) = Node::start_with(dir.path(), &[LONG_WINDOW], Stdio::null());
    // The folder is empty at start: without watching, the source would end
    // here and nothing dropped in later would be scanned.
    for (i, n) in [1u32, 2].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let frame = corpus::code_frame(&f.credential(f.ticket(n)), 640, 480).unwrap();
        let part = frames.join(format!("shot{i}.png.part"));
        frame
            .save_with_format(&part, image::ImageFormat::Png)
            .unwrap();
        std::fs::rename(&part, frames.join(format!("shot{i}.png"))).unwrap();
        wait_until(Duration::from_secs(30), "the new frame scanned", || async {
            counters(&node.status().await)[1] == i as u64 + 1
        })
        .await;
    }
    let tickets: Vec<String> = own_records(&node).await.into_iter().map(|r| r.0).collect();
    assert_eq!(tickets, [f.ticket(1).to_string(), f.ticket(2).to_string()]);
    assert_eq!(
        counters(&node.status().await)[5],
        0,
        "no frame read half-way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_source_reads_one_writer_after_another() {
    let f = EventFixture::new(76, 10);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let fifo = dir.path().join("scans");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(made.success());
    append_config(
        dir.path(),
        &format!(
            "[source]\nkind = \"fifo\"\npath = {:?}\n",
            fifo.display().to_string()
        ),
    );
    let (node, _) = Node::start_with(dir.path(), &[LONG_WINDOW], Stdio::null());
    for n in [1u32, 2, 3] {
        // Each writer is its own process that writes one line and exits, as
        // `echo "$CREDENTIAL" > scans` from a script would.
        let wrote = std::process::Command::new("sh")
            .args(["-c", "printf '%s\\n' \"$1\" > \"$2\"", "sh"])
            .arg(f.credential(f.ticket(n)))
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(wrote.success());
        wait_until(
            Duration::from_secs(20),
            "the writer's line scanned",
            || async { counters(&node.status().await)[1] == u64::from(n) },
        )
        .await;
    }
    let status = node.status().await;
    assert_eq!(status["records"], 3, "{status}");
}

/// Runs `gate-node run` expecting it to exit on its own within 30 s.
fn run_to_exit(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut child = daemon_command(dir, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("gate-node run should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_gate_that_requires_gpio_refuses_to_start_without_it_and_others_run_without() {
    if Path::new("/dev/gpiomem").exists() {
        return; // a real Pi: the hardware is there
    }
    let f = EventFixture::new(73, 1);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    append_config(
        dir.path(),
        "[gpio]\nrelay_pin = 17\ngreen_pin = 27\nred_pin = 22\n",
    );
    let out = run_to_exit(dir.path(), &[("GATE_REQUIRE_GPIO", "true")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("require_gpio") && stderr.contains("no GPIO hardware"),
        "the message says what is missing and which key demands it: {stderr}"
    );
    let (node, _) = Node::start_with(dir.path(), &[], Stdio::null());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(node.status());
    assert_eq!(
        status["records"], 0,
        "without require_gpio the gate runs, decisions only logged"
    );
}

#[test]
fn a_missing_camera_or_frame_directory_is_a_clear_error_at_start() {
    let f = EventFixture::new(74, 1);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    for (env, says, key) in [
        (
            [
                ("GATE_SOURCE__KIND", "camera"),
                ("GATE_SOURCE__CAMERA__INDEX", "63"),
            ],
            "/dev/video63",
            "set source.camera.index",
        ),
        (
            [
                ("GATE_SOURCE__KIND", "images"),
                ("GATE_SOURCE__PATH", "/no/such/frames"),
            ],
            "/no/such/frames",
            "set source.path",
        ),
        (
            [
                ("GATE_SOURCE__KIND", "serial"),
                ("GATE_SOURCE__DEVICE", "/dev/no-such-scanner"),
            ],
            "/dev/no-such-scanner",
            "set source.device",
        ),
    ] {
        let out = run_to_exit(dir.path(), &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("an error line: {stderr}"));
        assert!(line.starts_with("error: scan source"), "{line}");
        // The source and its cause are said once: no device named twice, no
        // part of the chain repeated (it once read "camera /dev/video63: ...
        // camera 63 (/dev/video63): Could not open device 63: ...").
        assert_eq!(line.matches(says).count(), 1, "{says} once: {line}");
        let parts: Vec<&str> = line.split(": ").collect();
        let mut unique = parts.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), parts.len(), "a repeated part: {line}");
        // And it ends with the one key to change, named once.
        assert_eq!(line.matches(key).count(), 1, "names {key}: {line}");
        assert!(
            line.rfind(key) > line.rfind(says),
            "the fix comes after the cause: {line}"
        );
    }
}
