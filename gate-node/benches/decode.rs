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
//! tables; `-- --sequences-only` runs only the time-to-admit table of the
//! sequence corpus. Under `cargo test` (no `--bench` argument) it runs a tiny smoke
//! version so the harness stays compiled and working.

mod common;

use std::time::{Duration, Instant};

use common::{percentile_ms, thread_cpu};
use gate_node::corpus::{self, Distortion, Presentation, Sequence};
use gate_node::decode::{QrDecoder, all_decoders};
use image::GrayImage;

struct Plan {
    bench: bool,
    per_class: usize,
    per_kind: usize,
    latency_frames: usize,
    rounds: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let bench = flag("--bench");
    let mut plan = if bench {
        Plan {
            bench,
            per_class: 40,
            per_kind: 20,
            latency_frames: 20,
            rounds: 5,
        }
    } else {
        Plan {
            bench,
            per_class: 1,
            per_kind: 1,
            latency_frames: 1,
            rounds: 1,
        }
    };
    // `--per-class N`: fewer (or more) frames per class and sequences per
    // kind, for a quicker look while tuning.
    if let Some(at) = args.iter().position(|a| a == "--per-class") {
        let n = args.get(at + 1).and_then(|v| v.parse().ok());
        plan.per_class = n.expect("--per-class N");
        plan.per_kind = plan.per_class;
    }
    if let Some(at) = args.iter().position(|a| a == "--count-decodes") {
        return count_decodes_child(&args[at + 1..]);
    }
    let mut decoders = all_decoders();
    // `--attempts N`: the gate pipeline with another repair budget.
    if let Some(at) = args.iter().position(|a| a == "--attempts") {
        let n = args.get(at + 1).and_then(|v| v.parse().ok());
        let gate = gate_node::decode::configured_decoder("gate", n.expect("--attempts N"));
        decoders.retain(|d| d.name() != "gate");
        decoders.extend(gate);
    }
    // `--decoder NAME`: only that decoder (for a quicker look while tuning).
    if let Some(at) = args.iter().position(|a| a == "--decoder") {
        let name = args.get(at + 1).expect("--decoder NAME");
        decoders.retain(|d| d.name() == name);
        assert!(!decoders.is_empty(), "no decoder named {name}");
    }
    if flag("--pi4") {
        // Quick mode: one count (the default decoder, 640x480, a code).
        let quick = [gate_node::decode::default_decoder()];
        return if bench {
            pi4_estimates(
                &decoders,
                &[(640, 480), (1280, 720)],
                &["code", "no_code"],
                10,
            )
        } else {
            pi4_estimates(&quick, &[(640, 480)], &["code"], 1)
        };
    }
    if flag("--success-only") {
        // `--hd`: at 1280x720 instead.
        let (w, h) = if flag("--hd") {
            (1280, 720)
        } else {
            (640, 480)
        };
        return success_rates(&decoders, &plan, w, h);
    }
    // Quick mode plays one presentation at 15 fps to the default decoder:
    // rendering frames in an unoptimised build takes seconds each.
    let quick_sequences = [gate_node::decode::default_decoder()];
    let (seq_decoders, rates): (&[Box<dyn QrDecoder>], &[u32]) = if bench {
        (&decoders, &[15, 30])
    } else {
        (&quick_sequences, &[15])
    };
    if flag("--sequences-only") {
        for &fps in rates {
            times_to_admit(seq_decoders, &plan, fps);
        }
        return;
    }
    if !flag("--latency-only") {
        success_rates(&decoders, &plan, 640, 480);
        if bench {
            success_rates(&decoders, &plan, 1280, 720);
        }
        for &fps in rates {
            times_to_admit(seq_decoders, &plan, fps);
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
    let mut misreads = vec![0usize; decoders.len()];
    for class in Distortion::ALL {
        let of_class: Vec<_> = samples.iter().filter(|s| s.distortion == class).collect();
        let mut row = Vec::new();
        for (i, decoder) in decoders.iter().enumerate() {
            let (mut ok, mut misread) = (0, 0);
            for s in &of_class {
                let texts = decoder.decode(&s.image);
                ok += usize::from(texts.contains(&s.expected));
                misread += texts.iter().filter(|t| **t != s.expected).count();
            }
            totals[i] += ok;
            misreads[i] += misread;
            row.push(format!("{ok}/{}", of_class.len()));
            println!(
                "BENCH decode_success size={w}x{h} decoder={} class={} ok={ok} n={} misreads={misread}",
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
    let wrong: Vec<_> = misreads.iter().map(|m| m.to_string()).collect();
    println!("| misreads (a wrong text) | {} |", wrong.join(" | "));
}

/// Time to admit on the sequence corpus: each presentation is played at its
/// frame rate to one decoding thread that always takes the newest frame
/// that has arrived (frames that came while it was busy are dropped, as a
/// camera's buffer does) and spends on it the thread CPU time the decode
/// took here. The time to admit runs from the first frame's arrival to the
/// end of the first decode that returns the code's text.
fn times_to_admit(decoders: &[Box<dyn QrDecoder>], plan: &Plan, fps: u32) {
    let (w, h) = (640, 480);
    let mut seqs = corpus::sequences(2026, plan.per_kind, w, h, fps);
    if !plan.bench {
        seqs.truncate(1);
    }
    println!(
        "\n### Time to admit, sequence corpus, {w}x{h} at {fps} fps, {} presentations per kind (ms from the first frame; p50 / p95 / max, and how many were read within {} s)\n",
        plan.per_kind,
        corpus::SEQUENCE_SECONDS
    );
    let names: Vec<_> = decoders.iter().map(|d| d.name()).collect();
    println!(
        "| presentation | {} |\n|---|{}",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    let mut everything: Vec<Vec<f64>> = vec![Vec::new(); decoders.len()];
    let row_for = |label: &str, of_kind: &[&Sequence], all: Option<&mut Vec<Vec<f64>>>| {
        let mut row = Vec::new();
        let mut collected = Vec::new();
        for decoder in decoders {
            let mut ms: Vec<f64> = of_kind
                .iter()
                .map(|s| time_to_admit(decoder.as_ref(), s).unwrap_or(f64::INFINITY))
                .collect();
            ms.sort_by(f64::total_cmp);
            row.push(admit_cell(&ms));
            println!(
                "BENCH time_to_admit size={w}x{h} fps={fps} decoder={} presentation={label} n={} read={} p50_ms={:.1} p95_ms={:.1} max_ms={:.1}",
                decoder.name(),
                ms.len(),
                ms.iter().filter(|m| m.is_finite()).count(),
                quantile(&ms, 0.5),
                quantile(&ms, 0.95),
                quantile(&ms, 1.0),
            );
            collected.push(ms);
        }
        println!("| {label} | {} |", row.join(" | "));
        if let Some(all) = all {
            for (acc, ms) in all.iter_mut().zip(collected) {
                acc.extend(ms);
            }
        }
    };
    for kind in Presentation::ALL {
        let of_kind: Vec<_> = seqs.iter().filter(|s| s.presentation == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        row_for(kind.name(), &of_kind, Some(&mut everything));
    }
    let mut row = Vec::new();
    for (decoder, ms) in decoders.iter().zip(everything.iter_mut()) {
        ms.sort_by(f64::total_cmp);
        row.push(format!("**{}**", admit_cell(ms)));
        println!(
            "BENCH time_to_admit size={w}x{h} fps={fps} decoder={} presentation=all n={} read={} p50_ms={:.1} p95_ms={:.1} max_ms={:.1}",
            decoder.name(),
            ms.len(),
            ms.iter().filter(|m| m.is_finite()).count(),
            quantile(ms, 0.5),
            quantile(ms, 0.95),
            quantile(ms, 1.0),
        );
    }
    println!("| all | {} |", row.join(" | "));
}

/// "p50 / p95 / max (read/n)"; a presentation never read is "never".
fn admit_cell(sorted_ms: &[f64]) -> String {
    let show = |v: f64| {
        if v.is_finite() {
            format!("{v:.0}")
        } else {
            "never".to_owned()
        }
    };
    format!(
        "{} / {} / {} ({}/{})",
        show(quantile(sorted_ms, 0.5)),
        show(quantile(sorted_ms, 0.95)),
        show(quantile(sorted_ms, 1.0)),
        sorted_ms.iter().filter(|m| m.is_finite()).count(),
        sorted_ms.len()
    )
}

/// Nearest-rank quantile of sorted values (infinity for "never").
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// See [`times_to_admit`]; `None` if no decode within the sequence read it.
fn time_to_admit(decoder: &dyn QrDecoder, seq: &Sequence) -> Option<f64> {
    if let Some(first) = seq.frames.first() {
        std::hint::black_box(decoder.decode(first)); // lazy statics, caches
    }
    let fps = f64::from(seq.fps);
    let mut free_at = 0.0_f64; // seconds since the first frame arrived
    let mut last: Option<usize> = None;
    loop {
        let newest = (free_at * fps + 1e-9).floor() as usize;
        let index = match last {
            Some(l) if newest <= l => l + 1,
            _ => newest,
        };
        let frame = seq.frames.get(index)?;
        let start = free_at.max(index as f64 / fps);
        let cpu_start = thread_cpu();
        let found = decoder.decode(frame);
        let cost = thread_cpu().saturating_sub(cpu_start).as_secs_f64();
        free_at = start + cost;
        if found.contains(&seq.expected) {
            return Some(free_at * 1000.0);
        }
        last = Some(index);
    }
}

/// A Raspberry Pi 4 (Cortex-A72) at its stock 1.5 GHz retiring one
/// instruction per cycle: the rate instruction counts are scaled by. The
/// A72 is a 3-wide out-of-order core; 1.0 IPC is the conservative end for
/// this branchy integer code (docs/benchmarks.md says how the figures are
/// derived and what they assume).
const PI4_INSTRUCTIONS_PER_SECOND: f64 = 1.5e9;

/// Instructions per decoded frame, counted by callgrind on this binary
/// (`--count-decodes` in a child under valgrind, collecting only inside
/// [`count_decodes`]), and the Pi 4 time they stand for.
fn pi4_estimates(
    decoders: &[Box<dyn QrDecoder>],
    sizes: &[(u32, u32)],
    contents: &[&str],
    frames: usize,
) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let out_dir = std::env::temp_dir().join(format!("decode-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("a temp dir");
    println!(
        "\n### Instructions per frame (callgrind, x86-64) and the Raspberry Pi 4 estimate          ({frames} frames each; ms = instructions / {:.1e} per s)\n",
        PI4_INSTRUCTIONS_PER_SECOND
    );
    println!(
        "| decoder | frame | content | instructions/frame | Pi 4 ms/frame |\n|---|---|---|---|---|"
    );
    for &(w, h) in sizes {
        for decoder in decoders {
            for &content in contents {
                let file = out_dir.join(format!("{}-{w}x{h}-{content}", decoder.name()));
                let status = std::process::Command::new("valgrind")
                    .arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", file.display()))
                    .arg("--toggle-collect=*count_decodes*")
                    .arg(&exe)
                    .args([
                        "--count-decodes",
                        decoder.name(),
                        &w.to_string(),
                        &h.to_string(),
                    ])
                    .args([content, &frames.to_string()])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .expect("valgrind runs (Debian package valgrind; scripts/setup installs it)");
                assert!(status.success(), "valgrind on {}: {status}", decoder.name());
                let text = std::fs::read_to_string(&file).expect("callgrind's output file");
                let total: u64 = text
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("totals:")
                            .or_else(|| l.strip_prefix("summary:"))
                    })
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .expect("callgrind's totals line");
                let per_frame = total as f64 / frames as f64;
                let ms = per_frame / PI4_INSTRUCTIONS_PER_SECOND * 1000.0;
                println!(
                    "| {} | {w}x{h} | {} | {:.1} M | {ms:.1} |",
                    decoder.name(),
                    content.replace('_', " "),
                    per_frame / 1e6
                );
                println!(
                    "BENCH decode_instructions decoder={} size={w}x{h} content={content} frames={frames} instructions_per_frame={per_frame:.0} pi4_ms={ms:.2}",
                    decoder.name()
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// The child of [`pi4_estimates`]: `DECODER W H code|no_code N`.
fn count_decodes_child(args: &[String]) {
    let [name, w, h, content, n] = args else {
        panic!("--count-decodes DECODER W H code|no_code N");
    };
    let decoder = gate_node::decode::decoder_by_name(name).expect("a decoder name");
    let (w, h, n): (u32, u32, usize) = (
        w.parse().expect("W"),
        h.parse().expect("H"),
        n.parse().expect("N"),
    );
    let frames: Vec<GrayImage> = (0..n)
        .map(|i| match content.as_str() {
            "code" => {
                let d = Distortion::ALL[i % Distortion::ALL.len()];
                corpus::sample(d, 9000 + i as u64, w, h).image
            }
            _ => corpus::empty_frame(7000 + i as u64, w, h),
        })
        .collect();
    // One decode outside the count: lazy statics and first-touch pages.
    if let Some(first) = frames.first() {
        std::hint::black_box(decoder.decode(first));
    }
    count_decodes(decoder.as_ref(), &frames);
}

/// The only code callgrind counts in [`pi4_estimates`]'s child.
#[inline(never)]
fn count_decodes(decoder: &dyn QrDecoder, frames: &[GrayImage]) {
    for frame in frames {
        std::hint::black_box(decoder.decode(frame));
    }
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
