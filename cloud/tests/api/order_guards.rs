//! What orders refuse: other people's orders, illegal callers, bad input,
//! too many requests; and that the commerce API is documented.

use crate::both;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn orders_are_private_to_buyer_and_organizer(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let stranger = app.register("stranger@example.com").await;
    let rival = app.organizer("rival@example.com").await;
    let oid = id(&app.order(&buyer, &eid, 1, 1).await);
    for who in [&stranger, &rival] {
        let (st, v) = app.get(&format!("/orders/{oid}"), &who.access).await;
        assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
        let (st, v) = app
            .get(&format!("/orders/{oid}/payments"), &who.access)
            .await;
        assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
        let (st, v) = app
            .put(
                &format!("/orders/{oid}/status"),
                &who.access,
                json!({"status": "cancelled"}),
            )
            .await;
        assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    }
    let (st, v) = app
        .get(&format!("/orders/user/{}", buyer.user_id), &stranger.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .get(&format!("/orders/user/{}", buyer.user_id), &rival.access)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["items"].as_array().unwrap().is_empty(),
        "a rival organizer sees none of this buyer's orders: {v}"
    );
    let (st, v) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&org.access),
            json!({"method": "manual"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post(
            &format!("/orders/{oid}/cancel"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, o) = app.get(&format!("/orders/{oid}"), &org.access).await;
    assert_eq!(
        (st, o["buyer_id"].as_str()),
        (StatusCode::OK, Some(buyer.user_id.as_str()))
    );
    let admin = app.admin().await;
    let (st, _) = app
        .get(&format!("/orders/user/{}", buyer.user_id), &admin.access)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = app
        .call(reqwest::Method::GET, &format!("/orders/{oid}"), None, None)
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "missing_token");
}
both!(orders_are_private_to_buyer_and_organizer);

async fn bad_order_input_is_4xx(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let missing = uuid::Uuid::now_v7();
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"event_id": missing, "items": [{"tier": 1, "quantity": 1}]}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"event_id": eid, "items": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "items": [{"tier": 9, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 0}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 51}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": -1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}, {"tier": 1, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}], "coupon": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"event_id": "not-a-uuid", "items": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let (st, v) = app.post("/orders", Some(&buyer.access), body.clone()).await;
        assert_error(st, &v, status, code);
    }
    let resp = app
        .client
        .post(app.url("/orders"))
        .bearer_auth(&buyer.access)
        .header("content-type", "application/json")
        .body("{\"event_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_json");
    let huge = format!(
        "{{\"event_id\": \"{eid}\", \"items\": [], \"pad\": \"{}\"}}",
        "x".repeat(70_000)
    );
    let resp = app
        .client
        .post(app.url("/orders"))
        .bearer_auth(&buyer.access)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    for path in [
        format!("/orders/{missing}"),
        format!("/orders/{missing}/payments"),
    ] {
        let (st, v) = app.get(&path, &buyer.access).await;
        assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    }
    let (st, v) = app.get("/orders/nope", &buyer.access).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_path");
    let (st, v) = app
        .put(
            &format!("/orders/{missing}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .post(
            &format!("/orders/{missing}/payments"),
            Some(&buyer.access),
            json!({"method": "cash"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // Drafts are not on sale; nor is a stranger's draft visible.
    let draft = id(&app.create_event(&org).await);
    let (st, v) = app
        .post(
            "/orders",
            Some(&buyer.access),
            json!({"event_id": draft, "items": [{"tier": 1, "quantity": 1}]}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .post(
            "/orders",
            Some(&org.access),
            json!({"event_id": draft, "items": [{"tier": 1, "quantity": 1}]}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "not_on_sale");
    let n = count(&app, "SELECT COUNT(*) FROM orders", &[]).await;
    assert_eq!(n, 0, "refused requests wrote no order");
}
both!(bad_order_input_is_4xx);

async fn commerce_shares_the_ticket_bucket_and_the_webhook_is_not_limited(app: TestApp) {
    let (_org, eid, buyer) = setup(&app).await;
    let mut statuses = Vec::new();
    for path in [
        "/tickets",
        &format!("/orders/user/{}", buyer.user_id),
        "/market/listings",
        "/transfers",
    ] {
        statuses.push(app.get(path, &buyer.access).await.0);
    }
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(
        statuses[3],
        StatusCode::TOO_MANY_REQUESTS,
        "tickets, orders and the market share one bucket"
    );
    let (st, v) = app
        .post(
            "/orders",
            Some(&buyer.access),
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]}),
        )
        .await;
    assert_error(st, &v, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    for _ in 0..10 {
        let (st, _) = app.webhook("{}", Some("t=1,v1=00")).await;
        assert_ne!(
            st,
            StatusCode::TOO_MANY_REQUESTS,
            "Stripe's deliveries are never rate-limited"
        );
    }
}
both!(
    commerce_shares_the_ticket_bucket_and_the_webhook_is_not_limited,
    |c| {
        c.rate_limit.tickets_per_minute = 3;
        c.rate_limit.global_per_minute = 14;
    }
);

async fn the_commerce_api_is_documented(app: TestApp) {
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/orders",
        "/orders/{id}",
        "/orders/user/{user_id}",
        "/orders/{id}/status",
        "/orders/{id}/cancel",
        "/orders/{id}/payments",
        "/payments/webhook",
        "/tickets/{id}/transfer",
        "/tickets/{id}/transfers",
        "/transfers",
        "/events/{id}/sales-policy",
        "/market/listings",
        "/market/listings/{id}",
        "/market/listings/{id}/buy",
        "/market/ledger",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is in the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/orders/{id}/status"]["put"]["requestBody"].is_object());
}
both!(the_commerce_api_is_documented);
