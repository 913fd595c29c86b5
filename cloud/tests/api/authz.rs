//! Object-level authorization: customers never see each other's data,
//! organizers only their own events.

use crate::both;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn customers_cannot_read_each_others_tickets(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let event = app.active_event(&org).await;
    let eid = event["id"].as_str().unwrap();
    let alice = app.register("alice@example.com").await;
    let bob = app.register("bob@example.com").await;
    let (st, t) = app
        .post(
            "/tickets",
            Some(&org.access),
            json!({"event_id": eid, "tier": 1, "owner_id": alice.user_id}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let tid = t["id"].as_str().unwrap();

    let (st, _) = app.get(&format!("/tickets/{tid}"), &alice.access).await;
    assert_eq!(st, StatusCode::OK, "the owner reads their ticket");
    for path in [
        format!("/tickets/{tid}"),
        format!("/tickets/{tid}/qr"),
        format!("/tickets/{tid}/history"),
    ] {
        let (st, v) = app.get(&path, &bob.access).await;
        assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    }
    let (st, v) = app
        .get(&format!("/tickets?owner_id={}", alice.user_id), &bob.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, page) = app.get("/tickets", &bob.access).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "bob's list holds only bob's tickets"
    );
    let (st, page) = app.get("/tickets", &alice.access).await;
    assert_eq!(
        (st, page["items"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (st, v) = app
        .patch(
            &format!("/tickets/{tid}/status"),
            &alice.access,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post(
            "/tickets",
            Some(&alice.access),
            json!({"event_id": eid, "tier": 1, "owner_id": alice.user_id}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .get(&format!("/users/{}", bob.user_id), &alice.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
}
both!(customers_cannot_read_each_others_tickets);

async fn organizers_manage_only_their_own_events(app: TestApp) {
    let mine = app.organizer("mine@example.com").await;
    let theirs = app.organizer("theirs@example.com").await;
    let event = app.active_event(&mine).await;
    let eid = event["id"].as_str().unwrap();
    let draft = app.create_event(&mine).await;
    let did = draft["id"].as_str().unwrap();

    let (st, v) = app
        .put(
            &format!("/events/{eid}"),
            &theirs.access,
            json!({"name": "Hijacked", "description": "", "venue": "X",
        "starts_at": "2031-06-01T18:00:00Z", "ends_at": "2031-06-01T23:00:00Z"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    for path in ["stats", "analytics", "reports"] {
        let (st, v) = app
            .get(&format!("/events/{eid}/{path}"), &theirs.access)
            .await;
        assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    }
    let (st, v) = app
        .patch(
            &format!("/events/{eid}/status"),
            &theirs.access,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&theirs.access),
            json!({"tier": 1, "quantity": 1, "holder_name": "X", "payment_method": "cash"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post(
            "/tickets",
            Some(&theirs.access),
            json!({"event_id": eid, "tier": 1, "holder_name": "X"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .get(&format!("/tickets?event_id={eid}"), &theirs.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .get(&format!("/events/admin/{}", mine.user_id), &theirs.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    // Someone else's draft does not exist for them.
    let (st, v) = app.get(&format!("/events/{did}"), &theirs.access).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .get(&format!("/events/{did}/stats"), &theirs.access)
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .post(
            "/tickets",
            Some(&theirs.access),
            json!({"event_id": did, "tier": 1, "holder_name": "X"}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    // Published events are readable by anyone signed in.
    let (st, _) = app.get(&format!("/events/{eid}"), &theirs.access).await;
    assert_eq!(st, StatusCode::OK);
    // Customers cannot create events; admins can manage anyone's.
    let c = app.register("cust@example.com").await;
    let (st, v) = app.post("/events", Some(&c.access), event_body()).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let admin = app.admin().await;
    let (st, _) = app
        .get(&format!("/events/{eid}/stats"), &admin.access)
        .await;
    assert_eq!(st, StatusCode::OK, "admins see every event's stats");
    let (st, page) = app
        .get(&format!("/events/admin/{}", mine.user_id), &admin.access)
        .await;
    assert_eq!(
        (st, page["items"].as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
}
both!(organizers_manage_only_their_own_events);
