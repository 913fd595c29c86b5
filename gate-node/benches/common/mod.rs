//! Measuring helpers shared by the gate node's benchmarks.

use std::time::Duration;

/// Nearest-rank percentile of `sorted` in milliseconds (`p = 1.0` is the
/// maximum); NaN when there are no samples.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// CPU time used by the calling thread. The build box is shared (two cores,
/// often several compilers running), so wall time includes waiting for a
/// core; CPU time is what the work costs when it has one, as on a gate
/// that runs nothing else.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}
