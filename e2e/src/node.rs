//! Real `gate-node` processes: enrolled through the CLI with a code, run
//! as daemons with `scan_endpoint = true`. Peers reach each node through
//! its own [`Proxy`] (cut to partition); the tests talk to it directly.

use crate::binary;
use crate::proxy::Proxy;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Sync timings for a node's `[sync]` table.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Cloud sync period.
    pub cloud_interval_ms: u64,
    /// Longest backoff while the cloud is unreachable.
    pub cloud_backoff_max_ms: u64,
    /// Anti-entropy period with peers.
    pub anti_entropy_ms: u64,
    /// Timeout of one peer request.
    pub peer_timeout_ms: u64,
}

impl Timings {
    /// Short periods so scenarios settle quickly.
    pub fn fast() -> Self {
        Self {
            cloud_interval_ms: 500,
            cloud_backoff_max_ms: 1_000,
            anti_entropy_ms: 500,
            peer_timeout_ms: 500,
        }
    }
    /// A cloud poll so slow (60 s) that within a scenario only the push
    /// channel (and the upload after a scan) can explain news arriving.
    pub fn push_only() -> Self {
        Self {
            cloud_interval_ms: 60_000,
            cloud_backoff_max_ms: 1_000,
            anti_entropy_ms: 500,
            peer_timeout_ms: 500,
        }
    }
    /// The shipped defaults (what figures are measured with).
    pub fn defaults() -> Self {
        Self {
            cloud_interval_ms: 5_000,
            cloud_backoff_max_ms: 60_000,
            anti_entropy_ms: 5_000,
            peer_timeout_ms: 1_000,
        }
    }
}

/// One gate: data directory, proxy, and the process when running.
#[derive(Debug)]
pub struct Node {
    /// Data and config directory.
    pub dir: PathBuf,
    /// Peers reach the node through this (tests cut it to partition).
    pub proxy: Proxy,
    /// The node's own address (tests talk to it directly).
    pub addr: Option<SocketAddr>,
    child: Option<Child>,
    http: reqwest::Client,
}

fn config(dir: &Path) -> PathBuf {
    dir.join("gate.toml")
}

impl Node {
    /// Writes the config (peers = other nodes' proxies) and enrolls the
    /// node with `code` through `gate-node enroll`.
    pub fn enroll(
        dir: &Path,
        proxy: Proxy,
        cloud_url: &str,
        code: &str,
        peers: &[String],
        t: Timings,
    ) -> Node {
        let peers: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
        let toml = format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\npeers = [{}]\nmdns = false\nscan_endpoint = true\n\
             debounce_ms = 0\n[sync]\npeer_timeout_ms = {}\nanti_entropy_ms = {}\ncloud_interval_ms = {}\n\
             cloud_backoff_max_ms = {}\n",
            dir.join("data").display().to_string(),
            peers.join(", "),
            t.peer_timeout_ms,
            t.anti_entropy_ms,
            t.cloud_interval_ms,
            t.cloud_backoff_max_ms,
        );
        std::fs::write(config(dir), toml).expect("write node config");
        let out = Command::new(binary("gate-node"))
            .arg("--config")
            .arg(config(dir))
            .args(["enroll", "--cloud", cloud_url, "--code", code, "--name"])
            .arg(dir.file_name().unwrap_or_default())
            .env("GATE_LOG", "warn")
            .output()
            .expect("run gate-node enroll");
        assert!(out.status.success(), "gate-node enroll succeeds: {out:?}");
        Node {
            dir: dir.to_owned(),
            proxy,
            addr: None,
            child: None,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    /// Runs a CLI command against the node's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary("gate-node"))
            .arg("--config")
            .arg(config(&self.dir))
            .args(args)
            .env("GATE_LOG", "warn")
            .output()
            .expect("run gate-node")
    }

    /// Waits until a dry run of `text` at this node (`gate-node check`,
    /// nothing recorded) decides `decision` with `reason`: what a change
    /// from the cloud is for, whichever manifest version carried it (the
    /// cloud may publish several orders in one version or in several).
    pub async fn wait_check(&self, text: &str, decision: &str, reason: Option<&str>) {
        let what = format!(
            "a dry run at {} deciding {decision} {reason:?}",
            self.dir.display()
        );
        crate::wait_until(crate::venue::SETTLE, &what, || async {
            let out = self.cli(&["check", "--text", text, "--json"]);
            let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let ok = r["decision"] == decision && r["reason"].as_str() == reason;
            if !ok {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ok
        })
        .await;
    }

    /// Starts `gate-node run`, waits for its listening line and points
    /// the proxy at it.
    pub fn start(&mut self) {
        let mut child = Command::new(binary("gate-node"))
            .arg("--config")
            .arg(config(&self.dir))
            .arg("run")
            .env("GATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gate-node run");
        let stdout = child.stdout.take().expect("node stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the node prints its listening address when ready");
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        let addr: SocketAddr = v["addr"].as_str().expect("addr").parse().expect("address");
        self.proxy.point_at(addr);
        self.addr = Some(addr);
        self.child = Some(child);
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        match self.addr {
            Some(a) => format!("http://{a}{path}"),
            None => format!("http://127.0.0.1:9{path}"),
        }
    }

    /// `POST /scan`; the report, or None if the node did not answer.
    pub async fn try_scan(&self, text: &str) -> Option<Value> {
        let resp = self
            .http
            .post(self.url("/scan"))
            .json(&json!({ "text": text }))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// `POST /scan`, which must answer.
    pub async fn scan(&self, text: &str) -> Value {
        self.try_scan(text).await.expect("POST /scan answers")
    }

    /// `GET /status`.
    pub async fn status(&self) -> Value {
        self.http
            .get(self.url("/status"))
            .send()
            .await
            .expect("GET /status")
            .json()
            .await
            .expect("status JSON")
    }

    /// `/status` → `cloud.push`: the push stream's state.
    pub async fn push_status(&self) -> Value {
        match self.http.get(self.url("/status")).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .map(|v| v["cloud"]["push"].clone())
                .unwrap_or_default(),
            Err(_) => Value::Null,
        }
    }

    /// Scan ids the node holds.
    pub async fn scan_ids(&self) -> Vec<String> {
        let rows: Vec<Value> = match self
            .http
            .get(self.url("/scans/recent?limit=10000"))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        rows.iter()
            .filter_map(|r| r["scan_id"].as_str().map(str::to_string))
            .collect()
    }

    /// The manifest version the node holds (0 if it does not answer).
    pub async fn manifest_version(&self) -> u64 {
        match self.http.get(self.url("/status")).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["manifest"]["version"].as_u64())
                .unwrap_or(0),
            Err(_) => 0,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}
