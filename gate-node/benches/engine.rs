//! Gate node engine benchmarks, printing one machine-readable line each:
//!
//! - `frame_pipeline`: camera frames with a ticket (640x480 and 1280x720)
//!   through the whole pipeline: default decoder, decision, durable record
//!   (`synchronous=FULL`), recording actuator; frame-to-signal latency (wall
//!   and thread CPU) and scans per second, target p95 at most 15 ms;
//! - `scan_pipeline`: scans per second from text (decide, durable append),
//!   and per-scan latency;
//! - `manifest_import`: applying a signed 100k-ticket manifest (verify,
//!   inflate, one transaction), target at most 2 s;
//! - `propagation`: gate-to-gate time on loopback between two real
//!   `gate-node run` processes, from A's answer to the record being in B's
//!   store, target p99 at most 1 s;
//! - `festival`: a 1,000,000-ticket event (issue 14 part 3): the signed
//!   full manifest's size and build + sign time, `gate-node import` of it
//!   in a real process (verify, inflate, apply; target at most 5 s) and
//!   that process's peak memory, 500,000 peer scans applied to the log, the
//!   decision time with both (target at most 60 µs), a 10,000-change
//!   delta's size and apply time, sustained durable scans per second, and
//!   the memory of `gate-node run` serving that store.
//!
//! Run: `cargo bench -p gate-node --bench engine` (optionally a filter:
//! `frame`, `scan`, `manifest`, `propagation`). Without `--bench` (what
//! `cargo bench` passes; `cargo test --benches` and scripts/run-doc-commands
//! do not) each benchmark runs once at a small size: a check that it works,
//! not a figure.

mod common;

use common::{percentile_ms, thread_cpu};
use gate_node::actuator::RecordingActuator;
use gate_node::corpus::{self, Distortion};
use gate_node::decode::default_decoder;
use gate_node::engine::Engine;
use gate_node::fixture::EventFixture;
use gate_node::provision::Bundle;
use gate_node::store::Store;
use gate_node::time::{SystemClock, TimeSource};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sync_protocol::checkin::Direction;
use sync_protocol::{Hlc, Outcome, ScanId, ScanRecord};

fn provisioned(f: &EventFixture, n: u8, with_manifest: bool) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open_in(dir.path()).expect("store"));
    let mut bundle = f.bundle(n, "Bench");
    if !with_manifest {
        bundle.manifest = None;
    }
    gate_node::provision::import(&store, &bundle, [1; 32]).expect("provision");
    (dir, store)
}

fn trusted_time() -> Arc<TimeSource> {
    Arc::new(TimeSource::new(
        Arc::new(SystemClock::new()),
        true,
        Hlc::default(),
    ))
}

/// Distortion classes the default decoder reads (nearly) every frame of
/// (`docs/benchmarks.md`), so each frame carries a decision to time.
const READABLE: [Distortion; 6] = [
    Distortion::Clean,
    Distortion::Glare,
    Distortion::LowContrast,
    Distortion::SmallModules,
    Distortion::Moire,
    Distortion::Rotation,
];

/// Small sizes: the binary was run without `--bench` (a check, not a figure).
fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// `full` when benchmarking, `small` in the quick check.
fn sized(full: u32, small: u32) -> u32 {
    if quick() { small } else { full }
}

fn frame_pipeline() {
    let per_size = sized(300, 3);
    let f = EventFixture::new(93, sized(10_000, 100));
    for (size, (w, h)) in [(640, 480), (1280, 720)].into_iter().enumerate() {
        let first = size as u32 * per_size;
        let frames: Vec<_> = (first..first + per_size)
            .map(|i| {
                let class = READABLE[i as usize % READABLE.len()];
                let text = f.credential(f.ticket(i));
                corpus::render(class, u64::from(i), w, h, &text).expect("a credential fits")
            })
            .collect();
        let (_dir, store) = provisioned(&f, 1, true);
        let signalled = Arc::new(Mutex::new(None));
        let at = signalled.clone();
        let recorder = RecordingActuator::new().with_probe(move |_| {
            *at.lock().expect("probe") = Some(Instant::now());
        });
        let engine = Engine::new(
            store,
            trusted_time(),
            Some(Box::new(recorder.clone())),
            gate_node::debounce::DEFAULT_WINDOW_MS,
            "",
        )
        .expect("engine");
        let decoder = default_decoder();
        decoder.decode(&corpus::empty_frame(1, w, h)); // warm lazy statics
        let (mut decode, mut wall, mut cpu, mut missed) = (vec![], vec![], vec![], 0);
        let start = Instant::now();
        for frame in &frames {
            let (t0, c0) = (Instant::now(), thread_cpu());
            // What `Engine::scan_frame` does, split to time the decode.
            let texts = decoder.decode(frame);
            let decoded = t0.elapsed();
            let Some(text) = texts.first() else {
                missed += 1;
                continue;
            };
            let report = engine.scan_text(text).expect("scan");
            let c1 = thread_cpu();
            let signal = signalled.lock().expect("probe").take().expect("signalled");
            assert!(report.admitted() && report.scan_id.is_some());
            decode.push(decoded);
            wall.push(signal - t0);
            cpu.push(c1.saturating_sub(c0));
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(recorder.signals().len(), wall.len(), "one signal per scan");
        for v in [&mut decode, &mut wall, &mut cpu] {
            v.sort();
        }
        let p = |v: &[Duration], q: f64| percentile_ms(v, q);
        println!(
            "bench=frame_pipeline size={w}x{h} frames={per_size} scans={} missed={missed} secs={secs:.3} scans_per_sec={:.0} \
             decode_p50_ms={:.2} decode_p95_ms={:.2} p50_ms={:.2} p95_ms={:.2} max_ms={:.2} cpu_p50_ms={:.2} cpu_p95_ms={:.2} target_p95_ms=15",
            wall.len(),
            wall.len() as f64 / secs,
            p(&decode, 0.5),
            p(&decode, 0.95),
            p(&wall, 0.5),
            p(&wall, 0.95),
            p(&wall, 1.0),
            p(&cpu, 0.5),
            p(&cpu, 0.95),
        );
    }
}

fn scan_pipeline() {
    let n = sized(2_000, 50);
    let f = EventFixture::new(90, sized(10_000, 100));
    let (_dir, store) = provisioned(&f, 1, true);
    let engine = Engine::new(store, trusted_time(), None, 0, "").expect("engine");
    let texts: Vec<String> = (0..n).map(|i| f.credential(f.ticket(i))).collect();
    let mut lat = Vec::with_capacity(texts.len());
    let start = Instant::now();
    for t in &texts {
        let s = Instant::now();
        let r = engine.scan_text(t).expect("scan");
        assert!(r.admitted());
        lat.push(s.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "bench=scan_pipeline scans={n} secs={secs:.3} scans_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        f64::from(n) / secs,
        percentile_ms(&lat, 0.5),
        percentile_ms(&lat, 0.99),
        percentile_ms(&lat, 1.0)
    );
}

fn manifest_import() {
    let tickets = sized(100_000, 1_000);
    let f = EventFixture::new(91, tickets);
    let bytes = f.manifest_bytes();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let (_dir, store) = provisioned(&f, 1, false);
        let s = Instant::now();
        let applied = store.apply_manifest(&bytes).expect("import");
        runs.push(s.elapsed().as_secs_f64());
        assert_eq!(applied.entries, tickets as usize);
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "bench=manifest_import tickets={tickets} bytes={} runs=3 min_secs={:.3} median_secs={:.3} max_secs={:.3} target_secs=2",
        bytes.len(),
        runs[0],
        runs[1],
        runs[2]
    );
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A gate's directory: a config listening on `port` with `peers`, and a
/// store provisioned from `bundle` through the real binary.
struct GateDir {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    port: u16,
}

impl GateDir {
    fn provisioned(bundle: &Bundle, port: u16, peers: &[u16]) -> GateDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("gate.toml");
        let peers: Vec<String> = peers
            .iter()
            .map(|p| format!("\"http://127.0.0.1:{p}\""))
            .collect();
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\npeers = [{}]\n\
                 mdns = false\nscan_endpoint = true\ndebounce_ms = 0\ntrust_system_clock = true\n",
                dir.path().join("data").display().to_string(),
                peers.join(", ")
            ),
        )
        .expect("config");
        let bundle_path = dir.path().join("bundle.json");
        std::fs::write(&bundle_path, serde_json::to_vec(bundle).expect("json")).expect("bundle");
        let g = GateDir { dir, config, port };
        let ok = g
            .cli(&[
                "provision",
                "--bundle",
                bundle_path.to_str().expect("utf-8"),
            ])
            .stdout(Stdio::null())
            .status()
            .expect("provision");
        assert!(ok.success());
        g
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// `gate-node --config <this gate's config> <args>`.
    fn cli(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gate-node"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("GATE_LOG", "error");
        c
    }

    /// `gate-node run`, once it prints its listening line.
    fn run(&self) -> Proc {
        let mut child = self
            .cli(&["run"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        Proc(child)
    }
}

fn start_node(f: &EventFixture, n: u8, port: u16, peer: u16) -> (tempfile::TempDir, Proc) {
    let gate = GateDir::provisioned(&f.bundle(n, "Bench"), port, &[peer]);
    let proc = gate.run();
    (gate.dir, proc)
}

/// `POST /scan` at the daemon on `port`; its JSON report.
fn post_scan(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    port: u16,
    text: &str,
) -> serde_json::Value {
    rt.block_on(async {
        http.post(format!("http://127.0.0.1:{port}/scan"))
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .expect("POST /scan")
            .json()
            .await
            .expect("json")
    })
}

/// A current-thread runtime and an HTTP client for the benches' requests.
fn http_client() -> (tokio::runtime::Runtime, reqwest::Client) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    (rt, http)
}

fn propagation() {
    let samples = sized(300, 10);
    let f = EventFixture::new(92, samples + 10);
    let (pa, pb) = (free_port(), free_port());
    let (_da, _a) = start_node(&f, 1, pa, pb);
    let (db, _b) = start_node(&f, 2, pb, pa);
    let b_store = Store::open_in(&db.path().join("data")).expect("B's store");
    let (rt, http) = http_client();
    let mut lat = Vec::new();
    for i in 0..samples {
        let v = post_scan(&rt, &http, pa, &f.credential(f.ticket(i)));
        let acked = Instant::now();
        let id: ScanId = v["scan_id"]
            .as_str()
            .expect("scan id")
            .parse()
            .expect("scan id");
        loop {
            if b_store.record(&id).expect("read B").is_some() {
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(10),
                "propagation stalled"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        lat.push(acked.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    lat.sort();
    println!(
        "bench=propagation samples={samples} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2} target_p99_ms=1000",
        percentile_ms(&lat, 0.5),
        percentile_ms(&lat, 0.95),
        percentile_ms(&lat, 0.99),
        percentile_ms(&lat, 1.0)
    );
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("frame_pipeline") {
        frame_pipeline();
    }
    if wants("scan_pipeline") {
        scan_pipeline();
    }
    if wants("manifest_import") {
        manifest_import();
    }
    if wants("propagation") {
        propagation();
    }
    if wants("festival") {
        festival();
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of process `pid`, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Runs `cmd` to the end, sampling its peak memory every 2 ms; returns
/// the wall time and the last peak seen (KiB).
fn run_measured(cmd: &mut Command) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).spawn().expect("spawn");
    let mut peak = 0;
    loop {
        if let Some((hwm, _)) = memory_kib(child.id()) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{cmd:?} failed");
            return (start.elapsed(), peak);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn festival() {
    let tickets = sized(1_000_000, 2_000);
    let scans = sized(500_000, 1_000);
    let changes = sized(10_000, 100);
    let made = Instant::now();
    let mut f = EventFixture::new(95, tickets);
    let fixture_secs = made.elapsed().as_secs_f64();

    // What the cloud does for a full manifest once it has the rows: encode,
    // DEFLATE, sign.
    let s = Instant::now();
    let bytes = f.manifest_bytes();
    let sign_secs = s.elapsed().as_secs_f64();

    // A real gate process imports it: the file as it arrives from the cloud.
    let mut bundle = f.bundle(1, "Festival");
    bundle.manifest = None;
    let gate = GateDir::provisioned(&bundle, free_port(), &[]);
    let manifest_path = gate.dir.path().join("manifest.bin");
    std::fs::write(&manifest_path, &bytes).expect("manifest file");
    let (import, import_peak_kib) = run_measured(&mut gate.cli(&[
        "import",
        "--manifest",
        manifest_path.to_str().expect("utf-8"),
    ]));

    // 500k scans from the other gates, as peer sync delivers them (signed,
    // verified on apply), in batches of 5,000.
    let data = gate.data();
    let store = Store::open_in(&data).expect("store");
    let s = Instant::now();
    let base_ms = 1_750_000_000_000u64;
    let per_device = scans.div_ceil(15);
    let mut batch = Vec::with_capacity(5_000);
    for i in 0..scans {
        let device = 2 + (i / per_device) as u8;
        let seq = u64::from(i % per_device) + 1;
        let mut r = ScanRecord {
            id: ScanId {
                node: f.node_id(device),
                seq,
            },
            event_id: f.event_id,
            ticket_id: f.ticket(i),
            generation: 0,
            direction: Direction::Entry,
            hlc: Hlc::new(base_ms + u64::from(i), 0),
            zone: None,
            outcome: Outcome::Admit,
            gate: format!("Gate {device}"),
            operator: String::new(),
            signature: Default::default(),
        };
        r.sign(&f.device_key(device));
        batch.push(r);
        if batch.len() == 5_000 || i + 1 == scans {
            let report = store
                .apply_records(&batch, base_ms + u64::from(scans), 0)
                .expect("apply peer scans");
            assert_eq!(report.new, batch.len(), "every peer scan applied");
            batch.clear();
        }
    }
    let log_secs = s.elapsed().as_secs_f64();

    // Decisions with 1M tickets and 500k scans: the tickets already inside
    // (rejected) and the ones not yet in (admitted), without recording.
    let time = trusted_time();
    let mut decide = Vec::new();
    // `GATEHOUSE_BENCH_DECIDES` stretches this phase for a profiler
    // (`perf record -p` once the line below is printed).
    let decides: u32 = std::env::var("GATEHOUSE_BENCH_DECIDES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    eprintln!("festival: timing {decides} decisions");
    for k in 0..decides {
        let i = if k % 2 == 0 {
            k * 97 % scans
        } else {
            scans + k * 89 % (tickets - scans)
        };
        let text = f.credential(f.ticket(i));
        let s = Instant::now();
        let r = gate_node::engine::dry_run(&store, &time, &text).expect("decide");
        decide.push(s.elapsed());
        assert_eq!(r.admitted(), i >= scans, "ticket {i}");
    }
    decide.sort();

    // A delta of 10,000 changes (refunds and renames) from the cloud.
    let changed: Vec<_> = (0..changes)
        .map(|k| {
            let mut e = f.entry(tickets - 1 - k);
            e.display_name = format!("Renamed {k}");
            e
        })
        .collect();
    let delta = f.delta(changed);
    let s = Instant::now();
    let applied = store.apply_delta(&delta).expect("delta");
    let delta_secs = s.elapsed().as_secs_f64();
    assert_eq!(applied.entries, changes as usize);

    // Sustained scans through the engine (decide, durable append with
    // fsync, actuator, push queue): fresh tickets one after another.
    let sustained = sized(20_000, 200);
    let engine = Engine::new(Arc::new(store), time, None, 0, "").expect("engine");
    let mut lat = Vec::with_capacity(sustained as usize);
    let s = Instant::now();
    for k in 0..sustained {
        let text = f.credential(f.ticket(scans + k));
        let t = Instant::now();
        assert!(engine.scan_text(&text).expect("scan").admitted());
        lat.push(t.elapsed());
    }
    let sustained_secs = s.elapsed().as_secs_f64();
    lat.sort();
    drop(engine);

    // The daemon serving that store: memory after a few scans.
    let daemon = gate.run();
    let (rt, http) = http_client();
    for k in 0..100 {
        let v = post_scan(
            &rt,
            &http,
            gate.port,
            &f.credential(f.ticket(scans + sustained + k)),
        );
        assert_eq!(v["decision"], "admit", "{v}");
    }
    let (daemon_hwm, daemon_rss) = memory_kib(daemon.0.id()).expect("daemon memory");
    drop(daemon);
    let db_bytes: u64 = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "bench=festival tickets={tickets} fixture_secs={fixture_secs:.2} manifest_bytes={} sign_secs={sign_secs:.3} \
         import_secs={:.3} import_peak_mib={:.0} target_import_secs=5 peer_scans={scans} log_apply_secs={log_secs:.2} \
         decide_p50_us={:.1} decide_p99_us={:.1} target_decide_us=60 delta_changes={changes} delta_bytes={} \
         delta_apply_secs={delta_secs:.3} sustained_scans={sustained} scans_per_sec={:.0} scan_p50_ms={:.2} \
         scan_p99_ms={:.2} scan_max_ms={:.2} daemon_rss_mib={:.0} daemon_peak_mib={:.0} store_mib={:.0}",
        bytes.len(),
        import.as_secs_f64(),
        import_peak_kib as f64 / 1024.0,
        percentile_ms(&decide, 0.5) * 1000.0,
        percentile_ms(&decide, 0.99) * 1000.0,
        delta.len(),
        f64::from(sustained) / sustained_secs,
        percentile_ms(&lat, 0.5),
        percentile_ms(&lat, 0.99),
        percentile_ms(&lat, 1.0),
        daemon_rss as f64 / 1024.0,
        daemon_hwm as f64 / 1024.0,
        db_bytes as f64 / 1048576.0,
    );
}
