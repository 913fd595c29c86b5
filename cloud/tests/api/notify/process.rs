//! The real `cloud` binary as the outbox worker, over the same database as
//! the test app (whose own worker is off): messages stored while no SMTP
//! server is configured are re-sent by an admin once one is; then the
//! binary is killed with SIGKILL while deliveries are in flight and
//! restarted. Every message ends delivered, and what the receivers got
//! carries only outbox ids: a duplicate is the same id twice, never a new one.

use super::peers::{SmtpSink, WebhookSink, free_port};
use super::{fast, on_both, outbox_id};
use crate::common::*;
use crate::shop::count;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

struct Binary {
    child: tokio::process::Child,
}

async fn start(app: &TestApp, dir: &std::path::Path, smtp: Option<u16>) -> Binary {
    let port = free_port();
    let mut toml = format!(
        "data_dir = {dir:?}\n[server]\nbind = \"127.0.0.1:{port}\"\n[database]\nurl = {url:?}\nmax_connections = 4\n\
         [auth]\njwt_secret = \"test-jwt-secret-0123456789abcdef0123\"\n[keys]\nmaster_key = \"{key}\"\n\
         [rate_limit]\nenabled = false\n[log]\nfilter = \"warn\"\n\
         [notifications.outbox]\npoll_ms = 20\nlease_ms = 2000\nbackoff_base_ms = 100\nbackoff_max_ms = 1000\n\
         [notifications.webhooks]\ntimeout_ms = 5000\nallow_networks = [\"127.0.0.0/8\"]\n",
        dir = dir.display().to_string(),
        url = app.database_url,
        key = "00".repeat(32),
    );
    if let Some(p) = smtp {
        toml.push_str(&format!(
            "[notifications.email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {p}\nsecurity = \"none\"\nfrom = \"Gatehouse <tickets@gatehouse.test>\"\n"
        ));
    }
    let file = dir.join(format!("cloud-{port}.toml"));
    std::fs::write(&file, toml).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud"))
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the cloud binary starts");
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status() == StatusCode::OK
        {
            return Binary { child };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the cloud binary did not become ready");
}

async fn open(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT COUNT(*) FROM notifications WHERE status IN ('queued', 'sending')",
        &[],
    )
    .await
}

async fn ids(app: &TestApp, channel: &str) -> BTreeSet<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM notifications WHERE channel = $1")
        .bind(channel.to_string())
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.into_iter().collect()
}

async fn kill_mid_delivery_loses_nothing(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let sink = WebhookSink::start().await;
    let app = TestApp::spawn(backend, |c| {
        fast(c);
        c.notifications.outbox.enabled = false;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let org = app.organizer("org@example.com").await;
    let admin = app.admin().await;

    // No SMTP server configured: welcome emails are kept as undeliverable.
    let mut bin = start(&app, dir.path(), None).await;
    for i in 0..5 {
        app.register(&format!("early{i}@example.com")).await;
    }
    for _ in 0..400 {
        if open(&app).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let undeliverable = count(
        &app,
        "SELECT COUNT(*) FROM notifications WHERE status = 'undeliverable'",
        &[],
    )
    .await;
    assert!(
        undeliverable >= 5,
        "welcome emails wait as undeliverable: {undeliverable}"
    );
    bin.child.kill().await.unwrap();

    // With SMTP configured, an admin re-sends them; webhooks go out too, and
    // the binary is killed while receivers are still answering.
    let (st, v) = app
        .post(
            "/notifications/webhook-endpoints",
            Some(&org.access),
            json!({"url": sink.url("ok"), "event_types": ["*"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let ep = id(&v);
    sink.set_delay(400);
    for i in 0..24 {
        let (st, v) = app
            .post(
                "/notifications/webhook",
                Some(&org.access),
                json!({"endpoint_id": ep, "type": "test.ping", "data": {"n": i}}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let (st, v) = app
        .post(
            "/notifications/resend-undeliverable",
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["queued"].as_i64(), Some(undeliverable), "{v}");
    let mut bin = start(&app, dir.path(), Some(smtp.port)).await;
    sink.wait_for("ok", 3).await;
    bin.child.kill().await.expect("SIGKILL");
    let seen_at_kill = sink.received("ok").len();
    assert!(open(&app).await > 0, "the kill left deliveries unfinished");

    let _bin = start(&app, dir.path(), Some(smtp.port)).await;
    for _ in 0..1200 {
        if open(&app).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        open(&app).await,
        0,
        "every message finished after the restart"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM notifications WHERE status <> 'delivered'",
            &[]
        )
        .await,
        0,
        "every message was delivered"
    );
    let hooks = ids(&app, "webhook").await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in sink.received("ok") {
        let wid = r
            .headers
            .get("webhook-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(hooks.contains(&wid), "{wid} is an outbox id");
        *per_id.entry(wid).or_default() += 1;
    }
    assert_eq!(per_id.len(), hooks.len(), "every webhook arrived");
    assert!(
        per_id.values().any(|n| *n > 1),
        "deliveries in flight at the kill ({seen_at_kill} seen) were sent again, under the same id"
    );
    let mails = ids(&app, "email").await;
    let mut got = BTreeSet::new();
    for m in smtp.messages() {
        let mid = outbox_id(&m.message_id());
        assert!(mails.contains(&mid), "{mid} is an outbox id");
        got.insert(mid);
    }
    assert_eq!(got, mails, "every email arrived");
}
on_both!(kill_mid_delivery_loses_nothing);

async fn two_replicas_send_each_message_once(backend: Backend) {
    let sink = WebhookSink::start().await;
    let app = TestApp::spawn(backend, fast).await;
    // A second replica over the same database, with its own worker.
    let dir = tempfile::tempdir().unwrap();
    let mut config = cloud::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.database.url = cloud::config::Secret::new(app.database_url.clone());
    config.database.max_connections = 4;
    config.auth.jwt_secret = cloud::config::Secret::new("test-jwt-secret-0123456789abcdef0123");
    config.keys.master_key = cloud::config::Secret::new("00".repeat(32));
    config.rate_limit.enabled = false;
    fast(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replica = tokio::spawn(cloud::serve(config, listener, std::future::pending()));

    let org = app.organizer("org@example.com").await;
    let (st, v) = app
        .post(
            "/notifications/webhook-endpoints",
            Some(&org.access),
            json!({"url": sink.url("ok"), "event_types": ["*"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let ep = id(&v);
    let n = 60;
    for i in 0..n {
        let (st, v) = app
            .post(
                "/notifications/webhook",
                Some(&org.access),
                json!({"endpoint_id": ep, "type": "test.ping", "data": {"n": i}}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let got = sink.wait_for("ok", n).await;
    for _ in 0..200 {
        if open(&app).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = if sink.received("ok").len() > got.len() {
        sink.received("ok")
    } else {
        got
    };
    let distinct: BTreeSet<String> = got
        .iter()
        .map(|r| {
            r.headers
                .get("webhook-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let workers = count(
        &app,
        "SELECT COUNT(DISTINCT worker) FROM notification_attempts",
        &[],
    )
    .await;
    assert_eq!(
        (distinct.len(), got.len()),
        (n, n),
        "each message sent once although two workers ({workers} took part) claim from one outbox"
    );
    replica.abort();
}
on_both!(two_replicas_send_each_message_once);
