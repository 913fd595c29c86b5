//! `cloud healthcheck`, the container image's HEALTHCHECK: it probes the
//! service at `server.bind` on loopback, as a container runtime runs it.

use super::process::{CloudProcess, PgDatabase};
use std::process::Command;

fn healthcheck(bind: &str, path: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cloud"))
        .args(["healthcheck", "--path", path, "--timeout", "2"])
        .env("CLOUD_SERVER__BIND", bind)
        .output()
        .expect("the cloud binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_passes_against_a_running_cloud_and_fails_clearly_without_one() {
    let db = PgDatabase::create("gh_health").await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = CloudProcess::start(&db.url(), dir.path())
        .ready(&reqwest::Client::new())
        .await;
    // A container binds 0.0.0.0: the probe goes to loopback on that port.
    let wildcard = format!("0.0.0.0:{}", cloud.addr.port());
    for path in ["/healthz", "/readyz"] {
        let out = healthcheck(&wildcard, path);
        assert!(out.status.success(), "{path} is healthy: {out:?}");
    }
    let out = healthcheck(&wildcard, "/no-such-page");
    assert_eq!(out.status.code(), Some(1), "a 404 is unhealthy: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );

    drop(cloud);
    let out = healthcheck(&wildcard, "/healthz");
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing listening is unhealthy: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing answers"),
        "the error says what is wrong: {out:?}"
    );
}
