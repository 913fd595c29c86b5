//! The test harness: the real service on port 0, over a fresh database per
//! test (a temp-file SQLite, or a new PostgreSQL database that is dropped
//! afterwards), talked to over real HTTP.
//!
//! PostgreSQL comes from `DATABASE_URL_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If it cannot be reached the
//! PostgreSQL tests fail: they never skip.

use cloud::config::{Config, Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use std::net::SocketAddr;
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "admin@gatehouse.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "correct horse battery";

/// Which database the test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `<name>::sqlite` and `<name>::postgres` tests from
/// `async fn <name>(app: TestApp)`, optionally with a config tweak.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        $crate::both!($name, |_c| {});
    };
    ($name:ident, |$c:ident| $tweak:block) => {
        mod $name {
            #[allow(unused_variables)]
            fn tweak($c: &mut cloud::config::Config) $tweak
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestApp::spawn($crate::common::Backend::Sqlite, tweak).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::TestApp::spawn($crate::common::Backend::Postgres, tweak).await).await;
            }
        }
    };
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access: String,
    pub refresh: String,
}

/// A running service.
pub struct TestApp {
    pub addr: SocketAddr,
    pub backend: Backend,
    pub client: reqwest::Client,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

fn pg_base() -> String {
    std::env::var("DATABASE_URL_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL_PG must end with /DBNAME");
    format!("{base}/{db}")
}

async fn create_pg_database() -> (String, String) {
    let base = pg_base();
    let name = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for the postgres tests and is not reachable at {base}: {e}"
            )
        });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    (base, name)
}

impl TestApp {
    /// Starts the service with test defaults, adjusted by `tweak`.
    pub async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, pg) = match backend {
            Backend::Sqlite => (
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("cloud.db").display()
                ),
                None,
            ),
            Backend::Postgres => {
                let (base, name) = create_pg_database().await;
                (with_database(&base, &name), Some((base, name)))
            }
        };
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.database.url = Secret::new(database_url.clone());
        config.database.max_connections = 8;
        config.auth.jwt_secret = Secret::new("test-jwt-secret-0123456789abcdef0123");
        config.keys.master_key = Secret::new("00".repeat(32));
        config.auth.bootstrap_admin_email = Some(ADMIN_EMAIL.into());
        config.auth.bootstrap_admin_password = Some(Secret::new(ADMIN_PASSWORD));
        config.rate_limit.global_per_minute = 100_000;
        config.rate_limit.auth_per_minute = 100_000;
        config.rate_limit.refresh_per_minute = 100_000;
        config.rate_limit.login_failures_per_address_per_minute = 100_000;
        config.rate_limit.login_failures_per_account_per_minute = 100_000;
        config.rate_limit.tickets_per_minute = 100_000;
        config.server.cors_allowed_origins = vec!["https://app.gatehouse.test".into()];
        config.server.view_flush_ms = 50;
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(async move {
            if let Err(e) = cloud::serve(config, listener, async {
                let _ = rx.await;
            })
            .await
            {
                panic!("server failed: {e}");
            }
        });
        let app = Self {
            addr,
            backend,
            client: reqwest::Client::new(),
            database_url,
            shutdown: Some(tx),
            server: Some(server),
            pg,
            _dir: dir,
        };
        app.wait_ready().await;
        app
    }

    /// A service this test did not start (the load balancer in front of
    /// `cloud` processes, see `cluster`), on PostgreSQL at `database_url`:
    /// the same helpers, nothing to stop on drop.
    pub fn remote(addr: SocketAddr, database_url: String) -> Self {
        Self {
            addr,
            backend: Backend::Postgres,
            client: reqwest::Client::new(),
            database_url,
            shutdown: None,
            server: None,
            pg: None,
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    async fn wait_ready(&self) {
        for _ in 0..600 {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            if self.server.as_ref().is_some_and(|s| s.is_finished()) {
                panic!("server exited during start-up");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("server not ready after 12 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends JSON (or nothing) and returns status and JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Session {
        let (s, v) = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login of {email} must succeed: {v}");
        session(&v)
    }

    pub async fn register(&self, email: &str) -> Session {
        let (s, v) = self
            .post("/auth/register", None, json!({"email": email, "password": PASSWORD, "display_name": email.split('@').next().unwrap()}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "registration of {email}: {v}");
        session(&v)
    }

    pub async fn admin(&self) -> Session {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Registers, gets `role` from the admin, and logs in again.
    pub async fn with_role(&self, email: &str, role: &str) -> Session {
        let user = self.register(email).await;
        let admin = self.admin().await;
        let (s, v) = self
            .patch(
                &format!("/users/{}/role", user.user_id),
                &admin.access,
                json!({"role": role}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "role grant: {v}");
        self.login(email, PASSWORD).await
    }

    pub async fn organizer(&self, email: &str) -> Session {
        self.with_role(email, "organizer").await
    }

    /// A draft event with tiers 1 (GA, 2500 EUR cents, cap 100) and 2 (VIP, 9900, cap 2).
    pub async fn create_event(&self, org: &Session) -> Value {
        let (s, v) = self.post("/events", Some(&org.access), event_body()).await;
        assert_eq!(s, StatusCode::CREATED, "create event: {v}");
        v
    }

    /// A created and activated event.
    pub async fn active_event(&self, org: &Session) -> Value {
        let e = self.create_event(org).await;
        let (s, v) = self
            .patch(
                &format!("/events/{}/status", e["id"].as_str().unwrap()),
                &org.access,
                json!({"status": "active"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "activate: {v}");
        v
    }
}

pub fn event_body() -> Value {
    json!({
        "name": "Harbour Lights Festival",
        "description": "Two stages by the water",
        "venue": "Pier 4",
        "starts_at": "2031-06-01T18:00:00Z",
        "ends_at": "2031-06-01T23:30:00Z",
        "currency": "EUR",
        "tiers": [
            {"tier": 1, "name": "General admission", "price_minor": 2500, "capacity": 100, "zone_mask": 1, "zone": "Floor"},
            {"tier": 2, "name": "VIP", "price_minor": 9900, "capacity": 2, "zone_mask": 3, "zone": "Balcony"}
        ]
    })
}

pub fn session(v: &Value) -> Session {
    Session {
        user_id: v["user"]["id"].as_str().expect("user id").into(),
        access: v["access_token"].as_str().expect("access token").into(),
        refresh: v["refresh_token"].as_str().expect("refresh token").into(),
    }
}

/// Asserts the API's error shape and code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "status for {body}");
    assert_eq!(body["error"]["code"], want_code, "error code in {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error message in {body}"
    );
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some((base, name)) = self.pg.take() {
            // Drop runs outside async context guarantees: use a private runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The `id` field of a JSON object.
pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}
