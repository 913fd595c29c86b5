//! Test helpers for commerce: a real `localstripe` process per test (a
//! stateful Stripe fake from PyPI, started on a free loopback port), the
//! app configured against it, a browser-like confirmation of a
//! PaymentIntent, signed webhook deliveries, and what a gate sees (the
//! cloud's signed manifest opened with sync-protocol).
//!
//! localstripe is required: if it cannot be started the test fails (run
//! `scripts/setup`, or `pip install localstripe`).

use crate::common::*;
use crate::tickets::{key_ring, now};
use cloud::config::Config;
use cloud::crypto::KeyVault;
use cloud::crypto::signing::event_signer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use sync_protocol::manifest::ManifestState;
use sync_protocol::{CheckinLog, EventId, GatePolicy, KeyRing, Manifest, Outcome, decide};

pub const STRIPE_KEY: &str = "sk_test_gatehouse";
pub const WEBHOOK_SECRET: &str = "whsec_gatehouse_test_secret";
pub const CARD_OK: &str = "4242424242424242";
/// Declined when charged (localstripe; Stripe's own list uses it too).
pub const CARD_DECLINED: &str = "4000000000000341";

/// A localstripe process, killed on drop.
pub struct LocalStripe {
    pub port: u16,
    pub client: reqwest::Client,
    _child: tokio::process::Child,
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl LocalStripe {
    /// Starts localstripe and waits until it answers. A start that exits
    /// at once (say a port another process took between `free_port` and
    /// its bind) is retried on another port; after five, the panic carries
    /// what localstripe said.
    pub async fn start() -> Self {
        let client = reqwest::Client::new();
        let mut said = String::new();
        for attempt in 0..5u64 {
            let port = free_port();
            // Its log goes to a file (a pipe nobody drains could block it).
            let log = tempfile::NamedTempFile::new().expect("a temp file for localstripe's log");
            let mut child = tokio::process::Command::new("localstripe")
                .args(["--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log.reopen().expect("the log file")))
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("localstripe is required for the Stripe tests (scripts/setup installs it): {e}")
                });
            for _ in 0..300 {
                if let Ok(Some(status)) = child.try_wait() {
                    let err = std::fs::read_to_string(log.path()).unwrap_or_default();
                    let tail: Vec<&str> = err.lines().rev().take(5).collect();
                    said = format!("port {port}: {status}: {}", tail.join(" | "));
                    break;
                }
                let up = client
                    .get(format!("http://127.0.0.1:{port}/v1/customers"))
                    .basic_auth(STRIPE_KEY, Some(""))
                    .send()
                    .await;
                if up.is_ok() {
                    return Self {
                        port,
                        client,
                        _child: child,
                    };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill().await;
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
        panic!("localstripe did not start (tried five ports); last: {said}");
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// POSTs a form to localstripe and returns the JSON answer.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{}", self.base(), path.trim_start_matches('/')))
            .basic_auth(STRIPE_KEY, Some(""))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(form))
            .send()
            .await
            .expect("localstripe answers");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{}", self.base(), path.trim_start_matches('/')))
            .basic_auth(STRIPE_KEY, Some(""))
            .send()
            .await
            .expect("localstripe answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Makes localstripe deliver its events to `url`, signed with the secret.
    pub async fn register_webhook(&self, url: &str) {
        let (st, v) = self
            .post(
                "/_config/webhooks/gatehouse",
                &[("url", url), ("secret", WEBHOOK_SECRET)],
            )
            .await;
        assert!(st.is_success(), "webhook registration: {st} {v}");
    }

    /// What the payer's browser does with Stripe.js: a card payment method,
    /// attached to the intent, then confirm. Returns the confirm answer.
    pub async fn pay(&self, intent: &str, card: &str) -> (StatusCode, Value) {
        let (st, pm) = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", card),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2034"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        assert!(st.is_success(), "payment method: {pm}");
        let pm = pm["id"].as_str().expect("pm id").to_string();
        let (st, v) = self
            .post(
                &format!("/v1/payment_intents/{intent}"),
                &[("payment_method", &pm)],
            )
            .await;
        assert!(st.is_success(), "attach payment method: {v}");
        self.post(&format!("/v1/payment_intents/{intent}/confirm"), &[])
            .await
    }
}

/// The app wired to a fresh localstripe (API base, keys, webhook target).
pub async fn stripe_app(backend: Backend, tweak: fn(&mut Config)) -> (TestApp, LocalStripe) {
    let stripe = LocalStripe::start().await;
    let base = stripe.base();
    let app = TestApp::spawn(backend, move |c: &mut Config| {
        c.payments.stripe_api_base = base;
        c.payments.stripe_secret_key = cloud::config::Secret::new(STRIPE_KEY);
        c.payments.webhook_secret = cloud::config::Secret::new(WEBHOOK_SECRET);
        tweak(c);
    })
    .await;
    stripe.register_webhook(&app.url("/payments/webhook")).await;
    (app, stripe)
}

/// Like `both!`, for `async fn name(app: TestApp, stripe: LocalStripe)`.
#[macro_export]
macro_rules! both_stripe {
    ($name:ident) => {
        $crate::both_stripe!($name, |_c| {});
    };
    ($name:ident, |$c:ident| $tweak:block) => {
        mod $name {
            #[allow(unused_variables)]
            fn tweak($c: &mut cloud::config::Config) $tweak
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (app, stripe) = $crate::shop::stripe_app($crate::common::Backend::Sqlite, tweak).await;
                super::$name(app, stripe).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (app, stripe) = $crate::shop::stripe_app($crate::common::Backend::Postgres, tweak).await;
                super::$name(app, stripe).await;
            }
        }
    };
}

/// A cheap, `'static` handle on the app's HTTP API for spawned tasks.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// POST with headers; returns status, headers and JSON.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl TestApp {
    pub fn api(&self) -> Api {
        Api {
            client: self.client.clone(),
            base: self.url(""),
        }
    }

    /// POST with headers; returns status, headers and JSON.
    pub async fn post_with(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.api().post(path, token, headers, body).await
    }

    /// Delivers a webhook body with a signature header (or none).
    pub async fn webhook(&self, body: &str, signature: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(self.url("/payments/webhook"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            req = req.header("stripe-signature", s);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Orders `quantity` of `tier` as `buyer`; asserts 201.
    pub async fn order(&self, buyer: &Session, eid: &str, tier: u16, quantity: u32) -> Value {
        let (st, v) = self
            .post(
                "/orders",
                Some(&buyer.access),
                json!({"event_id": eid, "items": [{"tier": tier, "quantity": quantity}]}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "order: {v}");
        v
    }

    /// Polls an order until `pred` holds (webhooks arrive asynchronously).
    pub async fn wait_order(&self, token: &str, oid: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let (st, v) = self.get(&format!("/orders/{oid}"), token).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            if pred(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("order {oid} never reached the expected state: {last}");
    }

    /// Tier `tier`'s available count.
    pub async fn available(&self, token: &str, eid: &str, tier: u64) -> i64 {
        let (_, e) = self.get(&format!("/events/{eid}"), token).await;
        e["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == tier)
            .unwrap()["available"]
            .as_i64()
            .unwrap()
    }
}

/// What a gate knows: the organizer's key ring and the event's manifest as
/// the cloud signs it now (full manifest from the store).
pub async fn gate(app: &TestApp, org: &Session, eid: &str) -> (KeyRing, ManifestState) {
    let event: EventId = eid.parse().unwrap();
    let ring = key_ring(app, org, eid).await;
    let store = cloud::store::connect(&app.database_url, 2)
        .await
        .expect("store");
    let signer = event_signer(store.as_ref(), &KeyVault::new([0; 32]), event)
        .await
        .expect("signer");
    let (_, bytes) = store
        .signed_manifest(event, &signer, now().unix_secs)
        .await
        .expect("signed manifest");
    store.close().await;
    let mut state = ManifestState::empty(event);
    state
        .replace(Manifest::open(&bytes, &ring, &event).expect("the manifest verifies"))
        .expect("replace");
    (ring, state)
}

/// Brings a gate's manifest up to date with the cloud's signed delta.
pub async fn apply_delta(app: &TestApp, ring: &KeyRing, eid: &str, state: &mut ManifestState) {
    let event: EventId = eid.parse().unwrap();
    let store = cloud::store::connect(&app.database_url, 2)
        .await
        .expect("store");
    let signer = event_signer(store.as_ref(), &KeyVault::new([0; 32]), event)
        .await
        .expect("signer");
    let (changes, base) = store
        .manifest_changes_since(event, state.version())
        .await
        .expect("manifest changes");
    assert!(changes.version > state.version(), "a newer version");
    let delta = changes
        .sign_delta(state.version(), &base, &signer, now().unix_secs)
        .expect("signed delta");
    store.close().await;
    let mut node_ring = ring.clone();
    for cert in &signer.certs {
        node_ring.insert(cert.clone()).unwrap();
    }
    state
        .apply(
            sync_protocol::ManifestDelta::open(&delta, &node_ring, &event).expect("delta verifies"),
        )
        .expect("delta chains on");
}

/// The gate's decision for a credential.
pub fn admit(ring: &KeyRing, manifest: &ManifestState, eid: &str, credential: &str) -> Outcome {
    let event: EventId = eid.parse().unwrap();
    decide(
        credential,
        ring,
        manifest,
        &CheckinLog::new(event),
        &GatePolicy::entry(event),
        now(),
    )
    .outcome
}

/// The credential of a ticket, read by someone allowed to.
pub async fn credential(app: &TestApp, token: &str, tid: &str) -> String {
    let (st, t) = app.get(&format!("/tickets/{tid}"), token).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    t["credential"].as_str().expect("a credential").to_string()
}

/// A row count straight from the database (invariant checks).
pub async fn count(app: &TestApp, sql: &str, binds: &[&str]) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.expect("db");
    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = q.bind(b.to_string());
    }
    let n = q.fetch_one(&pool).await.expect("count");
    pool.close().await;
    n
}

/// An organizer, their active event and a registered buyer.
pub async fn setup(app: &TestApp) -> (Session, String, Session) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer = app.register("buyer@example.com").await;
    (org, eid, buyer)
}

/// A paid GA ticket of `buyer` (manual payment confirmed by `org`).
pub async fn bought(app: &TestApp, org: &Session, eid: &str, buyer: &Session) -> (String, String) {
    let oid = id(&app.order(buyer, eid, 1, 1).await);
    let (st, o) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{o}");
    (oid, o["ticket_ids"][0].as_str().unwrap().to_string())
}

/// The ids of the tickets `who` holds.
pub async fn ticket_ids(app: &TestApp, who: &Session) -> Vec<String> {
    let (_, list) = app.get("/tickets", &who.access).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// Now, unix seconds (a webhook signature's timestamp).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Starts paying `oid` with Stripe as its buyer: the payment (201), whose
/// `provider_ref` is the PaymentIntent.
pub async fn start_stripe(app: &TestApp, buyer: &Session, oid: &str) -> Value {
    let (st, p) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&buyer.access),
            json!({"method": "stripe"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    p
}

/// The PaymentIntent id of a Stripe payment just started for `oid`.
pub async fn stripe_intent(app: &TestApp, buyer: &Session, oid: &str) -> String {
    start_stripe(app, buyer, oid).await["provider_ref"]
        .as_str()
        .expect("the payment names its PaymentIntent")
        .to_string()
}

/// A Stripe event's body, as Stripe sends it.
pub fn stripe_event(evt: &str, kind: &str, object: Value) -> String {
    json!({"id": evt, "object": "event", "type": kind, "data": {"object": object}}).to_string()
}

/// The body of `payment_intent.succeeded` (event `evt`) for `intent`,
/// paying `amount` EUR cents of order `oid`.
pub fn succeeded_body(evt: &str, intent: &str, amount: i64, oid: &str) -> String {
    let object = json!({"id": intent, "object": "payment_intent", "amount": amount, "currency": "eur",
        "status": "succeeded", "metadata": {"order_id": oid}});
    stripe_event(evt, "payment_intent.succeeded", object)
}

/// A `Stripe-Signature` header for `body`, signed now with the test secret.
pub fn signed_now(body: &str) -> String {
    cloud::payments::webhook::sign(body.as_bytes(), WEBHOOK_SECRET, unix_now())
}
