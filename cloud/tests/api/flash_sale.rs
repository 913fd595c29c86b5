//! Flash sale: 200 concurrent buyer tasks × 20 attempts against one tier of
//! 1,000 tickets, over real HTTP. Exactly 1,000 are issued; no order is paid
//! without its tickets and no ticket exists without its paid order; no slot
//! is left held or double-taken.

use crate::both;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;

const TASKS: usize = 200;
const ATTEMPTS: usize = 20;
const BUYERS: usize = 40;
const CAPACITY: i64 = 1_000;

async fn flash_sale_issues_exactly_the_capacity(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let mut body = event_body();
    body["tiers"] = json!([{"tier": 1, "name": "Drop", "price_minor": 0, "capacity": CAPACITY}]);
    let (st, e) = app.post("/events", Some(&org.access), body).await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let eid = e["id"].as_str().unwrap().to_string();
    app.patch(
        &format!("/events/{eid}/status"),
        &org.access,
        json!({"status": "active"}),
    )
    .await;
    app.put(&format!("/events/{eid}/sales-policy"), &org.access,
        json!({"max_tickets_per_customer": 1000, "resale_enabled": false, "resale_max_percent": 100})).await;
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        buyers.push(app.register(&format!("fan{i}@example.com")).await.access);
    }

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (api, token, eid) = (app.api(), buyers[task % BUYERS].clone(), eid.clone());
        tasks.spawn(async move {
            let mut got = 0i64;
            for attempt in 0..ATTEMPTS {
                let quantity = 1 + (task + attempt) % 2;
                let key = format!("t{task}-a{attempt}");
                let body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": quantity}]});
                let (st, _, o) = api
                    .post("/orders", &token, &[("Idempotency-Key", &key)], body)
                    .await;
                match st {
                    StatusCode::CREATED => {
                        assert_eq!(o["status"], "paid", "a free order is paid at once: {o}");
                        assert_eq!(o["ticket_ids"].as_array().unwrap().len(), quantity, "{o}");
                        got += quantity as i64;
                    }
                    StatusCode::CONFLICT => {}
                    other => panic!("unexpected answer {other}: {o}"),
                }
            }
            got
        });
    }
    let sold: i64 = tasks.join_all().await.into_iter().sum();
    assert_eq!(sold, CAPACITY, "the buyers got exactly the capacity");

    let tier: String = {
        let (_, e) = app.get(&format!("/events/{eid}"), &org.access).await;
        assert_eq!(e["tiers"][0]["available"], 0);
        e["tiers"][0]["id"].as_str().unwrap().to_string()
    };
    let q = |sql: &'static str| count(&app, sql, &[]);
    assert_eq!(
        q("SELECT COUNT(*) FROM tickets WHERE status = 'issued'").await,
        CAPACITY,
        "exactly the capacity issued"
    );
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
    assert_eq!(
        q("SELECT COUNT(*) FROM orders WHERE status = 'pending'").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM tier_slots WHERE tier_id = $1 AND ticket_id IS NOT NULL",
            &[&tier]
        )
        .await,
        CAPACITY
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM tier_slots WHERE tier_id = $1 AND ticket_id IS NULL",
            &[&tier]
        )
        .await,
        0,
        "no slot free or held"
    );
    assert_eq!(
        count(&app, "SELECT allocated FROM tiers WHERE id = $1", &[&tier]).await,
        CAPACITY
    );
    assert_eq!(
        q("SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM purchase_counts").await,
        CAPACITY,
        "purchase counters agree with the sales"
    );
    assert_eq!(
        q("SELECT COUNT(DISTINCT ticket_id) FROM manifest_changes").await,
        CAPACITY,
        "every ticket reached the manifest"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM manifest_pending").await,
        0,
        "none is left waiting for the sequencer"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM manifest_versions").await,
        q("SELECT manifest_version FROM events").await,
        "manifest versions run from 1 to the head with none missing"
    );
}
both!(flash_sale_issues_exactly_the_capacity, |c| {
    c.database.max_connections = 16;
    c.server.request_timeout_ms = 60_000;
});
