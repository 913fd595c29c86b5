//! Issuing tickets on one event, at several event sizes: reservations/s
//! (the `create_order` that `POST /orders` calls, through the store),
//! issuance/s (`POST /orders` on a free tier over HTTP: hold, tickets,
//! signed credentials, manifest, in this process's service) and
//! webhook-settles/s (signed `payment_intent.succeeded` deliveries for
//! orders whose PaymentIntents were made in localstripe). Every figure is
//! taken on a fresh event of each capacity, the same number of orders at
//! every size, and checked afterwards: no oversell, every ticket in the
//! manifest, versions gap-free.
//!
//! ```sh
//! cargo bench -p cloud --bench issuance                                  # 5k, 100k, 500k
//! cargo bench -p cloud --bench issuance -- --capacities 5000,500000 --orders 3000 --workers 32
//! ```
//!
//! Needs PostgreSQL (`DATABASE_URL_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`; a throwaway database is
//! created and dropped) and `localstripe` on `PATH` (`scripts/setup`).
//! Prints one `BENCH issuance ...` line per capacity.

// Not every bench uses every shared helper (active_event is mint's and
// reservations').
#[allow(dead_code)]
mod support;

use cloud::auth::jwt::Tokens;
use cloud::config::{Config, Secret};
use cloud::crypto::KeyVault;
use cloud::crypto::signing::new_event_key;
use cloud::model::{EventStatus, OrderId, Role, SessionId, TierId, UserId, new_event_id};
use cloud::store::{
    EventRecord, NewOnlineOrder, OrderItemRecord, SalesPolicy, Store, StoreError, TierRecord,
    UserRecord,
};
use serde_json::{Value, json};
use sqlx::Connection;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use support::{ThrowawayDb, now_ms};

const JWT: &str = "bench-jwt-secret-0123456789abcdef0123";
const STRIPE_KEY: &str = "sk_test_gatehouse";
const WEBHOOK_SECRET: &str = "whsec_gatehouse_bench";
const PRICE: i64 = 2_500;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(name: &str, default: i64) -> i64 {
    support::arg(name, default)
}

fn user(i: i64) -> UserRecord {
    let role = if i == 0 {
        Role::Organizer
    } else {
        Role::Customer
    };
    support::user(role, &format!("Bench {i}"))
}

/// An active event with one tier of `capacity` at `price`, no purchase
/// limit to speak of, and `workers` buyers.
async fn setup(
    store: &dyn Store,
    capacity: i64,
    price: i64,
    workers: i64,
) -> (EventRecord, Vec<UserId>) {
    let org = user(0);
    store.create_user(&org).await.expect("organizer");
    let id = new_event_id();
    let now = now_ms();
    let vault = KeyVault::new([7; 32]);
    let key = new_event_key(store, &vault, org.id, id, now + 86_400_000, now)
        .await
        .expect("event key");
    let event = EventRecord {
        id,
        organizer_id: org.id,
        name: "On-sale".into(),
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
            name: "Floor".into(),
            price_minor: price,
            currency: "EUR".into(),
            capacity,
            allocated: 0,
            zone_mask: 1,
            zone: "Floor".into(),
        }],
    };
    store.create_event(&event, &key).await.expect("event");
    store
        .set_event_status(id, EventStatus::Active, org.id, now)
        .await
        .expect("activate");
    let policy = SalesPolicy {
        max_tickets_per_customer: 1_000_000,
        resale_enabled: false,
        resale_max_percent: 100,
    };
    store
        .set_sales_policy(id, &policy, now)
        .await
        .expect("policy");
    let mut buyers = Vec::new();
    for i in 1..=workers {
        let u = user(i);
        store.create_user(&u).await.expect("buyer");
        buyers.push(u.id);
    }
    (event, buyers)
}

/// Takes one unit of work from `left`; false when none is left.
fn take(left: &AtomicI64) -> bool {
    left.fetch_sub(1, Ordering::Relaxed) > 0
}

/// `orders` one-ticket holds through the store, by every buyer at once.
async fn reservations(
    store: Arc<dyn Store>,
    event: &EventRecord,
    buyers: &[UserId],
    orders: i64,
) -> f64 {
    let tier = event.tiers[0].clone();
    let left = Arc::new(AtomicI64::new(orders));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in buyers {
        let (store, buyer, event_id, tier, left) =
            (store.clone(), *buyer, event.id, tier.clone(), left.clone());
        tasks.spawn(async move {
            while take(&left) {
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
                        expires_at: now + 3_600_000,
                        idempotency: None,
                        purchase_limit: 1_000_000,
                    };
                    match store.create_order(&new, now).await {
                        Ok(_) => break,
                        Err(StoreError::Retryable(_)) => {}
                        Err(e) => panic!("reservation failed: {e}"),
                    }
                }
            }
        });
    }
    tasks.join_all().await;
    orders as f64 / started.elapsed().as_secs_f64()
}

/// The service in this process on port 0, with Stripe pointed at
/// localstripe.
struct Server {
    base: String,
    client: reqwest::Client,
    tokens: Tokens,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), cloud::ServeError>>,
}

impl Server {
    async fn start(url: &str, stripe: &str, connections: u32) -> Self {
        let jwt = Secret::new(JWT);
        let mut config = Config {
            data_dir: std::env::temp_dir(),
            ..Config::default()
        };
        config.database.url = Secret::new(url);
        config.database.max_connections = connections;
        config.auth.jwt_secret = jwt.clone();
        config.keys.master_key = Secret::new("07".repeat(32));
        config.rate_limit.enabled = false;
        config.payments.stripe_api_base = stripe.to_string();
        config.payments.stripe_secret_key = Secret::new(STRIPE_KEY);
        config.payments.webhook_secret = Secret::new(WEBHOOK_SECRET);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(cloud::serve(config, listener, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self {
            base,
            client,
            tokens: Tokens::new(&jwt, 3_600),
            stop: Some(stop),
            task,
        }
    }

    fn token(&self, buyer: UserId) -> String {
        self.tokens
            .issue(
                buyer,
                Role::Customer,
                SessionId::new(),
                (now_ms() / 1000) as u64,
            )
            .expect("token")
    }

    /// `POST /orders` for one ticket; the order's JSON.
    async fn order(&self, token: &str, event: &EventRecord) -> Value {
        let body = json!({"event_id": event.id, "items": [{"tier": 1, "quantity": 1}]});
        let resp = self
            .client
            .post(format!("{}/orders", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST /orders");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status.as_u16(), 201, "POST /orders: {v}");
        v
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

/// `orders` free one-ticket orders over HTTP (each paid and issued on the
/// spot), by every buyer at once.
async fn issuance(
    server: &Arc<Server>,
    event: &EventRecord,
    buyers: &[UserId],
    orders: i64,
) -> f64 {
    let left = Arc::new(AtomicI64::new(orders));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in buyers {
        let (server, token, event, left) = (
            server.clone(),
            server.token(*buyer),
            event.clone(),
            left.clone(),
        );
        tasks.spawn(async move {
            while take(&left) {
                let v = server.order(&token, &event).await;
                assert_eq!(v["status"], "paid", "a free order is paid at once: {v}");
            }
        });
    }
    tasks.join_all().await;
    orders as f64 / started.elapsed().as_secs_f64()
}

/// A localstripe process on a free port, killed on drop.
struct LocalStripe {
    base: String,
    _child: tokio::process::Child,
}

impl LocalStripe {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // `--from-scratch`: an empty localstripe, not the state an earlier
        // run left in /tmp/localstripe.pickle (without it, a run right
        // after another did not see localstripe answer within 20 s).
        let child = tokio::process::Command::new("localstripe")
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("localstripe is required (scripts/setup installs it)");
        let base = format!("http://127.0.0.1:{port}/");
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client
                .get(format!("{base}v1/customers"))
                .basic_auth(STRIPE_KEY, Some(""))
                .send()
                .await
                .is_ok()
            {
                return Self {
                    base,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("localstripe did not start");
    }
}

/// Makes `orders` pending orders with a PaymentIntent each in localstripe
/// (not timed), then delivers their signed `payment_intent.succeeded`
/// events, by `workers` deliverers at once (timed).
async fn webhook_settles(
    server: &Arc<Server>,
    event: &EventRecord,
    buyers: &[UserId],
    orders: i64,
) -> f64 {
    let left = Arc::new(AtomicI64::new(orders));
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in buyers {
        let (server, token, event, left) = (
            server.clone(),
            server.token(*buyer),
            event.clone(),
            left.clone(),
        );
        tasks.spawn(async move {
            let mut made = Vec::new();
            while take(&left) {
                let order = server.order(&token, &event).await;
                let id = order["id"].as_str().expect("order id").to_string();
                let resp = server
                    .client
                    .post(format!("{}/orders/{id}/payments", server.base))
                    .bearer_auth(&token)
                    .json(&json!({"method": "stripe"}))
                    .send()
                    .await
                    .expect("start payment");
                assert!(
                    resp.status().is_success(),
                    "start payment: {}",
                    resp.status()
                );
                let p: Value = resp.json().await.expect("payment JSON");
                let intent = p["provider_ref"].as_str().expect("intent id").to_string();
                made.push((id, intent));
            }
            made
        });
    }
    let paid: Vec<(String, String)> = tasks.join_all().await.into_iter().flatten().collect();
    let work = Arc::new(std::sync::Mutex::new(paid));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in buyers {
        let (server, work) = (server.clone(), work.clone());
        tasks.spawn(async move {
            loop {
                let Some((order, intent)) = work.lock().expect("work").pop() else {
                    return;
                };
                let body = json!({
                    "id": format!("evt_{intent}"),
                    "type": "payment_intent.succeeded",
                    "data": {"object": {"id": intent, "object": "payment_intent", "amount": PRICE,
                        "amount_received": PRICE, "currency": "eur", "status": "succeeded",
                        "metadata": {"order_id": order}}}
                })
                .to_string();
                let sig = cloud::payments::webhook::sign(
                    body.as_bytes(),
                    WEBHOOK_SECRET,
                    now_ms() / 1000,
                );
                let resp = server
                    .client
                    .post(format!("{}/payments/webhook", server.base))
                    .header("stripe-signature", sig)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("webhook");
                let status = resp.status();
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                assert!(
                    status.is_success() && v["outcome"] == "applied",
                    "webhook: {status} {v}"
                );
            }
        });
    }
    tasks.join_all().await;
    orders as f64 / started.elapsed().as_secs_f64()
}

async fn scalar(c: &mut sqlx::PgConnection, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind.to_string())
        .fetch_one(c)
        .await
        .expect("count")
}

/// Checks an event after `tickets` were issued: exactly that many tickets
/// and taken slots (no oversell), every ticket in the manifest, versions
/// 1..=V with none missing, nothing left pending. Returns V.
async fn check_issued(url: &str, event: &EventRecord, tickets: i64) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    let (e, tier) = (event.id.to_string(), event.tiers[0].id.to_string());
    let issued = scalar(
        &mut c,
        "SELECT COUNT(*) FROM tickets WHERE event_id = $1",
        &e,
    )
    .await;
    let taken = scalar(
        &mut c,
        "SELECT COUNT(*) FROM tier_slots WHERE tier_id = $1 AND ticket_id IS NOT NULL",
        &tier,
    )
    .await;
    let allocated = scalar(&mut c, "SELECT allocated FROM tiers WHERE id = $1", &tier).await;
    let listed = scalar(
        &mut c,
        "SELECT COUNT(DISTINCT ticket_id) FROM manifest_changes WHERE event_id = $1",
        &e,
    )
    .await;
    let versions = scalar(
        &mut c,
        "SELECT COUNT(*) FROM manifest_versions WHERE event_id = $1",
        &e,
    )
    .await;
    let head = scalar(
        &mut c,
        "SELECT manifest_version FROM events WHERE id = $1",
        &e,
    )
    .await;
    let pending = scalar(
        &mut c,
        "SELECT COUNT(*) FROM manifest_pending WHERE event_id = $1",
        &e,
    )
    .await;
    let _ = c.close().await;
    assert!(
        issued == tickets && taken == tickets && allocated == tickets,
        "oversell or lost tickets: {tickets} sold, {issued} tickets, {taken} slots taken, allocated {allocated}"
    );
    assert_eq!(listed, tickets, "every issued ticket is in the manifest");
    assert_eq!(
        versions, head,
        "manifest versions are 1..=head with none missing"
    );
    assert_eq!(pending, 0, "nothing is left waiting for the sequencer");
    head
}

#[tokio::main]
async fn main() {
    let workers = num("--workers", 32).max(1);
    let orders = num("--orders", 3_000).max(1);
    let webhook_orders = num("--webhook-orders", 2_000).max(1);
    let mut capacities: Vec<i64> = arg("--capacities")
        .unwrap_or_else(|| "5000,100000,500000".into())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("--capacities: numbers, comma-separated")
        })
        .collect();
    // Without `--bench` (what `cargo bench` passes; `cargo test --benches`
    // and scripts/run-doc-commands do not): one small run that checks the
    // bench works, not a figure.
    let (workers, orders, webhook_orders) = if std::env::args().any(|a| a == "--bench") {
        (workers, orders, webhook_orders)
    } else {
        capacities = vec![capacities.first().copied().unwrap_or(5_000).min(500)];
        (workers.min(4), orders.min(40), webhook_orders.min(20))
    };
    let db = ThrowawayDb::create("issuance").await;
    let url = db.url.clone();
    let stripe = LocalStripe::start().await;
    let store = cloud::store::connect(&url, workers as u32)
        .await
        .expect("store");
    let server = Arc::new(Server::start(&url, &stripe.base, workers as u32).await);
    for capacity in capacities {
        assert!(
            capacity >= orders.max(webhook_orders),
            "capacity {capacity} is below the orders to place"
        );
        let (held, buyers) = setup(store.as_ref(), capacity, PRICE, workers).await;
        let reserve_per_s = reservations(store.clone(), &held, &buyers, orders).await;
        let (free, buyers) = setup(store.as_ref(), capacity, 0, workers).await;
        let issue_per_s = issuance(&server, &free, &buyers, orders).await;
        let issue_versions = check_issued(&url, &free, orders).await;
        let (paid, buyers) = setup(store.as_ref(), capacity, PRICE, workers).await;
        let settle_per_s = webhook_settles(&server, &paid, &buyers, webhook_orders).await;
        let settle_versions = check_issued(&url, &paid, webhook_orders).await;
        println!(
            "BENCH issuance backend=postgres workers={workers} capacity={capacity} orders={orders} \
             reservations_per_s={reserve_per_s:.0} issuance_per_s={issue_per_s:.0} \
             issuance_versions={issue_versions} webhook_orders={webhook_orders} \
             webhook_settles_per_s={settle_per_s:.0} webhook_versions={settle_versions} oversell=0"
        );
    }
    store.close().await;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
}
