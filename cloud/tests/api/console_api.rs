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
