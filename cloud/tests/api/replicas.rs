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

/// The newest migration this build embeds (the number its file starts with).
fn newest_migration() -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    std::fs::read_dir(&dir)
        .expect("migrations folder")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.split('_').next()?.parse::<i64>().ok()
        })
        .max()
        .expect("at least one migration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_waits_for_the_one_holding_the_migration_lock() {
    let db = PgDatabase::create("gh_lockwait").await;
    // Someone (another replica, mid-migration) holds the lock.
    let mut holder = db.connect().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(cloud::store::migrate::MIGRATION_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let starting = CloudProcess::start(&db.url(), dir.path());
    let mut conn = db.connect().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = \
             (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica queues on the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables, 0,
        "nothing is migrated while another holds the lock"
    );
    drop(holder);
    let replica = starting.ready(&http).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        applied as usize,
        migration_files(),
        "the lock released, it migrates"
    );
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_binary_refuses_a_database_migrated_by_a_newer_release() {
    let db = PgDatabase::create("gh_newer").await;
    let migrate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cloud"))
            .arg("migrate")
            .env("CLOUD_DATABASE__URL", db.url())
            .output()
            .expect("cloud migrate runs")
    };
    assert!(migrate().status.success());
    // What the next release's migration leaves in the table.
    let newer = newest_migration() + 1;
    let mut conn = db.connect().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from a newer release', TRUE, '\\x00'::bytea, 1)",
    )
    .bind(newer)
    .execute(&mut conn)
    .await
    .unwrap();

    let expected = format!(
        "the database schema is at migration {newer}, newer than this binary knows (its newest is {})",
        newest_migration()
    );
    let out = migrate();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cloud migrate refuses: {err}");
    assert!(err.contains(&expected), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLOUD_DATABASE__URL", db.url())
        .env("CLOUD_DATA_DIR", dir.path())
        .env("CLOUD_SERVER__BIND", "127.0.0.1:0")
        .env("CLOUD_AUTH__JWT_SECRET", crate::process::JWT_SECRET)
        .env("CLOUD_KEYS__MASTER_KEY", crate::process::MASTER_KEY)
        .output()
        .expect("cloud serve runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cloud serve refuses to start: {err}");
    assert!(err.contains(&expected), "{err}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        rows as usize,
        migration_files() + 1,
        "the refusal wrote nothing"
    );
}
