//! `cloud rekey` with the real binary on both backends: a wrong old key is
//! refused and changes nothing; after a re-seal the cloud started with the
//! new key signs (a ticket it issues admits), and one started with the old
//! key refuses to start, saying why.

use super::common::{ADMIN_EMAIL, ADMIN_PASSWORD, event_body};
use super::process::{CloudProcess, JWT_SECRET, MASTER_KEY};
use crate::tickets::{now, ring_from_keys};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use sync_protocol::manifest::ManifestState;
use sync_protocol::{CheckinLog, EventId, GatePolicy, Outcome, decide};

const WRONG_KEY: &str = "3333333333333333333333333333333333333333333333333333333333333ccc";

async fn call(
    http: &reqwest::Client,
    cloud: &CloudProcess,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> Value {
    let resp = http
        .request(method, cloud.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn admin_token(http: &reqwest::Client, cloud: &CloudProcess) -> String {
    let v: Value = http
        .post(cloud.url("/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().expect("admin token").to_string()
}

/// Sells one ticket and checks its credential admits under the event's keys.
async fn sell_and_admit(http: &reqwest::Client, cloud: &CloudProcess, token: &str, eid: &str) {
    let sale = call(
        http,
        cloud,
        reqwest::Method::POST,
        &format!("/events/{eid}/ticket-sale"),
        token,
        json!({"tier": 1, "quantity": 1, "holder_name": "Jensen", "payment_method": "cash"}),
    )
    .await;
    let qr = sale["tickets"][0]["credential"].as_str().unwrap();
    let keys = call(
        http,
        cloud,
        reqwest::Method::GET,
        &format!("/events/{eid}/keys"),
        token,
        Value::Null,
    )
    .await;
    let ring = ring_from_keys(&keys);
    let event: EventId = eid.parse().unwrap();
    let d = decide(
        qr,
        &ring,
        &ManifestState::empty(event),
        &CheckinLog::new(event),
        &GatePolicy::entry(event),
        now(),
    );
    assert_eq!(
        d.outcome,
        Outcome::Admit,
        "a credential the cloud signs verifies"
    );
}

fn cloud_cmd(database_url: &str, data_dir: &Path, master: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloud"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLOUD_DATABASE__URL", database_url)
        .env("CLOUD_DATA_DIR", data_dir)
        .env("CLOUD_SERVER__BIND", "127.0.0.1:0")
        .env("CLOUD_AUTH__JWT_SECRET", JWT_SECRET)
        .env("CLOUD_KEYS__MASTER_KEY", master)
        .stdin(Stdio::null());
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every sealed seed of the event's keys, to see whether anything changed.
async fn sealed(database_url: &str, event: EventId) -> Vec<Vec<u8>> {
    let store = cloud::store::connect(database_url, 1).await.expect("store");
    let keys = store.event_keys(event).await.expect("event keys");
    store.close().await;
    keys.into_iter().map(|k| k.record.key.sealed_seed).collect()
}

async fn rekey_scenario(database_url: &str) {
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let cloud = CloudProcess::start(database_url, dir.path())
        .ready(&http)
        .await;
    let token = admin_token(&http, &cloud).await;
    let e = call(
        &http,
        &cloud,
        reqwest::Method::POST,
        "/events",
        &token,
        event_body(),
    )
    .await;
    let eid = e["id"].as_str().unwrap().to_string();
    call(
        &http,
        &cloud,
        reqwest::Method::PATCH,
        &format!("/events/{eid}/status"),
        &token,
        json!({"status": "active"}),
    )
    .await;
    // Two event keys and the organizer's root are sealed.
    call(
        &http,
        &cloud,
        reqwest::Method::POST,
        &format!("/events/{eid}/keys"),
        &token,
        json!({}),
    )
    .await;
    sell_and_admit(&http, &cloud, &token, &eid).await;
    drop(cloud);
    let event: EventId = eid.parse().unwrap();
    let before = sealed(database_url, event).await;
    assert_eq!(before.len(), 2);

    // `cloud keygen > new.key`, as docs/operations.md says.
    let keygen = Command::new(env!("CARGO_BIN_EXE_cloud"))
        .arg("keygen")
        .env_clear()
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let new_key = String::from_utf8(keygen.stdout).unwrap().trim().to_string();
    assert_eq!(new_key.len(), 64);
    let new_key = new_key.as_str();
    let new_file = dir.path().join("new.key");
    let wrong_file = dir.path().join("wrong.key");
    std::fs::write(&new_file, format!("{new_key}\n")).unwrap();
    std::fs::write(&wrong_file, WRONG_KEY).unwrap();

    // A wrong old key: refused, nothing changed.
    let out = cloud_cmd(database_url, dir.path(), MASTER_KEY)
        .args(["rekey", "--new-key-file"])
        .arg(&new_file)
        .arg("--old-key-file")
        .arg(&wrong_file)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "a wrong old key is refused: {said}");
    assert!(
        said.contains("the old master key does not open") && said.contains("nothing was changed"),
        "says what is wrong: {said}"
    );
    assert_eq!(
        sealed(database_url, event).await,
        before,
        "nothing was re-sealed"
    );

    // The same key as old and new: refused.
    let out = cloud_cmd(database_url, dir.path(), new_key)
        .args(["rekey", "--new-key-file"])
        .arg(&new_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the new master key is the old one"),
        "{}",
        text(&out)
    );

    // The configured key is the old one.
    let out = cloud_cmd(database_url, dir.path(), MASTER_KEY)
        .args(["rekey", "--new-key-file"])
        .arg(&new_file)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "rekey: {said}");
    assert!(said.contains("re-sealed 1 in organizer_keys"), "{said}");
    assert!(said.contains("re-sealed 2 in event_keys"), "{said}");
    for secret in [MASTER_KEY, new_key] {
        assert!(!said.contains(secret), "no key is printed: {said}");
    }
    let after = sealed(database_url, event).await;
    assert!(
        after.iter().zip(&before).all(|(a, b)| a != b),
        "every event key was re-sealed"
    );

    // The old key no longer starts the cloud, and says why.
    let out = cloud_cmd(database_url, dir.path(), MASTER_KEY)
        .arg("serve")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        !out.status.success(),
        "the old key is refused at start: {said}"
    );
    assert!(
        said.contains("does not open the root key of organizer")
            && said.contains("start with the new master key"),
        "{said}"
    );

    // The new one does, and everything sealed still signs.
    let cloud = CloudProcess::start_with(
        database_url,
        dir.path(),
        &[("CLOUD_KEYS__MASTER_KEY", new_key.to_string())],
    )
    .ready(&http)
    .await;
    let token = admin_token(&http, &cloud).await;
    sell_and_admit(&http, &cloud, &token, &eid).await;
    let resp = http
        .post(cloud.url(&format!("/events/{eid}/keys")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the organizer's root opens under the new key and certifies a new event key"
    );
}

mod a_rekeyed_database_signs_under_the_new_key_and_refuses_the_old {
    use super::super::process::PgDatabase;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("cloud.db").display()
        );
        super::rekey_scenario(&url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let db = PgDatabase::create("rekey").await;
        super::rekey_scenario(&db.url()).await;
    }
}
