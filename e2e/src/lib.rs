//! The end-to-end harness: the real `cloud` binary (SQLite in a temp
//! directory) and real `gate-node` processes on loopback, each behind a TCP
//! proxy the tests cut and heal. No mocks: nodes enroll with codes created
//! through the cloud's REST API, tickets are sold at the box office, and
//! scans are injected through each node's `POST /scan`.
//!
//! The binaries are found next to the test executable (`target/<profile>/`);
//! `cargo nextest run --workspace` builds them because `cloud` and
//! `gate-node` have integration tests of their own. If they are missing the
//! tests fail with the command that builds them.

pub mod cloud;
pub mod lan;
pub mod node;
pub mod pg;
pub mod proxy;
pub mod venue;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The path of a workspace binary built next to this test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "the `{name}` binary is missing at {}: build it first with \
         `cargo build --workspace --bins` (or run `cargo nextest run --workspace`, which builds it)",
        path.display()
    );
    path
}

/// Polls `check` every 10 ms until it holds; fails after `deadline` naming
/// `what`. Returns how long it took.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// p50, p95 and max of some durations, in milliseconds.
pub fn percentiles(samples: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.95), ms.last().copied().unwrap_or(f64::NAN))
}
