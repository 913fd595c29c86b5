//! Group commit (`orders::group`, `store::group`): concurrent free orders of
//! one event, and concurrent Stripe settlements, are paid in shared
//! transactions with one manifest version per batch, on PostgreSQL; SQLite
//! pays each alone. Either way the answers are those of the one-order path:
//! no oversell, an over-limit buyer and a reused idempotency key in a batch
//! get their own answers while the others are issued.

use crate::both;
use crate::both_stripe;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::Outcome;

/// Strings straight from the test's database.
async fn strings(app: &TestApp, sql: &str, binds: &[&str]) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.expect("db");
    let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = q.bind(b.to_string());
    }
    let v = q.fetch_all(&pool).await.expect(sql);
    pool.close().await;
    v
}

/// A number about one event (`$1` = its id).
async fn of_event(app: &TestApp, sql: &str, eid: &str) -> i64 {
    count(app, sql, &[eid]).await
}

/// The value of a metric series whose line names every label in `labels`.
async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An active event whose tier 1 is free with `capacity` seats, at most
/// `limit` tickets a buyer; its id.
async fn free_event(app: &TestApp, org: &Session, capacity: i64, limit: i64) -> String {
    let mut body = event_body();
    body["tiers"] = json!([{"tier": 1, "name": "Free", "price_minor": 0, "capacity": capacity}]);
    let (st, e) = app.post("/events", Some(&org.access), body).await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let eid = id(&e);
    app.patch(
        &format!("/events/{eid}/status"),
        &org.access,
        json!({"status": "active"}),
    )
    .await;
    app.put(&format!("/events/{eid}/sales-policy"), &org.access,
        json!({"max_tickets_per_customer": limit, "resale_enabled": false, "resale_max_percent": 100})).await;
    eid
}

/// Holds the event row the way a batch locks it, from outside, until the
/// returned transaction ends: batches of the event queue up behind it.
async fn hold_event(
    app: &TestApp,
    eid: &str,
) -> (sqlx::AnyPool, sqlx::Transaction<'static, sqlx::Any>) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.expect("db");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT id FROM events WHERE id = $1 FOR NO KEY UPDATE")
        .bind(eid.to_string())
        .fetch_all(&mut *tx)
        .await
        .expect("lock the event");
    (pool, tx)
}

/// Waits until `n` requests of `kind` are inside the group commit.
async fn wait_in_flight(app: &TestApp, kind: &str, n: f64) {
    let label = format!("kind=\"{kind}\"");
    for _ in 0..400 {
        if metric(app, "cloud_group_commit_in_flight", &[&label]).await >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{n} {kind} requests never reached the group commit");
}

/// The event's chain is whole and every paid order of it is in exactly one
/// version, with its tickets' credentials verifying at a gate.
async fn assert_issued(app: &TestApp, org: &Session, eid: &str, tickets: i64) {
    let q = |sql: &'static str| of_event(app, sql, eid);
    assert_eq!(
        q("SELECT COUNT(*) FROM manifest_versions WHERE event_id = $1").await,
        q("SELECT manifest_version FROM events WHERE id = $1").await,
        "versions run from 1 to the head with none missing"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM manifest_pending WHERE event_id = $1").await,
        0,
        "nothing waits for the sequencer"
    );
    assert_eq!(
        q("SELECT COUNT(DISTINCT ticket_id) FROM manifest_changes WHERE event_id = $1").await,
        tickets,
        "every ticket is in the manifest"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM (SELECT t.order_id FROM manifest_changes mc JOIN tickets t ON t.id = mc.ticket_id \
           WHERE mc.event_id = $1 GROUP BY t.order_id HAVING COUNT(DISTINCT mc.version) > 1) AS split")
        .await,
        0,
        "an order's tickets appear in one version: a batch is one version"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status = 'issued'").await,
        tickets
    );
    assert_eq!(
        q("SELECT CAST(COALESCE(SUM(allocated), 0) AS BIGINT) FROM tiers WHERE event_id = $1")
            .await,
        tickets,
        "issued tickets are counted into their tiers"
    );
    assert_eq!(
        q(
            "SELECT COUNT(*) FROM tier_slots s JOIN tiers tr ON tr.id = s.tier_id \
           WHERE tr.event_id = $1 AND s.ticket_id IS NOT NULL"
        )
        .await,
        tickets,
        "each ticket took one slot"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM orders o WHERE o.event_id = $1 AND o.status = 'paid' AND o.quantity <> \
           (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id)")
        .await,
        0,
        "every paid order has all its tickets"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM orders o WHERE o.event_id = $1 AND o.status = 'paid' AND NOT EXISTS \
           (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = 'succeeded')")
        .await,
        0,
        "every paid order has its succeeded payment"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM orders o WHERE o.event_id = $1 AND o.status = 'paid' AND NOT EXISTS \
           (SELECT 1 FROM notifications n WHERE n.dedupe_key = 'order_confirmation:' || o.id)")
        .await,
        0,
        "every paid order's confirmation is in the outbox"
    );
    assert_eq!(
        q(
            "SELECT COUNT(*) FROM tickets t WHERE t.event_id = $1 AND NOT EXISTS \
           (SELECT 1 FROM chain_jobs j WHERE j.ticket_id = t.id AND j.kind = 'mint')"
        )
        .await,
        0,
        "every ticket has its mint job"
    );
    let (ring, manifest) = gate(app, org, eid).await;
    let creds = strings(
        app,
        "SELECT credential FROM tickets WHERE event_id = $1",
        &[eid],
    )
    .await;
    assert_eq!(creds.len() as i64, tickets);
    for c in &creds {
        assert_eq!(
            admit(&ring, &manifest, eid, c),
            Outcome::Admit,
            "every credential verifies and its ticket is valid in the manifest"
        );
    }
}

/// Buyers order one free ticket each at once; how many got one (the rest
/// must be answered 409 sold out). On PostgreSQL the event row is held from
/// outside until every request is inside the group commit, so they form
/// batches for certain.
async fn rush(app: &TestApp, eid: &str, buyers: &[String]) -> i64 {
    let hold = if app.backend == Backend::Postgres {
        Some(hold_event(app, eid).await)
    } else {
        None
    };
    let before = metric(app, "cloud_group_commit_in_flight", &["kind=\"free\""]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for token in buyers {
        let (api, eid, token) = (app.api(), eid.to_string(), token.clone());
        tasks.spawn(async move {
            let body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]});
            let (st, _, o) = api.post("/orders", &token, &[], body).await;
            match st {
                StatusCode::CREATED => {
                    assert_eq!(o["status"], "paid", "a free order is paid at once: {o}");
                    assert_eq!(o["ticket_ids"].as_array().unwrap().len(), 1, "{o}");
                    1
                }
                StatusCode::CONFLICT => {
                    assert_eq!(o["error"]["code"], "sold_out", "{o}");
                    0
                }
                other => panic!("unexpected answer {other}: {o}"),
            }
        });
    }
    if let Some((pool, tx)) = hold {
        wait_in_flight(app, "free", before + buyers.len() as f64).await;
        tx.rollback().await.expect("release the event");
        pool.close().await;
    }
    tasks.join_all().await.into_iter().sum()
}

/// Scenario: 24 buyers order one free ticket each at once from 30 seats,
/// then 24 more. The first 24 are issued (on PostgreSQL in batches, several
/// orders to one transaction and one version); of the next 24 exactly 6 get
/// a ticket and 18 are told sold out: a batch that cannot be served whole is
/// paid order by order, and the capacity is never passed.
async fn concurrent_free_orders_are_batched_and_never_oversell(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = free_event(&app, &org, 30, 10).await;
    let mut buyers = Vec::new();
    for i in 0..48 {
        buyers.push(app.register(&format!("fan{i}@example.com")).await.access);
    }
    assert_eq!(
        rush(&app, &eid, &buyers[..24]).await,
        24,
        "all fit: all issued"
    );
    assert_issued(&app, &org, &eid, 24).await;
    if app.backend == Backend::Postgres {
        let paid = ["kind=\"free\"", "outcome=\"paid\""];
        let orders = metric(&app, "cloud_group_commit_orders_total", &paid).await;
        let batches = metric(&app, "cloud_group_commit_batches_total", &paid).await;
        assert_eq!(orders, 24.0, "every order went through a batch");
        assert!(
            batches < orders,
            "batches held several orders ({batches} batches, {orders} orders)"
        );
        assert!(
            count(
                &app,
                "SELECT manifest_version FROM events WHERE id = $1",
                &[&eid]
            )
            .await
                <= batches as i64 + 1,
            "one manifest version per batch (and the door state's)"
        );
    }
    assert_eq!(
        rush(&app, &eid, &buyers[24..]).await,
        6,
        "exactly the seats left are sold"
    );
    assert_issued(&app, &org, &eid, 30).await;
}
both!(concurrent_free_orders_are_batched_and_never_oversell, |c| {
    c.database.max_connections = 16;
});

/// Scenario: one batch of free orders holds a buyer already at the purchase
/// limit, a retry with a used idempotency key and the same body, and one
/// with a used key and another body. The batch is refused, each of its
/// orders is paid alone: the limit is 409, the replay 200 with the first
/// order, the reused key 422, and the eight others are issued.
async fn a_batch_with_exceptions_answers_each_as_alone(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = free_event(&app, &org, 100, 2).await;
    let full = app.register("full@example.com").await;
    app.order(&full, &eid, 1, 2).await;
    let keyed = app.register("keyed@example.com").await;
    let first_body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]});
    let (st, _, first) = app
        .post_with(
            "/orders",
            &keyed.access,
            &[("Idempotency-Key", "k-1")],
            first_body.clone(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let mut others = Vec::new();
    for i in 0..8 {
        others.push(app.register(&format!("fan{i}@example.com")).await.access);
    }
    let hold = if app.backend == Backend::Postgres {
        Some(hold_event(&app, &eid).await)
    } else {
        None
    };
    let mut reqs: Vec<(&'static str, String, Option<&'static str>, Value)> = vec![
        ("limit", full.access.clone(), None, first_body.clone()),
        (
            "replay",
            keyed.access.clone(),
            Some("k-1"),
            first_body.clone(),
        ),
        (
            "reused",
            keyed.access.clone(),
            Some("k-1"),
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 2}]}),
        ),
    ];
    for t in &others {
        reqs.push(("fan", t.clone(), None, first_body.clone()));
    }
    let n = reqs.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (who, token, key, body) in reqs {
        let api = app.api();
        tasks.spawn(async move {
            let headers: Vec<(&str, &str)> = key.iter().map(|k| ("Idempotency-Key", *k)).collect();
            let (st, h, o) = api.post("/orders", &token, &headers, body).await;
            (who, st, h.get("idempotent-replayed").is_some(), o)
        });
    }
    if let Some((pool, tx)) = hold {
        // The first batch waits on the event row; everyone else queues
        // behind it, so the exceptions share a batch with the fans.
        wait_in_flight(&app, "free", n as f64).await;
        tx.rollback().await.expect("release the event");
        pool.close().await;
    }
    let mut fans = 0;
    for (who, st, replayed, o) in tasks.join_all().await {
        match who {
            "limit" => assert_error(st, &o, StatusCode::CONFLICT, "purchase_limit"),
            "replay" => {
                assert_eq!(st, StatusCode::OK, "a replay answers the first order: {o}");
                assert!(replayed, "and says it is one");
                assert_eq!(o["id"], first["id"], "the same order");
            }
            "reused" => assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{o}"),
            _ => {
                assert_eq!(st, StatusCode::CREATED, "{o}");
                assert_eq!(o["status"], "paid");
                fans += 1;
            }
        }
    }
    assert_eq!(fans, 8, "every plain order of the batch is issued");
    assert_issued(&app, &org, &eid, 2 + 1 + 8).await;
    if app.backend == Backend::Postgres {
        let refused = ["kind=\"free\"", "outcome=\"alone\""];
        assert!(
            metric(&app, "cloud_group_commit_batches_total", &refused).await >= 1.0,
            "the batch with the exceptions was refused and paid alone"
        );
    }
}
both!(a_batch_with_exceptions_answers_each_as_alone, |c| {
    c.database.max_connections = 16;
});

/// Scenario (PostgreSQL: SQLite has no group commit): a batch's COMMIT
/// fails (a deferred constraint trigger refuses it at commit time, the way
/// a lost connection or a full disk would surface). Every order of the
/// batch is answered 503 with what to do (send it again with the same
/// Idempotency-Key), never a 500, and nothing of it was written; once the
/// database accepts commits again, the retries with the same keys make each
/// order exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_commit_is_503_and_the_same_request_again_makes_the_order_once() {
    let app = TestApp::spawn(Backend::Postgres, |c| c.database.max_connections = 16).await;
    let org = app.organizer("org@example.com").await;
    let eid = free_event(&app, &org, 50, 2).await;
    let mut buyers = Vec::new();
    for i in 0..6 {
        buyers.push(app.register(&format!("fan{i}@example.com")).await.access);
    }
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&app.database_url).await.expect("db");
    for sql in [
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON orders \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&admin)
            .await
            .expect(sql);
    }
    let body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]});
    let send = || {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, token) in buyers.iter().enumerate() {
            let (api, token, body) = (app.api(), token.clone(), body.clone());
            tasks.spawn(async move {
                let key = format!("order-{i}");
                let (st, _, o) = api
                    .post(
                        "/orders",
                        &token,
                        &[("Idempotency-Key", key.as_str())],
                        body,
                    )
                    .await;
                (st, o)
            });
        }
        tasks
    };
    let (pool, tx) = hold_event(&app, &eid).await;
    let tasks = send();
    wait_in_flight(&app, "free", buyers.len() as f64).await;
    tx.rollback().await.expect("release the event");
    pool.close().await;
    for (st, o) in tasks.join_all().await {
        assert_error(st, &o, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        let msg = o["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("same Idempotency-Key"), "says what to do: {o}");
        assert!(
            !msg.contains("refused by the test"),
            "the database's words stay in the log: {o}"
        );
    }
    let failed = metric(
        &app,
        ORDERS_METRIC,
        &["kind=\"free\"", "outcome=\"failed\""],
    )
    .await;
    assert!(
        failed >= 1.0,
        "a batch commit failed ({failed} orders counted failed)"
    );
    assert_eq!(
        of_event(
            &app,
            "SELECT COUNT(*) FROM orders WHERE event_id = $1",
            &eid
        )
        .await,
        0,
        "a failed commit wrote nothing"
    );
    sqlx::query("DROP TRIGGER refuse_commit ON orders")
        .execute(&admin)
        .await
        .expect("drop the trigger");
    admin.close().await;
    for (st, o) in send().join_all().await {
        assert_eq!(st, StatusCode::CREATED, "the retry makes the order: {o}");
        assert_eq!(o["status"], "paid", "{o}");
    }
    for (st, o) in send().join_all().await {
        assert_eq!(
            st,
            StatusCode::OK,
            "a third send is a replay of the order: {o}"
        );
    }
    assert_issued(&app, &org, &eid, buyers.len() as i64).await;
}

const ORDERS_METRIC: &str = "cloud_group_commit_orders_total";

/// Scenario: twelve buyers' Stripe payments succeed at once and their
/// webhooks arrive together. Every order is paid once with its ticket and
/// no hold is left; a replayed event changes nothing; on PostgreSQL the
/// settlements shared transactions.
async fn concurrent_webhook_settles_are_batched(app: TestApp, _stripe: LocalStripe) {
    let org = app.organizer("org@example.com").await;
    // GA: 2,500 EUR cents.
    let eid = id(&app.active_event(&org).await);
    app.put(
        &format!("/events/{eid}/sales-policy"),
        &org.access,
        json!({"max_tickets_per_customer": 10, "resale_enabled": false, "resale_max_percent": 100}),
    )
    .await;
    let mut bodies = Vec::new();
    for i in 0..12 {
        let buyer = app.register(&format!("payer{i}@example.com")).await;
        let oid = id(&app.order(&buyer, &eid, 1, 1).await);
        let intent = stripe_intent(&app, &buyer, &oid).await;
        bodies.push(succeeded_body(
            &format!("evt_batch_{i}"),
            &intent,
            2500,
            &oid,
        ));
    }
    let replay = bodies[0].clone();
    let hold = if app.backend == Backend::Postgres {
        Some(hold_event(&app, &eid).await)
    } else {
        None
    };
    let n = bodies.len();
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let client = app.client.clone();
        let url = app.url("/payments/webhook");
        tasks.spawn(async move {
            let sig = signed_now(&body);
            let resp = client
                .post(url)
                .header("content-type", "application/json")
                .header("stripe-signature", sig)
                .body(body)
                .send()
                .await
                .expect("webhook");
            let st = resp.status();
            (st, resp.json::<Value>().await.unwrap_or(Value::Null))
        });
    }
    if let Some((pool, tx)) = hold {
        wait_in_flight(&app, "stripe", n as f64).await;
        tx.rollback().await.expect("release the event");
        pool.close().await;
    }
    for (st, ack) in tasks.join_all().await {
        assert_eq!(
            (st, ack["outcome"].as_str()),
            (StatusCode::OK, Some("applied")),
            "{ack}"
        );
    }
    let sig = signed_now(&replay);
    let (st, ack) = app.webhook(&replay, Some(&sig)).await;
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "a replayed event changes nothing: {ack}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'paid'",
            &[&eid]
        )
        .await,
        12
    );
    assert_eq!(
        count(
            &app,
            "SELECT CAST(COALESCE(SUM(h.held), 0) AS BIGINT) FROM tier_holds h JOIN tiers t ON t.id = h.tier_id \
             WHERE t.event_id = $1",
            &[&eid]
        )
        .await,
        0,
        "no hold is left once every order is paid"
    );
    assert_issued(&app, &org, &eid, 12).await;
    if app.backend == Backend::Postgres {
        let paid = ["kind=\"stripe\"", "outcome=\"paid\""];
        let orders = metric(&app, "cloud_group_commit_orders_total", &paid).await;
        let batches = metric(&app, "cloud_group_commit_batches_total", &paid).await;
        assert!(orders >= 2.0, "settlements were batched ({orders})");
        assert!(
            batches < orders,
            "a batch held several ({batches} for {orders})"
        );
    }
}
both_stripe!(concurrent_webhook_settles_are_batched, |c| {
    c.database.max_connections = 16;
});
