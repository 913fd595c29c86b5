//! Several replicas for real: N `cloud` processes (the built binary, as a
//! container runs it) over one fresh PostgreSQL database, behind HAProxy
//! from Debian on loopback (a child process with a generated config, never
//! a system service), health-checked on `/readyz` and balanced round-robin.
//! Every response says which replica answered (`X-Served-By`), so a test
//! can show its requests were spread. The tests talk to the balancer
//! through the usual [`TestApp`] helpers ([`TestApp::remote`]).
//!
//! The scenarios: the flash sale through the balancer, a replica killed
//! mid-sale, one webhook delivered to several replicas, the background
//! workers running on every replica, a gate syncing through the balancer,
//! and rate limits shared through Redis (a private `redis-server` per test,
//! see [`RedisServer`]).

mod gate;
mod limits;
mod sale;
mod stripe;
mod workers;

use crate::common::TestApp;
use crate::process::{CloudProcess, PgDatabase};
use reqwest::StatusCode;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The header HAProxy adds to every response: the replica that answered.
pub const SERVED_BY: &str = "x-served-by";

/// A free loopback port (bound and released: the caller binds it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn wait_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// HAProxy in front of `backends`, killed on drop.
pub struct HaProxy {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl HaProxy {
    /// The generated configuration: HTTP mode, round-robin, `/readyz`
    /// checks every 300 ms (three failures take a replica out; a check may
    /// take 5 s, since a busy debug build on a loaded box answers slowly),
    /// and a request whose connection is refused is sent to another replica.
    pub fn config(port: u16, backends: &[SocketAddr]) -> String {
        let mut cfg = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n\
             \x20   timeout http-request 10s\n    timeout check 5s\n    retries 3\n    option redispatch\n    option forwardfor\n\
             frontend cloud\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
             backend replicas\n    balance roundrobin\n    option httpchk\n    http-check send meth GET uri /readyz\n\
             \x20   http-check expect status 200\n    default-server inter 300ms fall 3 rise 1\n\
             \x20   http-response set-header X-Served-By %[srv_name]\n"
        );
        for (i, b) in backends.iter().enumerate() {
            cfg.push_str(&format!("    server r{i} {b} check\n"));
        }
        cfg
    }

    /// Starts HAProxy (`haproxy` from Debian; scripts/setup installs it).
    pub async fn start(backends: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            let file = dir.path().join("haproxy.cfg");
            std::fs::write(&file, Self::config(port, backends)).expect("write haproxy.cfg");
            let log = dir.path().join("haproxy.log");
            let out = std::fs::File::create(&log).expect("log file");
            let mut child = Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&file)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "haproxy is required for the replica tests (scripts/setup installs it): {e}"
                    )
                });
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(Some(_)) = child.try_wait() {
                // The port was taken meanwhile: try another.
                continue;
            }
            wait_port(port, "haproxy", &mut child, &log).await;
            return Self {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                child,
                _dir: dir,
            };
        }
        panic!("haproxy did not start (tried five ports)");
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private `redis-server` (nothing on disk), killed on drop; it can be
/// stopped and started again on the same port (Redis down at runtime).
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: Redis is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on its port.
    pub async fn resume(&mut self) {
        let log = self.dir.path().join("redis.log");
        let out = std::fs::File::create(&log).expect("log file");
        let port = self.port.to_string();
        let mut child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is required for the shared rate-limit tests (scripts/setup installs it): {e}")
            });
        wait_port(self.port, "redis-server", &mut child, &log).await;
        self.child = Some(child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// N replicas over one database behind one balancer.
pub struct Cluster {
    /// The service as clients see it: the balancer.
    pub app: TestApp,
    _balancer: HaProxy,
    /// `None` once killed.
    pub replicas: Vec<Option<CloudProcess>>,
    _dirs: Vec<tempfile::TempDir>,
    /// Dropped last: the replicas hold connections to it.
    _db: PgDatabase,
}

/// What every replica of a test cluster is configured with (as `CLOUD_*`
/// variables; a test's own come after and win): the shared keys, the
/// replica count, generous rate limits, small pools (three replicas and
/// the other suites share one PostgreSQL), quick background workers.
fn replica_env(n: usize) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("CLOUD_SERVER__REPLICAS", n.to_string()),
        ("CLOUD_SERVER__TRUST_FORWARDED_FOR", "true".into()),
        ("CLOUD_SERVER__VIEW_FLUSH_MS", "50".into()),
        ("CLOUD_SERVER__REQUEST_TIMEOUT_MS", "30000".into()),
        ("CLOUD_DATABASE__MAX_CONNECTIONS", "6".into()),
        ("CLOUD_COMMERCE__SWEEP_INTERVAL_MS", "100".into()),
        ("CLOUD_NOTIFICATIONS__OUTBOX__POLL_MS", "20".into()),
        (
            "CLOUD_NOTIFICATIONS__WEBHOOKS__ALLOW_NETWORKS",
            "[\"127.0.0.0/8\"]".into(),
        ),
        ("RUST_LOG", "info,tower_http=warn,sqlx=warn".into()),
    ];
    for key in [
        "CLOUD_RATE_LIMIT__GLOBAL_PER_MINUTE",
        "CLOUD_RATE_LIMIT__AUTH_PER_MINUTE",
        "CLOUD_RATE_LIMIT__REFRESH_PER_MINUTE",
        "CLOUD_RATE_LIMIT__TICKETS_PER_MINUTE",
        "CLOUD_RATE_LIMIT__LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE",
        "CLOUD_RATE_LIMIT__LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE",
    ] {
        env.push((key, "100000".into()));
    }
    env
}

impl Cluster {
    /// Starts `n` replicas at once on a fresh database (they migrate it
    /// under the lock), then HAProxy, and waits until every replica has
    /// answered through it.
    pub async fn start(n: usize, extra: &[(&str, String)]) -> Self {
        let db = PgDatabase::create("gh_cluster").await;
        let dirs: Vec<_> = (0..n)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut env: Vec<(&str, String)> = replica_env(n);
        env.extend(extra.iter().cloned());
        let http = reqwest::Client::new();
        let starting: Vec<_> = dirs
            .iter()
            .map(|d| CloudProcess::start_with(&db.url(), d.path(), &env))
            .collect();
        let mut replicas = Vec::new();
        for s in starting {
            replicas.push(Some(s.ready(&http).await));
        }
        let addrs: Vec<SocketAddr> = replicas.iter().flatten().map(|r| r.addr).collect();
        let balancer = HaProxy::start(&addrs).await;
        let app = TestApp::remote(balancer.addr, db.url());
        let cluster = Self {
            app,
            _balancer: balancer,
            replicas,
            _dirs: dirs,
            _db: db,
        };
        cluster.wait_serving(n).await;
        cluster
    }

    /// Waits until `n` distinct replicas answered `/readyz` through the
    /// balancer.
    pub async fn wait_serving(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = BTreeSet::new();
        while seen.len() < n {
            if let Ok(r) = self.app.client.get(self.app.url("/readyz")).send().await
                && r.status() == StatusCode::OK
                && let Some(by) = r.headers().get(SERVED_BY)
            {
                seen.insert(by.to_str().unwrap_or_default().to_string());
            }
            assert!(
                Instant::now() < deadline,
                "only {seen:?} of {n} replicas answered through HAProxy within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL of replica `i` itself, past the balancer.
    pub fn direct(&self, i: usize, path: &str) -> String {
        self.replicas[i].as_ref().expect("a live replica").url(path)
    }

    /// SIGKILLs replica `i`.
    pub fn kill9(&mut self, i: usize) {
        self.replicas[i].take().expect("a live replica").kill9();
    }

    /// What the replicas logged so far (for failure messages).
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.as_ref()
                    .map(|r| format!("--- replica {i}\n{}", r.output()))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The replica named in a response's `X-Served-By`.
pub fn served_by(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(SERVED_BY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}
