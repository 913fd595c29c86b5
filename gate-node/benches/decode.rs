//! QR decoding figures for `docs/benchmarks.md`: success rate per distortion
//! class per decoder, decode latency p50/p95 at 640x480 and 1280x720 on
//! frames with and without a code, and frame-to-decision latency (decode,
//! parse, verify, decide; no store) for the default decoder.
//!
//! Latency is reported twice: wall clock, and the thread's CPU time. The
//! build box is shared (two cores, often several compilers running), so
//! wall time includes waiting for a core; CPU time is what the work costs
//! when it has one, as on a gate that runs nothing else.
//!
//! `cargo bench -p gate-node --bench decode` prints markdown tables and one
//! `BENCH ...` line per figure; `-- --latency-only` skips the success
//! tables. Under `cargo test` (no `--bench` argument) it runs a tiny smoke
//! version so the harness stays compiled and working.

use std::time::{Duration, Instant};

use gate_node::corpus::{self, Distortion, Rng};
use gate_node::decode::{QrDecoder, all_decoders, default_decoder};
use image::GrayImage;
use sync_protocol::{
    CheckinLog, Claims, Credential, EventId, GatePolicy, KeyRing, ManifestView, SecretKey,
    TicketId, TimeReading, decide,
};

struct Plan {
    per_class: usize,
    latency_frames: usize,
    rounds: usize,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let plan = if bench {
        Plan {
            per_class: 40,
            latency_frames: 20,
            rounds: 5,
        }
    } else {
        Plan {
            per_class: 1,
            latency_frames: 1,
            rounds: 1,
        }
    };
    let decoders = all_decoders();
    if !std::env::args().any(|a| a == "--latency-only") {
        success_rates(&decoders, &plan, 640, 480);
        if bench {
            success_rates(&decoders, &plan, 1280, 720);
        }
    }
    println!("\n### Decode latency (ms; wall clock, then thread CPU time)\n");
    println!(
        "| decoder | frame | content | p50 | p95 | max | cpu p50 | cpu p95 |\n|---|---|---|---|---|---|---|---|"
    );
    for (w, h) in [(640, 480), (1280, 720)] {
        let hits: Vec<GrayImage> = (0..plan.latency_frames)
            .map(|i| {
                let d = Distortion::ALL[i % Distortion::ALL.len()];
                corpus::sample(d, 9000 + i as u64, w, h).image
            })
            .collect();
        let misses: Vec<GrayImage> = (0..plan.latency_frames)
            .map(|i| corpus::empty_frame(7000 + i as u64, w, h))
            .collect();
        for decoder in &decoders {
            for (content, frames) in [("code", &hits), ("no code", &misses)] {
                let times = time_each(frames, plan.rounds, |f| {
                    std::hint::black_box(decoder.decode(f));
                });
                report(decoder.name(), w, h, content, &times);
            }
        }
    }
    frame_to_decision(&plan);
}

fn success_rates(decoders: &[Box<dyn QrDecoder>], plan: &Plan, w: u32, h: u32) {
    let samples = corpus::corpus(2026, plan.per_class, w, h);
    println!(
        "\n### Decode success per distortion class, {w}x{h}, {} frames per class\n",
        plan.per_class
    );
    let names: Vec<_> = decoders.iter().map(|d| d.name()).collect();
    println!(
        "| class | {} |\n|---|{}",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    let mut totals = vec![0usize; decoders.len()];
    for class in Distortion::ALL {
        let of_class: Vec<_> = samples.iter().filter(|s| s.distortion == class).collect();
        let mut row = Vec::new();
        for (i, decoder) in decoders.iter().enumerate() {
            let ok = of_class
                .iter()
                .filter(|s| decoder.decode(&s.image).contains(&s.expected))
                .count();
            totals[i] += ok;
            row.push(format!("{ok}/{}", of_class.len()));
            println!(
                "BENCH decode_success size={w}x{h} decoder={} class={} ok={ok} n={}",
                decoder.name(),
                class.name(),
                of_class.len()
            );
        }
        println!("| {} | {} |", class.name(), row.join(" | "));
    }
    let all: Vec<_> = totals
        .iter()
        .map(|t| {
            format!(
                "**{t}/{}** ({:.0}%)",
                samples.len(),
                100.0 * *t as f64 / samples.len() as f64
            )
        })
        .collect();
    println!("| all | {} |", all.join(" | "));
}

/// Wall-clock and thread-CPU durations of `f` on every frame, `rounds`
/// times, each list sorted.
struct Times {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn time_each(frames: &[GrayImage], rounds: usize, mut f: impl FnMut(&GrayImage)) -> Times {
    if let Some(first) = frames.first() {
        f(first); // warm caches and lazy statics
    }
    let mut times = Times {
        wall: Vec::with_capacity(frames.len() * rounds),
        cpu: Vec::with_capacity(frames.len() * rounds),
    };
    for _ in 0..rounds {
        for frame in frames {
            let (start, cpu_start) = (Instant::now(), cpu_now());
            f(frame);
            times.cpu.push(cpu_now().saturating_sub(cpu_start));
            times.wall.push(start.elapsed());
        }
    }
    times.wall.sort();
    times.cpu.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(decoder: &str, w: u32, h: u32, content: &str, times: &Times) {
    let [p50, p95, max] = [0.5, 0.95, 1.0].map(|p| percentile(&times.wall, p));
    let [c50, c95] = [0.5, 0.95].map(|p| percentile(&times.cpu, p));
    println!(
        "| {decoder} | {w}x{h} | {content} | {p50:.2} | {p95:.2} | {max:.2} | {c50:.2} | {c95:.2} |"
    );
    println!(
        "BENCH decode_latency decoder={decoder} size={w}x{h} content={} n={} p50_ms={p50:.3} p95_ms={p95:.3} max_ms={max:.3} cpu_p50_ms={c50:.3} cpu_p95_ms={c95:.3}",
        content.replace(' ', "_"),
        times.wall.len()
    );
}

struct Unlisted;

impl ManifestView for Unlisted {
    fn entry(&self, _: &TicketId) -> Option<sync_protocol::ManifestEntry> {
        None
    }
}

/// Decode, then the full offline decision (parse, key lookup, ed25519
/// verify, manifest and check-in views in memory) on frames of every class
/// that the decoder reads; the store's durable write is not included.
fn frame_to_decision(plan: &Plan) {
    let event_id = EventId::from_bytes([7; 16]);
    let root = SecretKey::from_seed([1; 32]);
    let event_key = SecretKey::from_seed([2; 32]);
    let mut keys = KeyRing::new(root.public());
    keys.insert(root.certify(event_id, &event_key.public(), 0, u64::MAX))
        .expect("a root-signed certificate is accepted");
    let checkins = CheckinLog::new(event_id);
    let policy = GatePolicy::entry(event_id);
    let now = TimeReading {
        unix_secs: 1_800_000_000,
        trusted: true,
    };
    let decoder = default_decoder();
    println!("\n### Frame to decision, {} (ms)\n", decoder.name());
    println!("| frame | p50 | p95 | max | cpu p50 | cpu p95 |\n|---|---|---|---|---|---|");
    let mut rng = Rng::new(5);
    for (w, h) in [(640, 480), (1280, 720)] {
        let frames: Vec<GrayImage> = (0..plan.latency_frames)
            .filter_map(|i| {
                let mut ticket = [0u8; 16];
                rng.fill(&mut ticket);
                let claims = Claims {
                    event_id,
                    ticket_id: TicketId::from_bytes(ticket),
                    generation: 0,
                    tier: 1,
                    zones: 1,
                    window: None,
                    holder_key: None,
                };
                let text = Credential::issue(&event_key, claims).ok()?.to_qr_text();
                let d = Distortion::ALL[i % Distortion::ALL.len()];
                corpus::render(d, i as u64, w, h, &text)
            })
            .filter(|f| !decoder.decode(f).is_empty())
            .collect();
        let mut admitted = 0;
        let times = time_each(&frames, plan.rounds, |f| {
            for text in decoder.decode(f) {
                let d = decide(&text, &keys, &Unlisted, &checkins, &policy, now);
                admitted += usize::from(d.outcome.is_admit());
            }
        });
        assert!(admitted > 0, "valid credentials on camera must be admitted");
        let [p50, p95, max] = [0.5, 0.95, 1.0].map(|p| percentile(&times.wall, p));
        let [c50, c95] = [0.5, 0.95].map(|p| percentile(&times.cpu, p));
        println!("| {w}x{h} | {p50:.2} | {p95:.2} | {max:.2} | {c50:.2} | {c95:.2} |");
        println!(
            "BENCH frame_to_decision decoder={} size={w}x{h} n={} p50_ms={p50:.3} p95_ms={p95:.3} max_ms={max:.3} cpu_p50_ms={c50:.3} cpu_p95_ms={c95:.3}",
            decoder.name(),
            times.wall.len()
        );
    }
}
