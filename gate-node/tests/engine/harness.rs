//! Real `gate-node` processes on loopback, and a TCP proxy in front of each
//! that the tests cut and heal to partition gates.

use gate_node::fixture::EventFixture;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub const BIN: &str = env!("CARGO_BIN_EXE_gate-node");

/// A TCP proxy: forwards to a target set later; `cut` drops every
/// connection and refuses new ones until `heal`.
pub struct Proxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    up: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (up, up_rx) = watch::channel(true);
        let t = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *t.lock().unwrap();
                let mut up_rx = up_rx.clone();
                if !*up_rx.borrow() {
                    continue; // dropped: connection reset
                }
                let Some(to) = to else { continue };
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up_rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, target, up }
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn point_at(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = Some(to);
    }
    pub fn cut(&self) {
        self.up.send_replace(false);
    }
    pub fn heal(&self) {
        self.up.send_replace(true);
    }
}

/// One node process with its own data directory.
pub struct Node {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    child: Child,
    pub http: reqwest::Client,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("gate.toml")
}

/// Writes the node's config; `sync_extra` lines go into its `[sync]` table.
pub fn write_config(dir: &Path, peers: &[String], sync_extra: &str) {
    let peers: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
    let toml = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\npeers = [{}]\nmdns = false\nscan_endpoint = true\n\
         debounce_ms = 0\ntrust_system_clock = true\n[sync]\nanti_entropy_ms = 200\npeer_timeout_ms = 500\n{sync_extra}\n",
        dir.join("data").display().to_string(),
        peers.join(", ")
    );
    std::fs::write(config_path(dir), toml).unwrap();
}

/// Appends `toml` (whole tables, e.g. `[source]`) to the node's config.
pub fn append_config(dir: &Path, toml: &str) {
    let mut text = std::fs::read_to_string(config_path(dir)).unwrap();
    text.push_str(toml);
    std::fs::write(config_path(dir), text).unwrap();
}

/// Writes the node's config and provisions it through the CLI.
pub fn provision(dir: &Path, f: &EventFixture, n: u8, peers: &[String]) {
    write_config(dir, peers, "");
    let bundle = dir.join("bundle.json");
    std::fs::write(
        &bundle,
        serde_json::to_vec(&f.bundle(n, &format!("Gate {n}"))).unwrap(),
    )
    .unwrap();
    let out = cli(dir, &["provision", "--bundle", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "provisioning succeeds: {out:?}");
}

/// `gate-node run` on the node's config with extra environment variables,
/// logging warnings and errors.
pub fn daemon_command(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config_path(dir))
        .arg("run")
        .env("GATE_LOG", "warn")
        .envs(env.iter().copied());
    cmd
}

/// Runs one CLI command against the node's config.
pub fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config_path(dir))
        .args(args)
        .env("GATE_LOG", "warn")
        .output()
        .unwrap()
}

impl Node {
    /// Starts `gate-node run` and waits for its "listening" line.
    pub fn start(dir: &Path) -> Node {
        Self::start_with(dir, &[], Stdio::null()).0
    }

    /// As [`Node::start`], with extra environment variables and the given
    /// stdin; returns the pipe when `stdin` is `Stdio::piped()`.
    pub fn start_with(
        dir: &Path,
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> (Node, Option<std::process::ChildStdin>) {
        let mut child = daemon_command(dir, env)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let pipe = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the node prints its listening address when ready");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let addr = v["addr"].as_str().unwrap().parse().unwrap();
        let node = Node {
            dir: dir.to_owned(),
            addr,
            child,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        (node, pipe)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then the exit status (graceful shutdown).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "SIGTERM stops the node"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn scan(&self, text: &str) -> serde_json::Value {
        let resp = self
            .http
            .post(self.url("/scan"))
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "POST /scan answers 200: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    /// `GET path` as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn status(&self) -> serde_json::Value {
        self.get_json("/status").await
    }

    pub async fn recent(&self) -> Vec<serde_json::Value> {
        self.get_json("/scans/recent?limit=10000").await
    }

    pub async fn holds(&self, scan_id: &str) -> bool {
        self.recent().await.iter().any(|r| r["scan_id"] == scan_id)
    }

    pub async fn post_peer_sync(&self, body: Vec<u8>) -> reqwest::StatusCode {
        self.http
            .post(self.url("/peer/sync"))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// Polls `check` every 10 ms until it holds or `deadline` passes; returns
/// the time it took.
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

/// N provisioned nodes, each behind its own proxy, each listing the
/// others' proxies as peers.
pub struct Cluster {
    /// Kept so the data directories outlive the nodes.
    pub _dirs: Vec<tempfile::TempDir>,
    pub proxies: Vec<Proxy>,
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub async fn start(f: &EventFixture, n: usize) -> Cluster {
        let mut proxies = Vec::new();
        for _ in 0..n {
            proxies.push(Proxy::start().await);
        }
        let mut dirs = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let peers: Vec<String> = (0..n)
                .filter(|j| *j != i)
                .map(|j| proxies[j].url())
                .collect();
            provision(dir.path(), f, i as u8 + 1, &peers);
            let node = Node::start(dir.path());
            proxies[i].point_at(node.addr);
            nodes.push(node);
            dirs.push(dir);
        }
        Cluster {
            _dirs: dirs,
            proxies,
            nodes,
        }
    }
}
