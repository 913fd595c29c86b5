//! The flash sale through HAProxy in front of three replicas: concurrent
//! buyers, each request balanced to any replica, get exactly the capacity;
//! and with one replica SIGKILLed mid-sale, every order a buyer was told is
//! paid is paid, with its tickets, and nothing is oversold.

use super::{Cluster, served_by};
use crate::common::{TestApp, event_body};
use crate::shop::count;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A free event of one tier of `capacity`, on sale, and `n` buyers' tokens.
pub async fn free_sale(app: &TestApp, capacity: i64, n: usize) -> (String, Vec<String>) {
    let org = app.organizer("org@example.com").await;
    let mut body = event_body();
    body["tiers"] = json!([{"tier": 1, "name": "Drop", "price_minor": 0, "capacity": capacity}]);
    let (st, e) = app.post("/events", Some(&org.access), body).await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let eid = e["id"].as_str().unwrap().to_string();
    let (st, v) = app
        .patch(
            &format!("/events/{eid}/status"),
            &org.access,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = app
        .put(
            &format!("/events/{eid}/sales-policy"),
            &org.access,
            json!({"max_tickets_per_customer": 1000, "resale_enabled": false, "resale_max_percent": 100}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut buyers = Vec::new();
    for i in 0..n {
        buyers.push(app.register(&format!("fan{i}@example.com")).await.access);
    }
    (eid, buyers)
}

/// The database agrees with itself: every paid order has all its tickets,
/// every ticket a paid order, and every seat is counted once (available,
/// held or issued). Returns the tickets issued.
pub async fn consistent(app: &TestApp, eid: &str) -> i64 {
    let q = |sql: &'static str| count(app, sql, &[]);
    assert_eq!(
        q(
            "SELECT COUNT(*) FROM orders o WHERE o.status = 'paid' AND o.quantity <> \
           (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id)"
        )
        .await,
        0,
        "no paid order without all its tickets"
    );
    assert_eq!(
        q(
            "SELECT COUNT(*) FROM tickets t LEFT JOIN orders o ON o.id = t.order_id \
           WHERE o.id IS NULL OR o.status <> 'paid'"
        )
        .await,
        0,
        "no ticket without a paid order"
    );
    let issued = count(
        app,
        "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status = 'issued'",
        &[eid],
    )
    .await;
    let held = count(
        app,
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM orders \
         WHERE event_id = $1 AND status = 'pending'",
        &[eid],
    )
    .await;
    let org = app.login("org@example.com", crate::common::PASSWORD).await;
    let (_, e) = app.get(&format!("/events/{eid}"), &org.access).await;
    let available = e["tiers"][0]["available"].as_i64().expect("available");
    let capacity = e["tiers"][0]["capacity"].as_i64().expect("capacity");
    assert_eq!(
        available + issued + held,
        capacity,
        "every seat is available, held by a pending order or issued, once"
    );
    issued
}

/// One buyer's purchase, retried with the same `Idempotency-Key` while
/// the answer is not final (a replica died with the request, or the
/// balancer had no replica for it): the order it ends with, if any.
async fn buy(
    app: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Option<Value> {
    for _ in 0..40 {
        let sent = app
            .post(format!("{base}/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        let Ok(resp) = sent else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match resp.status() {
            StatusCode::CREATED | StatusCode::OK => {
                return Some(resp.json().await.expect("an order"));
            }
            StatusCode::CONFLICT => return None,
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected answer {other}: {:?}", resp.text().await),
        }
    }
    panic!("no final answer for {key} after 40 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_haproxy_sell_exactly_the_capacity() {
    const CAPACITY: i64 = 120;
    let cluster = Cluster::start(3, &[]).await;
    let app = &cluster.app;
    let (eid, buyers) = free_sale(app, CAPACITY, 20).await;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..30 {
        let (api, token, eid) = (app.api(), buyers[task % buyers.len()].clone(), eid.clone());
        tasks.spawn(async move {
            let mut got = 0i64;
            let mut by = BTreeSet::new();
            for attempt in 0..8 {
                let quantity = 1 + (task + attempt) % 2;
                let body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": quantity}]});
                let key = format!("t{task}-a{attempt}");
                // A 503 (the replica's pool busy on a loaded box) is retried
                // with the same key, as a client does.
                let (st, o) = loop {
                    let (st, h, o) = api
                        .post(
                            "/orders",
                            &token,
                            &[("Idempotency-Key", &key)],
                            body.clone(),
                        )
                        .await;
                    by.insert(served_by(&h));
                    if st != StatusCode::SERVICE_UNAVAILABLE {
                        break (st, o);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                match st {
                    StatusCode::CREATED | StatusCode::OK => {
                        assert_eq!(o["status"], "paid", "a free order is paid at once: {o}");
                        got += quantity as i64;
                    }
                    StatusCode::CONFLICT => {}
                    other => panic!("unexpected answer {other}: {o}"),
                }
            }
            (got, by)
        });
    }
    let mut sold = 0;
    let mut replicas = BTreeSet::new();
    for (got, by) in tasks.join_all().await {
        sold += got;
        replicas.extend(by);
    }
    assert_eq!(
        replicas.len(),
        3,
        "the balancer spread the buyers over every replica: {replicas:?}"
    );
    assert_eq!(sold, CAPACITY, "the buyers got exactly the capacity");
    assert_eq!(
        consistent(app, &eid).await,
        CAPACITY,
        "exactly the capacity issued"
    );
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM orders WHERE status = 'pending'",
            &[]
        )
        .await,
        0,
        "no order left holding seats"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_sale_loses_no_paid_order() {
    const CAPACITY: i64 = 160;
    let mut cluster = Cluster::start(3, &[]).await;
    let (eid, buyers) = free_sale(&cluster.app, CAPACITY, 20).await;
    let sold = Arc::new(AtomicI64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..20 {
        let client = cluster.app.client.clone();
        let base = cluster.app.url("");
        let (token, eid, sold) = (
            buyers[task % buyers.len()].clone(),
            eid.clone(),
            sold.clone(),
        );
        tasks.spawn(async move {
            let mut paid = BTreeMap::new();
            for attempt in 0..10 {
                let body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]});
                let key = format!("t{task}-a{attempt}");
                if let Some(o) = buy(&client, &base, &token, &key, &body).await
                    && o["status"] == "paid"
                {
                    paid.insert(o["id"].as_str().unwrap().to_string(), key);
                    sold.fetch_add(1, Ordering::Relaxed);
                }
            }
            paid
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sold.load(Ordering::Relaxed) < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sale got going: {}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.kill9(1);
    let mut told_paid = BTreeMap::new();
    for paid in tasks.join_all().await {
        told_paid.extend(paid);
    }
    let app = &cluster.app;
    let issued = consistent(app, &eid).await;
    assert!(issued <= CAPACITY, "no oversell: {issued}");
    for oid in told_paid.keys() {
        let n = count(
            app,
            "SELECT COUNT(*) FROM orders o WHERE o.id = $1 AND o.status = 'paid' \
             AND (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id AND t.status = 'issued') = 1",
            &[oid],
        )
        .await;
        assert_eq!(
            n, 1,
            "order {oid} was answered as paid: it is paid, with its ticket"
        );
    }
    assert_eq!(
        issued,
        told_paid.len() as i64,
        "every issued ticket belongs to an order a buyer was told is paid (a retry \
         with the same key finds what the killed replica committed)"
    );
    assert!(
        told_paid.len() as i64 > 40,
        "the sale went on after the kill: {}",
        told_paid.len()
    );
}
