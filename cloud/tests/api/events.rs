//! Events: CRUD, lifecycle, tiers, box office, stats and the funnel.

use crate::both;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::KeyCertificate;

async fn event_crud_and_listing(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let e = app.create_event(&org).await;
    assert_eq!(e["status"], "draft");
    assert_eq!(e["tiers"].as_array().unwrap().len(), 2);
    assert_eq!(e["tiers"][1]["available"], 2);
    let eid = id(&e);

    let (st, got) = app.get(&format!("/events/{eid}"), &org.access).await;
    assert_eq!(
        (st, got["name"].as_str()),
        (StatusCode::OK, Some("Harbour Lights Festival"))
    );

    let update = json!({"name": "Harbour Lights", "description": "New", "venue": "Pier 5",
        "starts_at": "2031-06-02T18:00:00Z", "ends_at": "2031-06-02T23:00:00+00:00"});
    let (st, up) = app
        .put(&format!("/events/{eid}"), &org.access, update)
        .await;
    assert_eq!(st, StatusCode::OK, "{up}");
    assert_eq!(
        (up["venue"].as_str(), up["starts_at"].as_str()),
        (Some("Pier 5"), Some("2031-06-02T18:00:00Z"))
    );
    let (st, v) = app
        .put(
            &format!("/events/{eid}"),
            &org.access,
            json!({"name": "X", "description": "", "venue": "Y",
        "starts_at": "2031-06-02T18:00:00Z", "ends_at": "2031-06-01T18:00:00Z"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (st, with_tier) = app
        .post(
            &format!("/events/{eid}/tiers"),
            Some(&org.access),
            json!({"tier": 3, "name": "Student", "price_minor": 1500, "capacity": 10}),
        )
        .await;
    assert_eq!(
        (st, with_tier["tiers"].as_array().unwrap().len()),
        (StatusCode::CREATED, 3)
    );
    let (st, v) = app
        .post(
            &format!("/events/{eid}/tiers"),
            Some(&org.access),
            json!({"tier": 3, "name": "Other", "price_minor": 1500, "capacity": 10}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "duplicate");
    let (st, v) = app.post(&format!("/events/{eid}/tiers"), Some(&org.access),
        json!({"tier": 4, "name": "Dollar", "price_minor": 1500, "currency": "USD", "capacity": 10})).await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // Pagination over the organizer's events, stable by id.
    for _ in 0..2 {
        app.create_event(&org).await;
    }
    let (st, p1) = app
        .get(
            &format!("/events/admin/{}?limit=2", org.user_id),
            &org.access,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let cursor = p1["next_cursor"]
        .as_str()
        .expect("a second page exists")
        .to_string();
    let (_, p2) = app
        .get(
            &format!("/events/admin/{}?limit=2&cursor={cursor}", org.user_id),
            &org.access,
        )
        .await;
    let ids: Vec<String> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["items"].as_array().unwrap())
        .map(id)
        .collect();
    assert_eq!(ids.len(), 3);
    for listed in p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["items"].as_array().unwrap())
    {
        let (_, alone) = app
            .get(&format!("/events/{}", id(listed)), &org.access)
            .await;
        assert_eq!(
            listed["tiers"], alone["tiers"],
            "a listed event carries its own tiers (the first has a third), as read alone"
        );
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "pages are in id order without overlap");
    assert!(p2["next_cursor"].is_null());

    // Drafts are not in the public listing; active ones are.
    let cust = app.register("c@example.com").await;
    let (_, public) = app.get("/events", &cust.access).await;
    assert_eq!(
        public["items"].as_array().unwrap().len(),
        0,
        "drafts are private"
    );
    app.patch(
        &format!("/events/{eid}/status"),
        &org.access,
        json!({"status": "active"}),
    )
    .await;
    let (_, public) = app.get("/events?status=active", &cust.access).await;
    assert_eq!(public["items"].as_array().unwrap().len(), 1);
    let (st, v) = app.get("/events?limit=0", &cust.access).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_query");
}
both!(event_crud_and_listing);

/// The event key's certificate as `GET /events/{id}/keys` shows it.
async fn key_certificate(app: &TestApp, org: &Session, eid: &str) -> KeyCertificate {
    let (st, keys) = app.get(&format!("/events/{eid}/keys"), &org.access).await;
    assert_eq!(st, StatusCode::OK, "{keys}");
    let hex_cert = keys["key_certificates"][0].as_str().unwrap();
    KeyCertificate::decode(&hex::decode(hex_cert).unwrap()).unwrap()
}

async fn postponing_an_event_widens_its_key_certificate(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.create_event(&org).await);
    let ring = crate::tickets::key_ring(&app, &org, &eid).await;
    let before = key_certificate(&app, &org, &eid).await;
    let edit = |ends_at: &str| {
        json!({"name": "Harbour Lights", "description": "", "venue": "Pier 5",
            "starts_at": "2031-06-01T18:00:00Z", "ends_at": ends_at})
    };
    const DAYS_30: u64 = 30 * 86_400;

    let (st, v) = app
        .put(
            &format!("/events/{eid}"),
            &org.access,
            edit("2031-09-01T23:30:00Z"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let after = key_certificate(&app, &org, &eid).await;
    assert_eq!(
        after.not_after,
        1_946_071_800 + DAYS_30,
        "the certificate runs 30 days past the new end, or gates refuse the event's credentials then"
    );
    assert_eq!(
        (after.public_key.to_bytes(), after.not_before),
        (before.public_key.to_bytes(), before.not_before),
        "the same key, so credentials already issued stay valid"
    );
    let mut widened = ring.clone();
    widened
        .insert(after.clone())
        .expect("the organizer's root signed the new certificate");

    let (st, v) = app
        .put(
            &format!("/events/{eid}"),
            &org.access,
            edit("2031-06-01T23:30:00Z"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        key_certificate(&app, &org, &eid).await.not_after,
        after.not_after,
        "moving the end earlier never narrows the window"
    );
}
both!(postponing_an_event_widens_its_key_certificate);

async fn lifecycle_allows_only_legal_steps(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.create_event(&org).await);
    let path = format!("/events/{eid}/status");
    let step = |s: &'static str| json!({"status": s});
    let (st, v) = app.patch(&path, &org.access, step("live")).await;
    assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");
    for s in ["active", "live", "ended"] {
        let (st, v) = app.patch(&path, &org.access, step(s)).await;
        assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some(s)), "{v}");
    }
    for s in ["cancelled", "active", "draft", "live"] {
        let (st, v) = app.patch(&path, &org.access, step(s)).await;
        assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");
    }
    let (st, v) = app
        .put(
            &format!("/events/{eid}"),
            &org.access,
            json!({"name": "X", "description": "", "venue": "Y",
        "starts_at": "2031-06-02T18:00:00Z", "ends_at": "2031-06-03T18:00:00Z"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "invalid_state");
    let (st, v) = app.patch(&path, &org.access, step("paused")).await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
both!(lifecycle_allows_only_legal_steps);

async fn cancelling_an_event_revokes_its_tickets(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let (st, sale) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            json!({"tier": 1, "quantity": 2, "holder_name": "Walk In", "payment_method": "cash"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sale}");
    let (st, e) = app
        .patch(
            &format!("/events/{eid}/status"),
            &org.access,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        e["manifest_version"].as_i64().unwrap() >= 2,
        "the cancellation is a manifest version: {e}"
    );
    let (_, page) = app
        .get(&format!("/tickets?event_id={eid}"), &org.access)
        .await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "cancelled"),
        "{page}"
    );
    let (st, v) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            json!({"tier": 1, "quantity": 1, "holder_name": "Late", "payment_method": "cash"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "not_on_sale");
}
both!(cancelling_an_event_revokes_its_tickets);

async fn box_office_sales_count_in_stats_and_never_oversell(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let draft = app.create_event(&org).await;
    let eid = id(&draft);
    let sale = |tier: u16, quantity: u32| json!({"tier": tier, "quantity": quantity, "holder_name": "Walk In", "payment_method": "card"});
    let (st, v) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            sale(1, 1),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "not_on_sale");
    app.patch(
        &format!("/events/{eid}/status"),
        &org.access,
        json!({"status": "active"}),
    )
    .await;

    let buyer = app.register("buyer@example.com").await;
    let (st, receipt) = app.post(&format!("/events/{eid}/ticket-sale"), Some(&org.access),
        json!({"tier": 1, "quantity": 3, "holder_name": "Buyer", "buyer_email": "buyer@example.com", "payment_method": "cash", "amount_minor": 7500})).await;
    assert_eq!(st, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["total_minor"], 7500);
    let tickets = receipt["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 3);
    assert!(
        tickets
            .iter()
            .all(|t| t["status"] == "issued"
                && t["credential"].as_str().unwrap().starts_with("TK1:"))
    );
    let (_, mine) = app.get("/tickets", &buyer.access).await;
    assert_eq!(
        mine["items"].as_array().unwrap().len(),
        3,
        "the buyer owns box-office tickets bought with their email"
    );

    let (st, v) = app.post(&format!("/events/{eid}/ticket-sale"), Some(&org.access),
        json!({"tier": 1, "quantity": 1, "holder_name": "X", "payment_method": "cash", "amount_minor": 1})).await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            sale(9, 1),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // VIP holds 2: three concurrent single sales, exactly two succeed.
    let path = format!("/events/{eid}/ticket-sale");
    let (a, b, c) = tokio::join!(
        app.post(&path, Some(&org.access), sale(2, 1)),
        app.post(&path, Some(&org.access), sale(2, 1)),
        app.post(&path, Some(&org.access), sale(2, 1))
    );
    let statuses = [a.0, b.0, c.0];
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        1,
        "{statuses:?}"
    );

    let (st, stats) = app.get(&format!("/events/{eid}/stats"), &org.access).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(stats["sold"], 5);
    assert_eq!(stats["capacity"], 102);
    assert_eq!(stats["revenue_minor"], 3 * 2500 + 2 * 9900);
    assert_eq!(stats["tiers"][1]["sold"], 2);
    let rate = stats["sell_out_rate"].as_f64().unwrap();
    assert!((rate - 5.0 / 102.0).abs() < 1e-9, "{rate}");
}
both!(box_office_sales_count_in_stats_and_never_oversell);

async fn analytics_funnel_counts_views_orders_paid_and_check_ins(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let cust = app.register("c@example.com").await;
    for _ in 0..3 {
        let (st, _) = app.get(&format!("/events/{eid}"), &cust.access).await;
        assert_eq!(st, StatusCode::OK);
    }
    let (_, receipt) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            json!({"tier": 1, "quantity": 2, "holder_name": "Pair", "payment_method": "cash"}),
        )
        .await;
    let tid = receipt["tickets"][0]["id"].as_str().unwrap();
    let (st, t) = app
        .patch(
            &format!("/tickets/{tid}/status"),
            &org.access,
            json!({"status": "checked_in", "reason": "manual door check"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let (st, a) = app
        .get(&format!("/events/{eid}/analytics"), &org.access)
        .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    assert_eq!(
        (
            a["views"].as_i64(),
            a["orders"].as_i64(),
            a["paid"].as_i64(),
            a["checked_in"].as_i64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{a}"
    );
    assert_eq!(a["attendance_rate"], 0.5);
}
both!(analytics_funnel_counts_views_orders_paid_and_check_ins);

async fn unknown_event_ids_are_404_and_bad_ids_400(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/events/{missing}"),
        format!("/events/{missing}/stats"),
        format!("/events/{missing}/analytics"),
        format!("/events/{missing}/reports"),
        format!("/events/reports/{missing}"),
    ] {
        let (st, v) = app.get(&path, &org.access).await;
        assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    }
    let (st, v) = app
        .patch(
            &format!("/events/{missing}/status"),
            &org.access,
            json!({"status": "active"}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app.get("/events/not-a-uuid", &org.access).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_path");
}
both!(unknown_event_ids_are_404_and_bad_ids_400);
