//! The background workers run on every replica: the order-expiry sweeper
//! and the notifications outbox (organizer webhooks here). Three of each
//! race for the same work; each piece of work is done once: every expired
//! hold returns its seats once, every webhook is delivered once under its
//! outbox id, and the deliveries were made by more than one replica.

use super::Cluster;
use crate::common::id;
use crate::notify::peers::WebhookSink;
use crate::shop::count;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_workers_on_every_replica_do_each_job_once() {
    const HELD: usize = 20;
    const PAID: usize = 8;
    const PINGS: usize = 24;
    let sink = WebhookSink::start().await;
    let cluster = Cluster::start(3, &[("CLOUD_COMMERCE__HOLD_SECS", "2".into())]).await;
    let app = &cluster.app;
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let (st, ep) = app
        .post(
            "/notifications/webhook-endpoints",
            Some(&org.access),
            json!({"url": sink.url("ok"), "event_types": ["*"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    let ep = id(&ep);

    // Paid at once (before the 2 s hold ends), or left to expire.
    for i in 0..HELD + PAID {
        let buyer = app.register(&format!("fan{i}@example.com")).await;
        let oid = id(&app.order(&buyer, &eid, 1, 1).await);
        if i < PAID {
            let (st, o) = app
                .put(
                    &format!("/orders/{oid}/status"),
                    &org.access,
                    json!({"status": "paid"}),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{o}");
        }
    }
    for n in 0..PINGS {
        let (st, v) = app
            .post(
                "/notifications/webhook",
                Some(&org.access),
                json!({"endpoint_id": ep, "type": "test.ping", "data": {"n": n}}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }

    until("the sweepers expire every unpaid hold", async || {
        count(
            app,
            "SELECT COUNT(*) FROM orders WHERE status = 'pending'",
            &[],
        )
        .await
            == 0
    })
    .await;
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM orders WHERE status = 'expired'",
            &[]
        )
        .await,
        HELD as i64
    );
    assert_eq!(
        app.available(&org.access, &eid, 1).await,
        100 - PAID as i64,
        "each expired hold gave its seat back once: {}",
        cluster.logs()
    );

    until("the outbox workers deliver every webhook", async || {
        count(
            app,
            "SELECT COUNT(*) FROM notifications WHERE channel = 'webhook' AND status <> 'delivered'",
            &[],
        )
        .await
            == 0
    })
    .await;
    let queued = count(
        app,
        "SELECT COUNT(*) FROM notifications WHERE channel = 'webhook'",
        &[],
    )
    .await;
    // Pings, and per paid order one order.paid and one ticket.issued.
    assert_eq!(queued, (PINGS + 2 * PAID) as i64);
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in sink.received("ok") {
        let wid = r.headers["webhook-id"].to_str().unwrap().to_string();
        *per_id.entry(wid).or_default() += 1;
    }
    assert_eq!(per_id.len() as i64, queued, "every webhook arrived");
    assert!(
        per_id.values().all(|n| *n == 1),
        "no webhook was sent twice by two replicas: {per_id:?}"
    );
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM notification_attempts a JOIN notifications n ON n.id = a.notification_id \
             WHERE n.channel = 'webhook'",
            &[]
        )
        .await,
        queued,
        "one attempt per webhook"
    );
    let workers = count(
        app,
        "SELECT COUNT(DISTINCT a.worker) FROM notification_attempts a \
         JOIN notifications n ON n.id = a.notification_id WHERE n.channel = 'webhook'",
        &[],
    )
    .await;
    assert!(
        workers >= 2,
        "the deliveries were shared by the replicas' workers, not made by one: {workers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_workers_of_three_replicas_mint_each_ticket_once() {
    use crate::anvil::{Anvil, CHAIN_ID, MINTER_KEY};
    use crate::chain::{contract_of, minted, mints_of};
    let anvil = Anvil::start(&["--block-time", "1"]).await;
    let cluster = Cluster::start(
        3,
        &[
            ("CLOUD_CHAIN__RPC_URL", anvil.url.clone()),
            ("CLOUD_CHAIN__CHAIN_ID", CHAIN_ID.to_string()),
            ("CLOUD_CHAIN__MINTER_KEY", MINTER_KEY.into()),
            ("CLOUD_CHAIN__POLL_MS", "50".into()),
            ("CLOUD_CHAIN__MAX_BACKOFF_SECS", "1".into()),
            (
                "CLOUD_CHAIN__METADATA_BASE_URL",
                "http://127.0.0.1/nft/".into(),
            ),
        ],
    )
    .await;
    let app = &cluster.app;
    let (org, eid, first) = crate::shop::setup(app).await;
    let buyers = [
        first,
        app.register("b2@example.com").await,
        app.register("b3@example.com").await,
    ];
    let mut orders = Vec::new();
    for i in 0..6 {
        let v = app.order(&buyers[i % 3], &eid, 1, 3).await;
        let (st, o) = app
            .put(
                &format!("/orders/{}/status", id(&v)),
                &org.access,
                json!({"status": "paid"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{o}");
        orders.push(o);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for o in &orders {
        while !minted(app, &org, o["id"].as_str().unwrap()).await {
            assert!(
                Instant::now() < deadline,
                "every order is minted within 60 s: {}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let contract = contract_of(app, &org, &eid)
        .await
        .expect("the event's contract");
    let mut tickets = 0;
    for o in &orders {
        for t in o["ticket_ids"].as_array().unwrap() {
            assert_eq!(
                mints_of(&anvil, contract, t.as_str().unwrap()).await,
                1,
                "ticket {t} is minted once, whichever replica claimed it"
            );
            tickets += 1;
        }
    }
    assert_eq!(tickets, 18);
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM chain_jobs WHERE status <> 'done'",
            &[]
        )
        .await,
        0,
        "no job left behind"
    );
}
