//! QR decoding figures for `docs/benchmarks.md`: success rate per distortion
//! class per decoder, and decode latency p50/p95 at 640x480 and 1280x720 on
//! frames with and without a code. Frame-to-decision latency through the
//! whole pipeline (decode, decide, durable record, actuator) is the engine
//! bench's `frame_pipeline`.
//!
//! Latency is reported twice: wall clock, and the thread's CPU time
//! (`common::thread_cpu`).
//!
//! `cargo bench -p gate-node --bench decode` prints markdown tables and one
//! `BENCH ...` line per figure; `-- --latency-only` skips the success
//! tables. Under `cargo test` (no `--bench` argument) it runs a tiny smoke
//! version so the harness stays compiled and working.

mod common;

use std::time::{Duration, Instant};

use common::{percentile_ms, thread_cpu};
use gate_node::corpus::{self, Distortion};
use gate_node::decode::{QrDecoder, all_decoders};
use image::GrayImage;

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
            let (start, cpu_start) = (Instant::now(), thread_cpu());
            f(frame);
            times.cpu.push(thread_cpu().saturating_sub(cpu_start));
            times.wall.push(start.elapsed());
        }
    }
    times.wall.sort();
    times.cpu.sort();
    times
}

fn report(decoder: &str, w: u32, h: u32, content: &str, times: &Times) {
    let [p50, p95, max] = [0.5, 0.95, 1.0].map(|p| percentile_ms(&times.wall, p));
    let [c50, c95] = [0.5, 0.95].map(|p| percentile_ms(&times.cpu, p));
    println!(
        "| {decoder} | {w}x{h} | {content} | {p50:.2} | {p95:.2} | {max:.2} | {c50:.2} | {c95:.2} |"
    );
    println!(
        "BENCH decode_latency decoder={decoder} size={w}x{h} content={} n={} p50_ms={p50:.3} p95_ms={p95:.3} max_ms={max:.3} cpu_p50_ms={c50:.3} cpu_p95_ms={c95:.3}",
        content.replace(' ', "_"),
        times.wall.len()
    );
}
