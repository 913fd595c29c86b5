//! The read APIs the web console and the shop stand on: published events
//! without an account (drafts never leak), user search for admins, and an
//! event's orders with filters for its organizer.

use crate::both;
use crate::common::*;
use crate::shop::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn anon(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, None, None).await
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

async fn published_events_are_public_and_drafts_never_leak(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let draft = app.create_event(&org).await;
    let mut active = Vec::new();
    for (i, starts) in [
        "2031-06-01T18:00:00Z",
        "2031-07-01T18:00:00Z",
        "2031-08-01T18:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        let mut body = event_body();
        body["name"] = json!(format!("Night {i} of 100% jazz"));
        body["starts_at"] = json!(starts);
        body["ends_at"] = json!(starts.replace("18:00", "23:00"));
        let (s, e) = app.post("/events", Some(&org.access), body).await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        let (s, _) = app
            .patch(
                &format!("/events/{}/status", id(&e)),
                &org.access,
                json!({"status": "active"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        active.push(id(&e));
    }

    let (s, all) = anon(&app, "/public/events").await;
    assert_eq!(s, StatusCode::OK, "no account is needed: {all}");
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        3,
        "three published events, the draft is not among them: {all}"
    );
    assert!(
        !all.to_string().contains(&id(&draft)),
        "a draft must never appear in the public list"
    );
    let tiers = &all["items"][0]["tiers"];
    assert_eq!(
        tiers[0]["available"], 100,
        "the listing shows availability: {tiers}"
    );

    let (s, p1) = anon(&app, "/public/events?limit=2").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"]
        .as_str()
        .expect("a full page has a cursor")
        .to_string();
    let (_, p2) = anon(&app, &format!("/public/events?limit=2&cursor={cursor}")).await;
    assert_eq!(
        names(&p2),
        vec!["Night 2 of 100% jazz"],
        "the second page holds the rest"
    );
    assert!(p2["next_cursor"].is_null(), "the last page has no cursor");

    let (_, july_on) = anon(
        &app,
        "/public/events?starts_from=2031-07-01T00:00:00Z&starts_before=2031-08-01T00:00:00Z",
    )
    .await;
    assert_eq!(
        names(&july_on),
        vec!["Night 1 of 100% jazz"],
        "the start range filters"
    );
    let (_, by_name) = anon(&app, "/public/events?q=NIGHT%202").await;
    assert_eq!(
        names(&by_name),
        vec!["Night 2 of 100% jazz"],
        "name search is case-insensitive"
    );
    let (_, wild) = anon(&app, "/public/events?q=0%25%20j").await;
    assert_eq!(
        wild["items"].as_array().unwrap().len(),
        3,
        "a % in the search is literal: {wild}"
    );
    let (_, none) = anon(&app, "/public/events?q=_ight").await;
    assert_eq!(
        none["items"].as_array().unwrap().len(),
        0,
        "an _ in the search is literal"
    );

    let (s, v) = anon(&app, "/public/events?status=draft").await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (s, v) = anon(&app, "/public/events?limit=0").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_query");
    let (s, v) = anon(&app, "/public/events?starts_from=yesterday").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_query");

    let (s, one) = anon(&app, &format!("/public/events/{}", active[0])).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(
        one["tiers"].as_array().unwrap().len(),
        2,
        "the event page has its tiers"
    );
    let (s, v) = anon(&app, &format!("/public/events/{}", id(&draft))).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    let (s, v) = anon(&app, "/public/events/not-a-uuid").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_path");
}
both!(published_events_are_public_and_drafts_never_leak);

async fn admins_find_users_by_email(app: TestApp) {
    for n in 0..3 {
        app.register(&format!("box.office{n}@venue.example")).await;
    }
    let buyer = app.register("someone@else.example").await;
    let admin = app.admin().await;

    let (s, page) = app
        .get("/users?email=VENUE.example&limit=2", &admin.access)
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(
            &format!("/users?email=venue.example&limit=2&cursor={cursor}"),
            &admin.access,
        )
        .await;
    let emails: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        vec![
            "box.office0@venue.example",
            "box.office1@venue.example",
            "box.office2@venue.example"
        ],
        "every match once, in id order, over two pages"
    );
    assert!(
        !page.to_string().contains("password"),
        "never a password hash: {page}"
    );
    let (_, none) = app.get("/users?email=%25", &admin.access).await;
    assert_eq!(
        none["items"].as_array().unwrap().len(),
        0,
        "% is literal, not a wildcard"
    );

    let (s, v) = app.get("/users?email=venue", &buyer.access).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let org = app.organizer("org@example.com").await;
    let (s, v) = app.get("/users?email=venue", &org.access).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let (s, v) = anon(&app, "/users?email=venue").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "missing_token");
    let (s, v) = app.get("/users", &admin.access).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_query");
    let (s, v) = app.get("/users?email=%20", &admin.access).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
both!(admins_find_users_by_email);

async fn organizers_list_and_filter_an_events_orders(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let other = app.register("other@example.com").await;
    let (paid, _) = bought(&app, &org, &eid, &buyer).await;
    let pending = id(&app.order(&other, &eid, 1, 2).await);
    let third = id(&app.order(&buyer, &eid, 2, 1).await);
    let base = format!("/events/{eid}/orders");

    let (s, all) = app.get(&base, &org.access).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![paid.as_str(), pending.as_str(), third.as_str()],
        "every order, by id"
    );
    assert_eq!(
        all["items"][0]["buyer_email"], "buyer@example.com",
        "the list says who bought"
    );

    let (_, v) = app
        .get(&format!("{base}?status=pending"), &org.access)
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "two pending: {v}");
    let (_, v) = app
        .get(&format!("{base}?buyer_email=OTHER@"), &org.access)
        .await;
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![pending.as_str()],
        "by buyer email, case-insensitive"
    );
    let (_, v) = app
        .get(
            &format!("{base}?created_before=2000-01-01T00:00:00Z"),
            &org.access,
        )
        .await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        0,
        "nothing was created before 2000"
    );
    let (_, v) = app
        .get(
            &format!("{base}?created_from=2000-01-01T00:00:00Z&limit=2"),
            &org.access,
        )
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let cursor = v["next_cursor"].as_str().unwrap();
    let (_, v) = app
        .get(
            &format!("{base}?created_from=2000-01-01T00:00:00Z&limit=2&cursor={cursor}"),
            &org.access,
        )
        .await;
    assert_eq!(v["items"][0]["id"], third.as_str(), "the second page");

    // The found order is confirmed without an id sent by hand.
    let (_, v) = app
        .get(
            &format!("{base}?buyer_email=other&status=pending"),
            &org.access,
        )
        .await;
    let found = v["items"][0]["id"].as_str().unwrap();
    let (s, o) = app
        .put(
            &format!("/orders/{found}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(
        (s, o["status"].as_str()),
        (StatusCode::OK, Some("paid")),
        "{o}"
    );

    let (s, v) = app.get(&base, &buyer.access).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let rival = app.organizer("rival@example.com").await;
    let (s, v) = app.get(&base, &rival.access).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let admin = app.admin().await;
    let (s, _) = app.get(&base, &admin.access).await;
    assert_eq!(s, StatusCode::OK, "admins see every event's orders");
    let (s, v) = app
        .get(
            &format!(
                "{base}?created_from=2030-01-01T00:00:00Z&created_before=2020-01-01T00:00:00Z"
            ),
            &org.access,
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (s, v) = app.get(&format!("{base}?status=lost"), &org.access).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_query");
    let draft = id(&app.create_event(&org).await);
    let (s, v) = app
        .get(&format!("/events/{draft}/orders"), &rival.access)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
}
both!(organizers_list_and_filter_an_events_orders);

/// Runs a statement straight on the test's database.
async fn exec(app: &TestApp, sql: &str, binds: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.expect("db");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = q.bind(b.to_string());
    }
    q.execute(&pool).await.expect(sql);
    pool.close().await;
}

/// 2030-01-01T00:00:00Z in ms.
const T0: i64 = 1_893_456_000_000;
const HOUR: i64 = 3_600_000;
const BULK: i64 = 50_000;

/// `(start ms, orders, tickets, revenue)` of each point.
fn points(v: &Value) -> Vec<(i64, i64, i64, i64)> {
    v["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| {
            let start = time::OffsetDateTime::parse(
                p["start"].as_str().expect("start"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("RFC 3339 start");
            (
                i64::try_from(start.unix_timestamp_nanos() / 1_000_000).unwrap(),
                p["orders"].as_i64().unwrap(),
                p["tickets"].as_i64().unwrap(),
                p["revenue_minor"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The sales chart's series comes from the database, not from a page of
/// orders: 50,000 paid orders (every tenth refunded since, so left out)
/// spread over 48 hours chart exactly, per hour and per day, next to real
/// box-office sales; only the event's organizer or an admin may read it.
async fn sales_over_time_aggregates_every_paid_order_in_the_database(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    for qty in [2, 1] {
        let (st, v) = app
            .post(
                &format!("/events/{eid}/ticket-sale"),
                Some(&org.access),
                json!({"tier": 1, "quantity": qty, "holder_name": "Door", "payment_method": "cash"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    // A reservation not paid yet is no sale.
    let buyer = app.register("b@example.com").await;
    let (st, v) = app
        .post(
            "/orders",
            Some(&buyer.access),
            json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Order i is paid at T0 + (i % 48) h + 1 min, for 1000 (two tickets).
    exec(
        &app,
        &format!(
            "INSERT INTO orders (id, event_id, buyer_id, channel, status, payment_method, total_minor, \
             currency, created_at, paid_at, updated_at, quantity) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BULK}) \
             SELECT 'bulk-' || CAST(i AS TEXT), $1, NULL, 'box_office', \
             CASE WHEN i % 10 = 0 THEN 'refunded' ELSE 'paid' END, 'cash', 1000, 'EUR', {T0}, \
             {T0} + (i % 48) * {HOUR} + 60000, {T0}, 2 FROM n"
        ),
        &[&eid],
    )
    .await;
    exec(
        &app,
        "INSERT INTO order_items (order_id, tier_id, tier, quantity, unit_price_minor) \
         SELECT o.id, t.id, 1, 2, 500 FROM orders o JOIN tiers t ON t.event_id = o.event_id AND t.tier = 1 \
         WHERE o.event_id = $1 AND o.id LIKE 'bulk-%'",
        &[&eid],
    )
    .await;

    let mut want = Vec::new();
    for h in 0..48 {
        let n = (1..=BULK).filter(|i| i % 48 == h && i % 10 != 0).count() as i64;
        want.push((T0 + h * HOUR, n, 2 * n, 1000 * n));
    }
    let (st, v) = app
        .get(
            &format!("/events/{eid}/sales-over-time?bucket=hour"),
            &org.access,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["bucket"].as_str(), v["currency"].as_str()),
        (Some("hour"), Some("EUR"))
    );
    let got = points(&v);
    assert_eq!(got.len(), 49, "the hour of today's sales and 48 bulk hours");
    assert_eq!(got[1..], want[..], "every bulk order, by the hour");
    let today = got[0];
    assert_eq!(today.0 % HOUR, 0, "buckets start on the hour");
    assert_eq!(
        (today.1, today.2, today.3),
        (2, 3, 3 * 2500),
        "the two box-office sales, not the unpaid reservation"
    );
    let sum: i64 = got.iter().map(|p| p.1).sum();
    assert_eq!(sum, BULK - BULK / 10 + 2, "every paid order counts once");

    let (st, v) = app
        .get(&format!("/events/{eid}/sales-over-time"), &org.access)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["bucket"], "day", "{v}");
    let days = points(&v);
    let day = |d: i64| {
        want.iter()
            .filter(|w| (w.0 - T0) / (24 * HOUR) == d)
            .map(|w| w.1)
            .sum::<i64>()
    };
    assert_eq!(days.len(), 3, "{v}");
    assert_eq!(
        (days[0].0 % (24 * HOUR), days[0].1, days[0].2),
        (0, 2, 3),
        "today, from midnight UTC"
    );
    assert_eq!(days[1], (T0, day(0), 2 * day(0), 1000 * day(0)));
    assert_eq!(days[2], (T0 + 24 * HOUR, day(1), 2 * day(1), 1000 * day(1)));

    let (st, v) = app
        .get(
            &format!("/events/{eid}/sales-over-time?bucket=week"),
            &org.access,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let other = app.organizer("other@example.com").await;
    let (st, v) = app
        .get(&format!("/events/{eid}/sales-over-time"), &other.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .get(&format!("/events/{eid}/sales-over-time"), &buyer.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
}
both!(sales_over_time_aggregates_every_paid_order_in_the_database);
