//! What the PostgreSQL benches share: their `--name value` arguments, a
//! throwaway database, bench users, and an active one-tier event.

use cloud::crypto::KeyVault;
use cloud::crypto::signing::new_event_key;
use cloud::model::{EventStatus, Role, TierId, UserId, new_event_id};
use cloud::store::{EventRecord, Store, TierRecord, UserRecord};
use sqlx::Connection;
use std::time::{SystemTime, UNIX_EPOCH};

/// The integer after `name` on the command line, or `default`.
pub fn arg(name: &str, default: i64) -> i64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Wall clock, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A user record with a unique email.
pub fn user(role: Role, display_name: &str) -> UserRecord {
    let id = UserId::new();
    UserRecord {
        id,
        email: format!("bench-{id}@gatehouse.test"),
        password_hash: "x".into(),
        display_name: display_name.into(),
        role,
        country: None,
        birth_year: None,
        created_at: 1,
        updated_at: 1,
    }
}

/// A database created on `DATABASE_URL_PG`'s server (default
/// `postgres://postgres@127.0.0.1:5432/test`, options after `?` kept) and dropped, with its
/// connections, when this is dropped (also when a check fails).
#[derive(Debug)]
pub struct ThrowawayDb {
    /// The new database's URL.
    pub url: String,
    base: String,
    name: String,
}

impl ThrowawayDb {
    /// Creates `gh_bench_<prefix>_<pid>`; PostgreSQL is required.
    pub async fn create(prefix: &str) -> Self {
        let base = std::env::var("DATABASE_URL_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("gh_bench_{prefix}_{}", std::process::id());
        // Options after `?` (e.g. `sslmode=disable`) carry over.
        let (path, query) = base.split_once('?').unwrap_or((&base, ""));
        let url = format!(
            "{}/{name}{}{query}",
            path.rsplit_once('/').expect("URL ends with /DBNAME").0,
            if query.is_empty() { "" } else { "?" },
        );
        let mut admin = sqlx::PgConnection::connect(&base)
            .await
            .expect("PostgreSQL is required for this benchmark");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let _ = admin.close().await;
        Self { url, base, name }
    }
}

impl Drop for ThrowawayDb {
    fn drop(&mut self) {
        let (base, sql) = (
            self.base.clone(),
            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

/// An active event of `organizer` (already stored) starting in an hour,
/// with one tier of `capacity` at 25.00 EUR.
pub async fn active_event(
    store: &dyn Store,
    vault: &KeyVault,
    organizer: UserId,
    name: &str,
    capacity: i64,
) -> EventRecord {
    let id = new_event_id();
    let now = now_ms();
    let key = new_event_key(store, vault, organizer, id, now + 86_400_000, now)
        .await
        .expect("event key");
    let event = EventRecord {
        id,
        organizer_id: organizer,
        name: name.into(),
        description: String::new(),
        venue: "Loopback".into(),
        starts_at: now + 3_600_000,
        ends_at: now + 7_200_000,
        currency: "EUR".into(),
        status: EventStatus::Draft,
        manifest_version: 0,
        created_at: now,
        zones: Vec::new(),
        updated_at: now,
        tiers: vec![TierRecord {
            id: TierId::new(),
            event_id: id,
            tier: 1,
            name: "GA".into(),
            price_minor: 2_500,
            currency: "EUR".into(),
            capacity,
            allocated: 0,
            zone_mask: 1,
            zone: "Floor".into(),
        }],
    };
    store.create_event(&event, &key).await.expect("event");
    store
        .set_event_status(id, EventStatus::Active, organizer, now)
        .await
        .expect("activate");
    event
}
