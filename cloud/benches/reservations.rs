//! Reservations per second on one hot tier, with zero oversell checked
//! afterwards: through the store (the `create_order` that `POST /orders`
//! calls), through the REST API (the service in this process, each worker a
//! customer with its own token), and, for comparison, the same order
//! transaction taking capacity from a single counter row instead.
//!
//! ```sh
//! cargo bench -p cloud --bench reservations                      # PostgreSQL, 32 workers
//! cargo bench -p cloud --bench reservations -- --workers 64 --capacity 40000
//! ```
//!
//! Needs PostgreSQL (`DATABASE_URL_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`); creates and drops a throwaway
//! database. Prints one `BENCH commerce ...` line.

mod support;

use cloud::auth::jwt::Tokens;
use cloud::config::{Config, Secret};
use cloud::crypto::KeyVault;
use cloud::model::{OrderId, Role, SessionId, UserId};
use cloud::store::{EventRecord, NewOnlineOrder, OrderItemRecord, SalesPolicy, Store, StoreError};
use sqlx::Connection;
use std::sync::Arc;
use std::time::Instant;
use support::{ThrowawayDb, active_event, arg, now_ms, user};

async fn setup(store: &dyn Store, capacity: i64, workers: i64) -> (EventRecord, Vec<UserId>) {
    let org = user(Role::Organizer, "Bench organizer");
    store.create_user(&org).await.expect("organizer");
    let vault = KeyVault::new([7; 32]);
    let event = active_event(store, &vault, org.id, "Flash", capacity).await;
    let mut buyers = Vec::new();
    for i in 1..=workers {
        let u = user(Role::Customer, &format!("Bench {i}"));
        store.create_user(&u).await.expect("buyer");
        buyers.push(u.id);
    }
    (event, buyers)
}

/// Every worker reserves one ticket at a time until the tier is sold out.
async fn slots(store: Arc<dyn Store>, event: &EventRecord, buyers: &[UserId]) -> (i64, f64) {
    let tier = &event.tiers[0];
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in buyers {
        let (store, buyer, event_id, tier) = (store.clone(), *buyer, event.id, tier.clone());
        tasks.spawn(async move {
            let mut held = 0i64;
            loop {
                let now = now_ms();
                let new = NewOnlineOrder {
                    id: OrderId::new(),
                    event_id,
                    buyer_id: buyer,
                    items: vec![OrderItemRecord {
                        tier_id: tier.id,
                        tier: tier.tier,
                        quantity: 1,
                        unit_price_minor: tier.price_minor,
                    }],
                    total_minor: tier.price_minor,
                    currency: tier.currency.clone(),
                    expires_at: now + 600_000,
                    idempotency: None,
                    purchase_limit: 1_000_000,
                };
                match store.create_order(&new, now).await {
                    Ok(_) => held += 1,
                    // Sold out ends the worker; any other refusal is retried.
                    Err(StoreError::SoldOut { .. }) => return held,
                    Err(StoreError::Retryable(_)) => {}
                    Err(e) => panic!("reservation failed: {e}"),
                }
            }
        });
    }
    let held: i64 = tasks.join_all().await.into_iter().sum();
    (held, started.elapsed().as_secs_f64())
}

/// The same order transaction with the single counter row instead of
/// slots: event status read, order, item, purchase count, then
/// `UPDATE tiers SET allocated = allocated + 1 WHERE allocated < capacity`
/// last (so the hot row is locked only for that update and the commit).
async fn counter(url: &str, event: &EventRecord, buyers: &[UserId]) -> (i64, f64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(buyers.len() as u32)
        .connect(url)
        .await
        .expect("pool");
    let tier = event.tiers[0].id.to_string();
    let event_id = event.id.to_string();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in buyers {
        let (pool, tier, event_id, buyer) = (
            pool.clone(),
            tier.clone(),
            event_id.clone(),
            buyer.to_string(),
        );
        tasks.spawn(async move {
            let mut held = 0i64;
            loop {
                let now = now_ms();
                let order = OrderId::new().to_string();
                let mut tx = pool.begin().await.expect("begin");
                let _: String = sqlx::query_scalar("SELECT status FROM events WHERE id = $1")
                    .bind(&event_id)
                    .fetch_one(&mut *tx)
                    .await
                    .expect("event");
                sqlx::query(
                    "INSERT INTO orders (id, event_id, buyer_id, channel, status, payment_method, total_minor, currency, \
                     created_at, updated_at, kind, quantity, expires_at) \
                     VALUES ($1, $2, $3, 'online', 'pending', 'none', 2500, 'EUR', $4, $4, 'primary', 1, $5)",
                )
                .bind(&order)
                .bind(&event_id)
                .bind(&buyer)
                .bind(now)
                .bind(now + 600_000)
                .execute(&mut *tx)
                .await
                .expect("order");
                sqlx::query("INSERT INTO order_items (order_id, tier_id, tier, quantity, unit_price_minor) VALUES ($1, $2, 1, 1, 2500)")
                    .bind(&order)
                    .bind(&tier)
                    .execute(&mut *tx)
                    .await
                    .expect("item");
                sqlx::query(
                    "INSERT INTO purchase_counts (event_id, buyer_id, quantity) VALUES ($1, $2, 1) \
                     ON CONFLICT (event_id, buyer_id) DO UPDATE SET quantity = purchase_counts.quantity + 1",
                )
                .bind(&event_id)
                .bind(&buyer)
                .execute(&mut *tx)
                .await
                .expect("count");
                let n = sqlx::query("UPDATE tiers SET allocated = allocated + 1 WHERE id = $1 AND allocated < capacity")
                    .bind(&tier)
                    .execute(&mut *tx)
                    .await
                    .expect("counter")
                    .rows_affected();
                if n == 0 {
                    return held;
                }
                tx.commit().await.expect("commit");
                held += 1;
            }
        });
    }
    let held: i64 = tasks.join_all().await.into_iter().sum();
    let secs = started.elapsed().as_secs_f64();
    pool.close().await;
    (held, secs)
}

/// The same reservations through the REST API: the service runs in this
/// process on port 0 and each worker `POST /orders` as its own customer.
async fn http(url: &str, event: &EventRecord, buyers: &[UserId]) -> (i64, f64) {
    let jwt = Secret::new("bench-jwt-secret-0123456789abcdef0123");
    let mut config = Config {
        data_dir: std::env::temp_dir(),
        ..Config::default()
    };
    config.database.url = Secret::new(url);
    config.database.max_connections = buyers.len() as u32;
    config.auth.jwt_secret = jwt.clone();
    config.keys.master_key = Secret::new("07".repeat(32));
    config.rate_limit.enabled = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cloud::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let tokens = Tokens::new(&jwt, 3_600);
    let secs_now = (now_ms() / 1000) as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in buyers {
        let token = tokens
            .issue(*buyer, Role::Customer, SessionId::new(), secs_now)
            .expect("token");
        let (client, url) = (client.clone(), format!("{base}/orders"));
        let body = serde_json::json!({"event_id": event.id, "items": [{"tier": 1, "quantity": 1}]});
        tasks.spawn(async move {
            let mut held = 0i64;
            loop {
                let resp = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("POST /orders");
                match resp.status().as_u16() {
                    201 => held += 1,
                    409 => return held,
                    other => panic!(
                        "POST /orders answered {other}: {}",
                        resp.text().await.unwrap_or_default()
                    ),
                }
            }
        });
    }
    let held: i64 = tasks.join_all().await.into_iter().sum();
    let secs = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    (held, secs)
}

async fn scalar(url: &str, sql: &'static str, bind: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    let n = sqlx::query_scalar(sql)
        .bind(bind.to_string())
        .fetch_one(&mut c)
        .await
        .expect("count");
    let _ = c.close().await;
    n
}

#[tokio::main]
async fn main() {
    let workers = arg("--workers", 32).max(1);
    let capacity = arg("--capacity", 20_000).max(1);
    // Without `--bench` (what `cargo bench` passes; `cargo test --benches`
    // and scripts/run-doc-commands do not): a small run that checks the
    // bench works, not a figure.
    let (workers, capacity) = if std::env::args().any(|a| a == "--bench") {
        (workers, capacity)
    } else {
        (workers.min(4), capacity.min(100))
    };
    let db = ThrowawayDb::create("commerce").await;
    let url = db.url.clone();

    let store = cloud::store::connect(&url, workers as u32)
        .await
        .expect("store");
    let (event, buyers) = setup(store.as_ref(), capacity, workers).await;
    let (held, secs) = slots(store.clone(), &event, &buyers).await;
    let tier = event.tiers[0].id.to_string();
    let held_slots = scalar(
        &url,
        "SELECT COUNT(*) FROM tier_slots WHERE tier_id = $1 AND order_id IS NOT NULL",
        &tier,
    )
    .await;
    let free_slots = scalar(
        &url,
        "SELECT COUNT(*) FROM tier_slots WHERE tier_id = $1 AND order_id IS NULL",
        &tier,
    )
    .await;
    let pending = scalar(
        &url,
        "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'pending'",
        &event.id.to_string(),
    )
    .await;
    store.close().await;
    let oversell = held - capacity;
    assert!(
        held == capacity && held_slots == capacity && free_slots == 0 && pending == capacity,
        "oversell or lost stock: held {held}, slots held {held_slots}, free {free_slots}, orders {pending}"
    );
    let store = cloud::store::connect(&url, 2).await.expect("store");
    let (rest, rest_buyers) = setup(store.as_ref(), capacity, workers).await;
    let policy = SalesPolicy {
        max_tickets_per_customer: 1_000_000,
        resale_enabled: false,
        resale_max_percent: 100,
    };
    store
        .set_sales_policy(rest.id, &policy, now_ms())
        .await
        .expect("policy");
    let (baseline, baseline_buyers) = setup(store.as_ref(), capacity, workers).await;
    store.close().await;
    let (via_http, http_secs) = http(&url, &rest, &rest_buyers).await;
    let http_pending = scalar(
        &url,
        "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'pending'",
        &rest.id.to_string(),
    )
    .await;
    assert!(
        via_http == capacity && http_pending == capacity,
        "over HTTP: {via_http} answered, {http_pending} orders"
    );
    let (counted, counter_secs) = counter(&url, &baseline, &baseline_buyers).await;
    assert_eq!(
        counted, capacity,
        "the counter design sells exactly the capacity too"
    );

    println!(
        "BENCH commerce backend=postgres workers={workers} capacity={capacity} reservations={held} \
         secs={secs:.2} reservations_per_s={:.0} oversell={oversell} http_reservations_per_s={:.0} \
         single_counter_per_s={:.0}",
        held as f64 / secs,
        via_http as f64 / http_secs,
        counted as f64 / counter_secs
    );
}
