//! Replicas of a new release starting at the same moment against one fresh
//! PostgreSQL database (a Deployment rolled out, a compose `--scale`): each
//! runs the migrations at start-up, and they must not race.

use super::common::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use super::process::{CloudProcess, PgDatabase};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

const REPLICAS: usize = 4;

fn migration_files() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    std::fs::read_dir(&dir)
        .expect("migrations folder")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_started_at_once_on_a_fresh_database_migrate_it_once_and_all_serve() {
    let db = PgDatabase::create("gh_replicas").await;
    let dirs: Vec<_> = (0..REPLICAS)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let http = reqwest::Client::new();
    // Every process is spawned before any is awaited: they all connect and
    // reach the migrations together.
    let starting: Vec<_> = dirs
        .iter()
        .map(|d| CloudProcess::start(&db.url(), d.path()))
        .collect();
    let mut replicas = Vec::new();
    for s in starting {
        replicas.push(s.ready(&http).await);
    }

    let mut conn = db.connect().await;
    let rows = sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .expect("the migrations table exists");
    assert_eq!(
        rows.len(),
        migration_files(),
        "every migration is recorded exactly once, whoever applied it"
    );
    assert!(
        rows.iter().all(|r| r.get::<bool, _>("success")),
        "no migration is left half-applied"
    );
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        held, 0,
        "no replica keeps the migration lock after start-up"
    );
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        admins, 1,
        "the bootstrap admin is created once, not per replica"
    );

    // One database behind them all: an account made through one replica
    // signs in through every other.
    let (s, v) = http
        .post(replicas[0].url("/auth/register"))
        .json(&json!({"email": "fan@replicas.test", "password": PASSWORD, "display_name": "Fan"}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .expect("register");
    assert_eq!(s, StatusCode::CREATED, "register: {:?}", v.text().await);
    for (i, r) in replicas.iter().enumerate() {
        for (email, password) in [
            ("fan@replicas.test", PASSWORD),
            (ADMIN_EMAIL, ADMIN_PASSWORD),
        ] {
            let resp = http
                .post(r.url("/auth/login"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .expect("login");
            assert_eq!(
                resp.status(),
                StatusCode::OK,
                "{email} signs in at replica {i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_commands_run_at_once_as_init_containers_all_succeed_and_apply_each_migration_once()
{
    let db = PgDatabase::create("gh_migrate").await;
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_cloud"))
                .arg("migrate")
                .env("CLOUD_DATABASE__URL", db.url())
                .env("RUST_LOG", "info")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("cloud migrate starts")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("cloud migrate runs");
        assert!(
            out.status.success(),
            "every init container succeeds: {out:?}"
        );
    }
    let mut conn = db.connect().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        applied as usize,
        migration_files(),
        "each migration applied once"
    );
}
