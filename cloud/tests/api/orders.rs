//! Orders without Stripe: holds, the lifecycle, manual and free payment,
//! expiry, idempotent retries, purchase limits, authorization, bad input.

use crate::both;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::Outcome;

async fn hold_cancel_manual_payment_and_lifecycle(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let other = app.register("other@example.com").await;

    let o = app.order(&buyer, &eid, 2, 2).await;
    assert_eq!(
        (
            o["status"].as_str(),
            o["total_minor"].as_i64(),
            o["currency"].as_str()
        ),
        (Some("pending"), Some(19_800), Some("EUR")),
        "two VIP seats at 99.00: {o}"
    );
    assert!(
        o["expires_at"].is_string(),
        "a pending order shows when its hold ends"
    );
    assert_eq!(
        app.available(&buyer.access, &eid, 2).await,
        0,
        "the hold takes stock"
    );
    let (st, v) = app
        .post(
            "/orders",
            Some(&other.access),
            json!({"event_id": eid, "items": [{"tier": 2, "quantity": 1}]}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "sold_out");

    let oid = id(&o);
    let (st, c) = app
        .post(
            &format!("/orders/{oid}/cancel"),
            Some(&buyer.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, c["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{c}"
    );
    assert_eq!(
        app.available(&buyer.access, &eid, 2).await,
        2,
        "cancelling returns the stock"
    );
    let (st, v) = app
        .post(
            &format!("/orders/{oid}/cancel"),
            Some(&buyer.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");

    // Manual payment: the buyer chooses it, the organizer confirms receipt.
    let o = app.order(&other, &eid, 2, 1).await;
    let oid = id(&o);
    let (st, p) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&other.access),
            json!({"method": "manual"}),
        )
        .await;
    assert_eq!(
        (st, p["provider"].as_str(), p["status"].as_str()),
        (StatusCode::CREATED, Some("manual"), Some("pending")),
        "{p}"
    );
    let (st, v) = app
        .put(
            &format!("/orders/{oid}/status"),
            &other.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, paid) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "paid", "reason": "bank ref 42"}),
        )
        .await;
    assert_eq!(
        (st, paid["status"].as_str(), paid["payment_method"].as_str()),
        (StatusCode::OK, Some("paid"), Some("manual")),
        "{paid}"
    );
    let tickets = paid["ticket_ids"].as_array().unwrap();
    assert_eq!(tickets.len(), 1, "a paid order has exactly its tickets");
    let tid = tickets[0].as_str().unwrap();
    let cred = credential(&app, &other.access, tid).await;
    let (ring, manifest) = gate(&app, &org, &eid).await;
    assert_eq!(
        admit(&ring, &manifest, &eid, &cred),
        Outcome::Admit,
        "the paid ticket is admitted"
    );
    let (_, list) = app
        .get(&format!("/orders/{oid}/payments"), &other.access)
        .await;
    assert_eq!(list[0]["status"], "succeeded", "{list}");

    // Only the documented steps.
    for (to, want) in [
        ("paid", StatusCode::CONFLICT),
        ("pending", StatusCode::CONFLICT),
        ("expired", StatusCode::CONFLICT),
    ] {
        let (st, v) = app
            .put(
                &format!("/orders/{oid}/status"),
                &org.access,
                json!({"status": to}),
            )
            .await;
        assert_error(st, &v, want, "illegal_transition");
    }
    let (st, f) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "fulfilled"}),
        )
        .await;
    assert_eq!(
        (st, f["status"].as_str()),
        (StatusCode::OK, Some("fulfilled"))
    );
    let (st, v) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "refunded"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");
    let (st, v) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "shipped"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (st, mine) = app
        .get(&format!("/orders/user/{}", other.user_id), &other.access)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    for listed in mine["items"].as_array().unwrap() {
        let (_, alone) = app
            .get(&format!("/orders/{}", id(listed)), &other.access)
            .await;
        assert!(!alone["items"].as_array().unwrap().is_empty(), "{alone}");
        assert_eq!(
            listed["items"], alone["items"],
            "a listed order carries the same items as when read alone"
        );
    }
    let (_, all) = app
        .get(
            &format!("/orders/user/{}?status=cancelled", buyer.user_id),
            &org.access,
        )
        .await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        1,
        "the organizer sees the buyer's orders of their event"
    );
}
both!(hold_cancel_manual_payment_and_lifecycle);

async fn holds_expire_and_return_to_stock(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let o = app.order(&buyer, &eid, 2, 2).await;
    assert_eq!(app.available(&buyer.access, &eid, 2).await, 0);
    let oid = id(&o);
    let (st, p) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&buyer.access),
            json!({"method": "manual"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let expired = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "expired")
        .await;
    assert!(expired["ticket_ids"].as_array().unwrap().is_empty());
    assert_eq!(
        app.available(&buyer.access, &eid, 2).await,
        2,
        "the sweeper returned the stock"
    );
    let (st, v) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");
    let (st, v) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&buyer.access),
            json!({"method": "manual"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
    let pending = count(
        &app,
        "SELECT COUNT(*) FROM tier_slots WHERE order_id IS NOT NULL AND ticket_id IS NULL",
        &[],
    )
    .await;
    assert_eq!(pending, 0, "no slot stays held by an expired order");
    let counted = count(
        &app,
        "SELECT CAST(COALESCE(SUM(held), 0) AS BIGINT) FROM tier_holds",
        &[],
    )
    .await;
    assert_eq!(counted, 0, "and the hold counters agree");
}
both!(holds_expire_and_return_to_stock, |c| {
    c.commerce.hold_secs = 1;
    c.commerce.sweep_interval_ms = 100;
});

async fn expired_holds_are_returned_without_the_sweeper(app: TestApp) {
    let (_org, eid, buyer) = setup(&app).await;
    let late = app.register("late@example.com").await;
    let first = id(&app.order(&buyer, &eid, 2, 2).await);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    // Sold out on paper: the new order returns the lapsed hold and succeeds.
    let second = app.order(&late, &eid, 2, 2).await;
    assert_eq!(second["status"], "pending");
    let (_, o) = app.get(&format!("/orders/{first}"), &buyer.access).await;
    assert_eq!(o["status"], "expired", "{o}");
    let third = id(&app.order(&buyer, &eid, 1, 1).await);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let (_, o) = app.get(&format!("/orders/{third}"), &buyer.access).await;
    assert_eq!(
        o["status"], "expired",
        "reading an order past its hold expires it: {o}"
    );
}
both!(expired_holds_are_returned_without_the_sweeper, |c| {
    c.commerce.hold_secs = 1;
    c.commerce.sweep_interval_ms = 3_600_000;
});

async fn idempotent_retries_return_the_same_order(app: TestApp) {
    let (_org, eid, buyer) = setup(&app).await;
    let body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": 3}]});
    let key = [("Idempotency-Key", "checkout-7f3a")];
    let (st, h, first) = app
        .post_with("/orders", &buyer.access, &key, body.clone())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    assert!(h.get("idempotent-replayed").is_none());
    let (st, h, again) = app
        .post_with("/orders", &buyer.access, &key, body.clone())
        .await;
    assert_eq!(
        (st, again["id"].clone()),
        (StatusCode::OK, first["id"].clone()),
        "a retry returns the same order"
    );
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(app.available(&buyer.access, &eid, 1).await, 97, "held once");
    let other_body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": 4}]});
    let (st, _, v) = app
        .post_with("/orders", &buyer.access, &key, other_body)
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let someone = app.register("someone@example.com").await;
    let (st, _, theirs) = app
        .post_with("/orders", &someone.access, &key, body.clone())
        .await;
    assert_eq!(st, StatusCode::CREATED, "keys are per buyer");
    assert_ne!(theirs["id"], first["id"]);
    let (st, _, v) = app
        .post_with(
            "/orders",
            &buyer.access,
            &[("Idempotency-Key", "")],
            body.clone(),
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_header");

    // Eight concurrent retries of a new key: one order, held once.
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (api, token, body) = (app.api(), buyer.access.clone(), body.clone());
        racers.spawn(async move {
            api.post("/orders", &token, &[("Idempotency-Key", "race-1")], body)
                .await
        });
    }
    let results = racers.join_all().await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(st, _, v)| {
            assert!(st.is_success(), "{st} {v}");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry got the same order");
    assert_eq!(
        results
            .iter()
            .filter(|(st, _, _)| *st == StatusCode::CREATED)
            .count(),
        1
    );
    assert_eq!(
        app.available(&buyer.access, &eid, 1).await,
        91,
        "3 + 3 + 3 held, not 3 × 8"
    );
}
both!(idempotent_retries_return_the_same_order);

async fn purchase_limits_per_customer_and_event(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let (st, p) = app
        .get(&format!("/events/{eid}/sales-policy"), &org.access)
        .await;
    assert_eq!(
        (st, p["max_tickets_per_customer"].as_i64()),
        (StatusCode::OK, Some(10)),
        "the configured default"
    );
    let (st, v) = app
        .put(&format!("/events/{eid}/sales-policy"), &buyer.access, json!({"max_tickets_per_customer": 50, "resale_enabled": true, "resale_max_percent": 100}))
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .put(&format!("/events/{eid}/sales-policy"), &org.access, json!({"max_tickets_per_customer": 0, "resale_enabled": true, "resale_max_percent": 100}))
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, _) = app
        .put(&format!("/events/{eid}/sales-policy"), &org.access, json!({"max_tickets_per_customer": 3, "resale_enabled": true, "resale_max_percent": 100}))
        .await;
    assert_eq!(st, StatusCode::OK);

    let first = id(&app.order(&buyer, &eid, 1, 2).await);
    let (st, v) = app
        .post(
            "/orders",
            Some(&buyer.access),
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 2}]}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "purchase_limit");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("limit"),
        "{v}"
    );
    app.order(&buyer, &eid, 2, 1).await;
    let (st, _) = app
        .post(
            &format!("/orders/{first}/cancel"),
            Some(&buyer.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    app.order(&buyer, &eid, 1, 2).await;
    let friend = app.register("friend@example.com").await;
    app.order(&friend, &eid, 1, 3).await;
    assert_eq!(app.available(&buyer.access, &eid, 1).await, 95);
}
both!(purchase_limits_per_customer_and_event);

async fn free_tickets_are_paid_at_once(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let (st, v) = app
        .post(
            &format!("/events/{eid}/tiers"),
            Some(&org.access),
            json!({"tier": 3, "name": "Guest list", "price_minor": 0, "capacity": 5}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let o = app.order(&buyer, &eid, 3, 2).await;
    assert_eq!(
        (o["status"].as_str(), o["payment_method"].as_str()),
        (Some("paid"), Some("free")),
        "{o}"
    );
    let ids = o["ticket_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    let (ring, manifest) = gate(&app, &org, &eid).await;
    for t in ids {
        let cred = credential(&app, &buyer.access, t.as_str().unwrap()).await;
        assert_eq!(admit(&ring, &manifest, &eid, &cred), Outcome::Admit);
    }
    let (_, p) = app
        .get(&format!("/orders/{}/payments", id(&o)), &buyer.access)
        .await;
    assert_eq!(
        (p[0]["provider"].as_str(), p[0]["status"].as_str()),
        (Some("free"), Some("succeeded")),
        "{p}"
    );
    assert_eq!(app.available(&buyer.access, &eid, 3).await, 3);
}
both!(free_tickets_are_paid_at_once);
