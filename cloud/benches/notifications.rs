//! Notification throughput and latency through the outbox, on real peers:
//! a real SMTP server (`aiosmtpd`, writing a Maildir) and a webhook
//! receiver on loopback, the service in this process with its shipped
//! outbox settings (poll 200 ms, batch 16).
//!
//! ```sh
//! cargo bench -p cloud --bench notifications                # SQLite in a temp dir
//! cargo bench -p cloud --bench notifications -- --postgres  # DATABASE_URL_PG, throwaway database
//! ```
//!
//! Prints one `BENCH notifications ...` line: email and webhook messages
//! per second (from the first send request until the last message is in the
//! mailbox / at the receiver), and paid order → confirmation in the mailbox
//! (p50/p95/max over sequential orders; target p95 ≤ 2 s).

use axum::routing::post;
use cloud::config::{Config, Secret};
use serde_json::{Value, json};
use sqlx::Connection;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const EMAILS: usize = 400;
const HOOKS: usize = 400;
const ORDERS: usize = 40;

/// `(emails, webhooks, orders)`. Without `--bench` (what `cargo bench`
/// passes; `cargo test --benches` and scripts/run-doc-commands do not): a
/// small run that checks the bench works, not a figure.
fn sizes() -> (usize, usize, usize) {
    if std::env::args().any(|a| a == "--bench") {
        (EMAILS, HOOKS, ORDERS)
    } else {
        (100, 16, 2)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn maildir_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, token, body).await
    }
    async fn login(&self, email: &str, password: &str) -> String {
        let v = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        v["access_token"].as_str().unwrap().to_string()
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let postgres = std::env::args().any(|a| a == "--postgres");
    let (emails, hooks, orders) = sizes();
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("maildir");
    let smtp_port = free_port();
    let _smtp = tokio::process::Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{smtp_port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 -m aiosmtpd (scripts/setup installs it)");
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", smtp_port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let hook_app = axum::Router::new().route(
        "/hook",
        post(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let hl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hl.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(hl, hook_app).await });

    let (url, pg) = if postgres {
        let base = std::env::var("DATABASE_URL_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut c = sqlx::PgConnection::connect(&base)
            .await
            .expect("PostgreSQL");
        sqlx::query("DROP DATABASE IF EXISTS gh_bench_notify WITH (FORCE)")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("CREATE DATABASE gh_bench_notify")
            .execute(&mut c)
            .await
            .unwrap();
        let (b, _) = base.rsplit_once('/').unwrap();
        (format!("{b}/gh_bench_notify"), Some(base))
    } else {
        (
            format!(
                "sqlite://{}?mode=rwc",
                tmp.path().join("cloud.db").display()
            ),
            None,
        )
    };
    let mut config = Config {
        data_dir: tmp.path().to_path_buf(),
        ..Config::default()
    };
    config.database.url = Secret::new(url);
    config.auth.jwt_secret = Secret::new("bench-jwt-secret-0123456789abcdef0123");
    config.keys.master_key = Secret::new("11".repeat(32));
    config.auth.bootstrap_admin_email = Some("admin@bench.test".into());
    config.auth.bootstrap_admin_password = Some(Secret::new("admin-password-1"));
    config.rate_limit.enabled = false;
    config.notifications.reminders.enabled = false;
    config.notifications.webhooks.allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
    let e = &mut config.notifications.email;
    e.smtp_host = "127.0.0.1".into();
    e.smtp_port = smtp_port;
    e.security = cloud::notifications::config::SmtpSecurity::None;
    e.from = "Bench <bench@gatehouse.test>".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Api {
        base: format!("http://{}", listener.local_addr().unwrap()),
        http: reqwest::Client::new(),
    };
    let server = tokio::spawn(cloud::serve(config, listener, std::future::pending()));
    for _ in 0..400 {
        if api
            .http
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let admin = api.login("admin@bench.test", "admin-password-1").await;
    // The bootstrap admin's welcome email.
    while maildir_count(&maildir) < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Email throughput.
    let base_count = maildir_count(&maildir);
    let t = Instant::now();
    for chunk in 0..emails / 100 {
        let to: Vec<String> = (0..100)
            .map(|i| format!("r{chunk}-{i}@bench.test"))
            .collect();
        api.post(
            "/notifications/email",
            Some(&admin),
            json!({"to": to, "subject": "Bench", "text": "Hello"}),
        )
        .await;
    }
    while maildir_count(&maildir) < base_count + emails {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let email_rate = emails as f64 / t.elapsed().as_secs_f64();

    // Webhook throughput (the admin is its own organizer here).
    let ep = api
        .post(
            "/notifications/webhook-endpoints",
            Some(&admin),
            json!({"url": hook_url, "event_types": ["*"]}),
        )
        .await;
    let ep = ep["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    let api = Arc::new(api);
    let mut senders = Vec::new();
    for w in 0..8 {
        let (api, admin, ep) = (api.clone(), admin.clone(), ep.clone());
        senders.push(tokio::spawn(async move {
            for i in (w..hooks).step_by(8) {
                api.post(
                    "/notifications/webhook",
                    Some(&admin),
                    json!({"endpoint_id": ep, "type": "bench.ping", "data": {"i": i}}),
                )
                .await;
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    while hits.load(Ordering::Relaxed) < hooks {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hook_rate = hooks as f64 / t.elapsed().as_secs_f64();

    // Paid order → confirmation in the mailbox.
    let ev = api
        .post("/events", Some(&admin), json!({"name": "Bench Fest", "description": "d", "venue": "v",
            "starts_at": "2031-06-01T18:00:00Z", "ends_at": "2031-06-01T23:00:00Z", "currency": "EUR",
            "tiers": [{"tier": 1, "name": "GA", "price_minor": 1000, "capacity": 1000, "zone_mask": 1, "zone": "Floor"}]}))
        .await;
    let eid = ev["id"].as_str().unwrap().to_string();
    api.call(
        reqwest::Method::PATCH,
        &format!("/events/{eid}/status"),
        Some(&admin),
        json!({"status": "active"}),
    )
    .await;
    let mut lat = Vec::new();
    for i in 0..orders {
        let email = format!("buyer{i}@bench.test");
        let reg = api
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": "correct horse battery", "display_name": "B"}),
            )
            .await;
        let token = reg["access_token"].as_str().unwrap().to_string();
        let o = api
            .post(
                "/orders",
                Some(&token),
                json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]}),
            )
            .await;
        let oid = o["id"].as_str().unwrap().to_string();
        // Let the welcome email land first, so the count below is the confirmation's.
        let before = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = maildir_count(&maildir);
            if n > base_count + emails + 2 * i {
                break n;
            }
        };
        let t = Instant::now();
        api.call(
            reqwest::Method::PUT,
            &format!("/orders/{oid}/status"),
            Some(&admin),
            json!({"status": "paid"}),
        )
        .await;
        while maildir_count(&maildir) <= before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "BENCH notifications backend={} email_msgs_per_s={email_rate:.1} webhook_msgs_per_s={hook_rate:.1} \
         paid_to_mailbox_ms p50={:.0} p95={:.0} max={:.0} orders={orders} target_p95_ms=2000",
        if postgres { "postgres" } else { "sqlite" },
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        lat[lat.len() - 1]
    );
    server.abort();
    if let Some(base) = pg
        && let Ok(mut c) = sqlx::PgConnection::connect(&base).await
    {
        let _ = sqlx::query("DROP DATABASE IF EXISTS gh_bench_notify WITH (FORCE)")
            .execute(&mut c)
            .await;
    }
}
