//! Transfers and the resale market: the old QR is superseded and the new
//! one admitted, the chain of owners is kept, exactly one of racing buyers
//! gets a listing, the seller is credited and a refund reverses it.

use crate::both;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::{Outcome, Reason};

async fn resale_race_has_exactly_one_winner(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let seller = app.register("seller@example.com").await;
    let (primary, tid) = bought(&app, &org, &eid, &seller).await;
    let old = credential(&app, &seller.access, &tid).await;

    let (st, v) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": tid, "price_minor": 2501}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, listing) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": tid, "price_minor": 2500}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "face value is the default cap: {listing}"
    );
    let lid = id(&listing);
    let (st, v) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": tid, "price_minor": 2000}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "duplicate");
    let (st, v) = app
        .post(
            &format!("/market/listings/{lid}/buy"),
            Some(&seller.access),
            json!({}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let mut buyers = Vec::new();
    for i in 0..12 {
        buyers.push(app.register(&format!("buyer{i}@example.com")).await);
    }
    let mut race = tokio::task::JoinSet::new();
    for b in &buyers {
        let (api, token, path) = (
            app.api(),
            b.access.clone(),
            format!("/market/listings/{lid}/buy"),
        );
        let user = b.user_id.clone();
        race.spawn(async move { (user, api.post(&path, &token, &[], json!({})).await) });
    }
    let results = race.join_all().await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, (st, _, _))| *st == StatusCode::CREATED)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one buyer gets the listing");
    for (_, (st, _, v)) in &results {
        if *st != StatusCode::CREATED {
            assert_error(*st, v, StatusCode::CONFLICT, "gone");
        }
    }
    let (winner_id, (_, _, order)) = winners[0];
    let winner = buyers.iter().find(|b| &b.user_id == winner_id).unwrap();
    let oid = id(order);
    assert_eq!(
        (order["kind"].as_str(), order["total_minor"].as_i64()),
        (Some("resale"), Some(2500))
    );
    let (_, l) = app
        .get(&format!("/market/listings/{lid}"), &winner.access)
        .await;
    assert_eq!(l["status"], "held");
    let (st, v) = app
        .post(
            &format!("/tickets/{tid}/transfer"),
            Some(&seller.access),
            json!({"to_user_id": winner.user_id}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "invalid_state");
    let (st, v) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/market/listings/{lid}"),
            Some(&seller.access),
            None,
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");

    let (st, paid) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(
        (st, paid["status"].as_str()),
        (StatusCode::OK, Some("paid")),
        "{paid}"
    );
    let (_, t) = app.get(&format!("/tickets/{tid}"), &winner.access).await;
    assert_eq!(
        (
            t["owner_id"].as_str(),
            t["generation"].as_u64(),
            t["status"].as_str()
        ),
        (Some(winner.user_id.as_str()), Some(1), Some("transferred"))
    );
    let (ring, manifest) = gate(&app, &org, &eid).await;
    assert_eq!(
        admit(&ring, &manifest, &eid, &old),
        Outcome::Reject(Reason::Superseded)
    );
    assert_eq!(
        admit(&ring, &manifest, &eid, t["credential"].as_str().unwrap()),
        Outcome::Admit
    );
    let (_, l) = app
        .get(&format!("/market/listings/{lid}"), &winner.access)
        .await;
    assert_eq!(l["status"], "sold");
    let (_, ledger) = app.get("/market/ledger", &seller.access).await;
    assert_eq!(
        ledger["balances"],
        json!([{"currency": "EUR", "amount_minor": 2500}]),
        "the seller is credited"
    );
    let (_, chain) = app
        .get(&format!("/tickets/{tid}/transfers"), &seller.access)
        .await;
    assert_eq!(
        (chain[0]["kind"].as_str(), chain[0]["order_id"].as_str()),
        (Some("resale"), Some(oid.as_str()))
    );

    // The seller's original order no longer holds that ticket: no refund of it.
    let (st, v) = app
        .put(
            &format!("/orders/{primary}/status"),
            &org.access,
            json!({"status": "refunded"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
    // Refunding the resale revokes the ticket and reverses the credit.
    let (st, r) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("refunded")),
        "{r}"
    );
    let (_, ledger) = app.get("/market/ledger", &seller.access).await;
    assert_eq!(ledger["balances"][0]["amount_minor"], 0);
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 2);
    let (ring, manifest) = gate(&app, &org, &eid).await;
    assert_eq!(
        admit(&ring, &manifest, &eid, t["credential"].as_str().unwrap()),
        Outcome::Reject(Reason::Revoked)
    );
}
both!(resale_race_has_exactly_one_winner);

async fn free_resale_lapsed_holds_and_policies(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let seller = app.register("seller@example.com").await;
    let first = app.register("first@example.com").await;
    let second = app.register("second@example.com").await;
    let (_, a) = bought(&app, &org, &eid, &seller).await;
    let (_, b) = bought(&app, &org, &eid, &seller).await;

    // Given away on the market: paid at once.
    let (_, free) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": a, "price_minor": 0}),
        )
        .await;
    let (st, o) = app
        .post(
            &format!("/market/listings/{}/buy", id(&free)),
            Some(&first.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, o["status"].as_str(), o["payment_method"].as_str()),
        (StatusCode::CREATED, Some("paid"), Some("free")),
        "{o}"
    );
    assert_eq!(ticket_ids(&app, &first).await, std::slice::from_ref(&a));

    // A buyer who does not pay loses the hold; the listing is for sale again.
    let (_, listing) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": b, "price_minor": 1000}),
        )
        .await;
    let lid = id(&listing);
    let (st, held) = app
        .post(
            &format!("/market/listings/{lid}/buy"),
            Some(&first.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    app.wait_order(&first.access, &id(&held), |o| o["status"] == "expired")
        .await;
    let (_, l) = app
        .get(&format!("/market/listings/{lid}"), &first.access)
        .await;
    assert_eq!(
        l["status"], "active",
        "the lapsed hold released the listing"
    );
    let (st, _) = app
        .post(
            &format!("/market/listings/{lid}/buy"),
            Some(&second.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = app
        .post(
            &format!("/market/listings/{lid}/buy"),
            Some(&first.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "gone");

    // The organizer's policy: resale off, or a lower cap.
    let (_, c) = bought(&app, &org, &eid, &seller).await;
    app.put(
        &format!("/events/{eid}/sales-policy"),
        &org.access,
        json!({"max_tickets_per_customer": 10, "resale_enabled": false, "resale_max_percent": 100}),
    )
    .await;
    let (st, v) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": c, "price_minor": 100}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
    app.put(
        &format!("/events/{eid}/sales-policy"),
        &org.access,
        json!({"max_tickets_per_customer": 10, "resale_enabled": true, "resale_max_percent": 80}),
    )
    .await;
    let (st, v) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": c, "price_minor": 2001}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, l) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": c, "price_minor": 2000}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{l}");
    let (st, v) = app
        .post(
            "/market/listings",
            Some(&first.access),
            json!({"ticket_id": c, "price_minor": 10}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/market/listings/{}", id(&l)),
            Some(&first.access),
            None,
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, gone) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/market/listings/{}", id(&l)),
            Some(&seller.access),
            None,
        )
        .await;
    assert_eq!(
        (st, gone["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (st, v) = app
        .post(
            &format!("/market/listings/{}/buy", id(&l)),
            Some(&first.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "gone");
    let (_, open) = app
        .get(&format!("/market/listings?event_id={eid}"), &first.access)
        .await;
    assert!(
        open["items"].as_array().unwrap().is_empty(),
        "nothing left for sale: {open}"
    );
    let missing = uuid::Uuid::now_v7();
    let (st, v) = app
        .post(
            &format!("/market/listings/{missing}/buy"),
            Some(&first.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
}
both!(free_resale_lapsed_holds_and_policies, |c| {
    c.commerce.hold_secs = 1;
    c.commerce.sweep_interval_ms = 100;
});
