//! The webhook's defences, against a real localstripe: forged, stale,
//! tampered, malformed and oversized deliveries are refused and write
//! nothing; replays and out-of-order events change nothing. And the shop
//! without Stripe configured.

use crate::both;
use crate::both_stripe;
use crate::common::*;
use crate::shop::*;
use cloud::payments::webhook::sign;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::Outcome;

async fn forged_replayed_and_out_of_order_webhooks_change_nothing(
    app: TestApp,
    _stripe: LocalStripe,
) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer = app.register("buyer@example.com").await;
    let oid = id(&app.order(&buyer, &eid, 2, 1).await);
    let intent = stripe_intent(&app, &buyer, &oid).await;
    let body = succeeded_body("evt_paid_1", &intent, 9900, &oid);
    let now = unix_now();
    let events = || count(&app, "SELECT COUNT(*) FROM webhook_events", &[]);
    let tampered = body.replace("9900", "100");
    let forged: Vec<(Option<String>, &str)> = vec![
        (None, "no signature"),
        (
            Some(sign(body.as_bytes(), "whsec_not_ours", now)),
            "another secret",
        ),
        (
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now - 600)),
            "ten minutes old",
        ),
        (
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now + 600)),
            "from the future",
        ),
        (Some(format!("t={now},v1=deadbeef")), "wrong signature"),
        (Some("garbage".into()), "malformed header"),
    ];
    for (sig, why) in &forged {
        let (st, v) = app.webhook(&body, sig.as_deref()).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_signature")),
            "{why}: {v}"
        );
    }
    let (st, v) = app
        .webhook(&tampered, Some(&sign(body.as_bytes(), WEBHOOK_SECRET, now)))
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_signature");
    let junk = "{\"id\": 1}";
    let (st, v) = app
        .webhook(junk, Some(&sign(junk.as_bytes(), WEBHOOK_SECRET, now)))
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_event");
    let huge = "x".repeat(70_000);
    let (st, _) = app
        .webhook(&huge, Some(&sign(huge.as_bytes(), WEBHOOK_SECRET, now)))
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(events().await, 0, "rejected deliveries wrote nothing");
    let (_, o) = app.get(&format!("/orders/{oid}"), &buyer.access).await;
    assert_eq!(o["status"], "pending");

    // A genuine delivery pays; its replay and a second event for the same
    // intent change nothing; a late failure report does not undo it.
    let (st, ack) = app
        .webhook(&body, Some(&sign(body.as_bytes(), WEBHOOK_SECRET, now)))
        .await;
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{ack}"
    );
    let paid = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid["ticket_ids"].as_array().unwrap().len(), 1);
    let (ring, manifest) = gate(&app, &org, &eid).await;
    for evt in [
        body.clone(),
        succeeded_body("evt_paid_2", &intent, 9900, &oid),
    ] {
        let (st, ack) = app
            .webhook(&evt, Some(&sign(evt.as_bytes(), WEBHOOK_SECRET, now)))
            .await;
        assert_eq!(
            (st, ack["outcome"].as_str()),
            (StatusCode::OK, Some("duplicate")),
            "{ack}"
        );
    }
    let failed = stripe_event(
        "evt_failed_late",
        "payment_intent.payment_failed",
        json!({"id": intent, "object": "payment_intent", "last_payment_error": {"message": "late"}}),
    );
    let (st, _) = app
        .webhook(&failed, Some(&sign(failed.as_bytes(), WEBHOOK_SECRET, now)))
        .await;
    assert_eq!(st, StatusCode::OK);
    let other = stripe_event("evt_other", "customer.created", json!({"id": "cus_1"}));
    let (st, ack) = app
        .webhook(&other, Some(&sign(other.as_bytes(), WEBHOOK_SECRET, now)))
        .await;
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let (_, p) = app
        .get(&format!("/orders/{oid}/payments"), &buyer.access)
        .await;
    assert_eq!(p.as_array().unwrap().len(), 1);
    assert_eq!(p[0]["status"], "succeeded", "success is final: {p}");
    let (_, o) = app.get(&format!("/orders/{oid}"), &buyer.access).await;
    assert_eq!(
        (
            o["status"].as_str(),
            o["ticket_ids"].as_array().unwrap().len()
        ),
        (Some("paid"), 1),
        "issued once"
    );
    let (_, m) = gate(&app, &org, &eid).await;
    assert_eq!(
        m.version(),
        manifest.version(),
        "no new manifest version from replays"
    );
    let cred = credential(&app, &buyer.access, paid["ticket_ids"][0].as_str().unwrap()).await;
    assert_eq!(admit(&ring, &m, &eid, &cred), Outcome::Admit);
    let tickets = count(
        &app,
        "SELECT COUNT(*) FROM tickets WHERE order_id = $1",
        &[&oid],
    )
    .await;
    assert_eq!(tickets, 1);
}
both_stripe!(forged_replayed_and_out_of_order_webhooks_change_nothing);

async fn without_stripe_the_shop_still_sells(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer = app.register("buyer@example.com").await;
    let oid = id(&app.order(&buyer, &eid, 1, 1).await);
    let (st, v) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&buyer.access),
            json!({"method": "stripe"}),
        )
        .await;
    assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let body = stripe_event(
        "evt_1",
        "payment_intent.succeeded",
        json!({"id": "pi_1", "amount": 2500, "currency": "eur"}),
    );
    let (st, v) = app
        .webhook(&body, Some(&sign(body.as_bytes(), "whsec_any", unix_now())))
        .await;
    assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    // The signature header is required (as the OpenAPI document says): a
    // delivery without it is the sender's error, configured or not.
    let (st, v) = app.webhook(&body, None).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_signature");
    let (st, _) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&buyer.access),
            json!({"method": "manual"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, o) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!((st, o["status"].as_str()), (StatusCode::OK, Some("paid")));
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
        "a manual refund needs no provider"
    );
}
both!(without_stripe_the_shop_still_sells);
