//! Backup and restore of the cloud's database, with the tools and commands
//! docs/operations.md gives: `pg_dump -Fc` / `pg_restore` for PostgreSQL,
//! `sqlite3 .backup` (online, consistent) for SQLite. A cloud started on
//! the restored copy serves what was there at the backup and nothing after.

use super::common::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use super::process::{CloudProcess, PgDatabase};
use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;

async fn register(http: &reqwest::Client, cloud: &CloudProcess, email: &str) {
    let resp = http
        .post(cloud.url("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "display_name": "Fan"}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), StatusCode::CREATED, "register {email}");
}

async fn login(http: &reqwest::Client, cloud: &CloudProcess, email: &str, password: &str) -> u16 {
    http.post(cloud.url("/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} is required for the backup tests: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_dump_restored_into_a_new_database_serves_the_accounts_it_held() {
    let http = reqwest::Client::new();
    let live = PgDatabase::create("gh_backup").await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = CloudProcess::start(&live.url(), dir.path())
        .ready(&http)
        .await;
    register(&http, &cloud, "before@backup.test").await;

    let dump = dir.path().join("cloud.dump");
    run(Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&dump)
        .arg(live.url()));
    register(&http, &cloud, "after@backup.test").await;
    drop(cloud);

    let restored = PgDatabase::create("gh_restore").await;
    run(Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(restored.url())
        .arg(&dump));
    let dir2 = tempfile::tempdir().unwrap();
    let cloud = CloudProcess::start(&restored.url(), dir2.path())
        .ready(&http)
        .await;
    assert_eq!(
        login(&http, &cloud, "before@backup.test", PASSWORD).await,
        200,
        "the backed-up account signs in"
    );
    assert_eq!(
        login(&http, &cloud, ADMIN_EMAIL, ADMIN_PASSWORD).await,
        200,
        "the admin too"
    );
    assert_eq!(
        login(&http, &cloud, "after@backup.test", PASSWORD).await,
        401,
        "an account made after the backup is not in it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_sqlite_backup_opens_as_a_working_cloud_database() {
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let cloud = CloudProcess::start(&url, dir.path()).ready(&http).await;
    register(&http, &cloud, "before@backup.test").await;
    // Taken while the cloud runs (WAL mode): .backup copies a consistent
    // snapshot, committed pages from the WAL included.
    let copy = dir.path().join("backup.db");
    run(Command::new("sqlite3")
        .arg(&db)
        .arg(format!(".backup '{}'", copy.display())));
    register(&http, &cloud, "after@backup.test").await;
    drop(cloud);

    let dir2 = tempfile::tempdir().unwrap();
    let restored = dir2.path().join("cloud.db");
    std::fs::copy(&copy, &restored).unwrap();
    let url = format!("sqlite://{}?mode=rwc", restored.display());
    let cloud = CloudProcess::start(&url, dir2.path()).ready(&http).await;
    assert_eq!(
        login(&http, &cloud, "before@backup.test", PASSWORD).await,
        200,
        "the backed-up account signs in"
    );
    assert_eq!(
        login(&http, &cloud, "after@backup.test", PASSWORD).await,
        401,
        "nothing after the backup"
    );
}
