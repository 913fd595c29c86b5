//! Real `cloud` processes (the built binary, configured by `CLOUD_*`
//! variables as in a container), for what only separate processes show:
//! replicas starting at once, a restore into a new database.

use reqwest::StatusCode;
use sqlx::Connection;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const JWT_SECRET: &str = "replica-jwt-secret-0123456789abcdef";
pub const MASTER_KEY: &str = "11111111111111111111111111111111111111111111111111111111111111aa";

/// A fresh PostgreSQL database, dropped (with its connections) on drop.
pub struct PgDatabase {
    pub base: String,
    pub name: String,
}

impl PgDatabase {
    pub async fn create(prefix: &str) -> Self {
        let base = std::env::var("DATABASE_URL_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL is required and is not reachable at {base}: {e}")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        Self { base, name }
    }

    pub fn url(&self) -> String {
        let (base, _) = self.base.rsplit_once('/').expect("URL ends with /DBNAME");
        format!("{base}/{}", self.name)
    }

    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url())
            .await
            .expect("connect to the test database")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// One running `cloud` process.
pub struct CloudProcess {
    pub addr: SocketAddr,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl CloudProcess {
    /// Starts the binary on an ephemeral port; does not wait for readiness.
    /// The address comes from its "cloud listening" log line.
    pub fn start(database_url: &str, data_dir: &Path) -> Starting {
        Self::start_with(database_url, data_dir, &[])
    }

    /// [`Self::start`] with more `CLOUD_*` variables (later ones win).
    pub fn start_with(database_url: &str, data_dir: &Path, extra: &[(&str, String)]) -> Starting {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cloud"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CLOUD_DATABASE__URL", database_url)
            .env("CLOUD_DATA_DIR", data_dir)
            .env("CLOUD_SERVER__BIND", "127.0.0.1:0")
            .env("CLOUD_AUTH__JWT_SECRET", JWT_SECRET)
            .env("CLOUD_KEYS__MASTER_KEY", MASTER_KEY)
            .env(
                "CLOUD_AUTH__BOOTSTRAP_ADMIN_EMAIL",
                super::common::ADMIN_EMAIL,
            )
            .env(
                "CLOUD_AUTH__BOOTSTRAP_ADMIN_PASSWORD",
                super::common::ADMIN_PASSWORD,
            )
            .env("CLOUD_LOG__FORMAT", "json")
            .env("RUST_LOG", "info");
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cloud binary starts");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                // Keeps draining after the test stopped listening, so the
                // process never blocks on a full pipe.
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Starting { child, lines: rx }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl CloudProcess {
    /// What the process logged since the last call (for failure messages).
    pub fn output(&self) -> String {
        self.lines.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL (`kill -9`): no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the cloud process");
        let status = self.child.wait().expect("reap");
        assert!(!status.success(), "killed, not exited: {status}");
    }
}

impl Drop for CloudProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process that was started and has not said where it listens yet.
pub struct Starting {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Starting {
    /// Waits for the listening line and then for `/readyz` to answer 200;
    /// panics with the process's output if it exits or takes too long.
    pub async fn ready(mut self, http: &reqwest::Client) -> CloudProcess {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut log = Vec::new();
        let addr = loop {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let addr = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .filter(|v| v["fields"]["message"] == "cloud listening")
                        .and_then(|v| v["fields"]["addr"].as_str()?.parse().ok());
                    log.push(line);
                    if let Some(addr) = addr {
                        break addr;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!(
                        "cloud exited during start-up ({status:?}):\n{}",
                        log.join("\n")
                    );
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    log.push(line);
                }
                panic!(
                    "cloud exited during start-up ({status}):\n{}",
                    log.join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "cloud did not start listening within 60 s:\n{}",
                log.join("\n")
            );
        };
        let process = CloudProcess {
            addr,
            child: self.child,
            lines: self.lines,
        };
        loop {
            if let Ok(r) = http.get(process.url("/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "cloud at {addr} listened but was not ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
