//! Payments through Stripe, against a real localstripe process: the whole
//! purchase (order → PaymentIntent → the browser confirms → localstripe's
//! signed webhook → tickets the gate admits), declined cards, refunds that
//! the gate then refuses, forged and replayed webhooks, late payments.

use crate::both_stripe;
use crate::common::*;
use crate::shop::*;
use cloud::payments::webhook::sign;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::{Outcome, Reason};

async fn purchase_through_stripe_then_refund(app: TestApp, stripe: LocalStripe) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer = app.register("buyer@example.com").await;
    let order = app.order(&buyer, &eid, 1, 2).await;
    let oid = id(&order);

    let p = start_stripe(&app, &buyer, &oid).await;
    let intent = p["provider_ref"]
        .as_str()
        .expect("a PaymentIntent id")
        .to_string();
    assert!(
        intent.starts_with("pi_")
            && p["client_secret"]
                .as_str()
                .is_some_and(|s| s.starts_with(&intent)),
        "{p}"
    );
    let (st, again) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&buyer.access),
            json!({"method": "stripe"}),
        )
        .await;
    assert_eq!(
        (st, again["provider_ref"].as_str()),
        (StatusCode::OK, Some(intent.as_str())),
        "one intent per order"
    );
    let pi = stripe.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(
        (pi["amount"].as_i64(), pi["currency"].as_str()),
        (Some(5_000), Some("eur")),
        "amount from the order: {pi}"
    );
    assert_eq!(pi["metadata"]["order_id"], oid.as_str());

    let (st, v) = stripe.pay(&intent, CARD_OK).await;
    assert!(st.is_success(), "confirm: {v}");
    let paid = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid["payment_method"], "stripe");
    let tickets: Vec<String> = paid["ticket_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(tickets.len(), 2, "paid with its tickets: {paid}");
    let (ring, mut manifest) = gate(&app, &org, &eid).await;
    let mut creds = Vec::new();
    for t in &tickets {
        let c = credential(&app, &buyer.access, t).await;
        assert_eq!(
            admit(&ring, &manifest, &eid, &c),
            Outcome::Admit,
            "a paid ticket is admitted"
        );
        creds.push(c);
    }
    let (_, payments) = app
        .get(&format!("/orders/{oid}/payments"), &buyer.access)
        .await;
    assert_eq!(payments[0]["status"], "succeeded", "{payments}");
    let (_, seen_by_org) = app
        .get(&format!("/orders/{oid}/payments"), &org.access)
        .await;
    assert!(
        seen_by_org[0]["client_secret"].is_null(),
        "only the buyer sees the client secret"
    );

    // Refund by the organizer: through Stripe, then revoked at the door.
    let (st, r) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "refunded", "reason": "customer request"}),
        )
        .await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("refunded")),
        "{r}"
    );
    let pi = stripe.get(&format!("/v1/payment_intents/{intent}")).await;
    let charge = &pi["latest_charge"];
    assert_eq!(
        charge["amount_refunded"], 5_000,
        "Stripe refunded the charge: {pi}"
    );
    apply_delta(&app, &ring, &eid, &mut manifest).await;
    for c in &creds {
        assert_eq!(
            admit(&ring, &manifest, &eid, c),
            Outcome::Reject(Reason::Revoked),
            "refunded tickets are revoked"
        );
    }
    assert_eq!(
        app.available(&buyer.access, &eid, 1).await,
        100,
        "refunded seats return to stock"
    );
    let (_, t) = app
        .get(&format!("/tickets/{}", tickets[0]), &buyer.access)
        .await;
    assert_eq!(t["status"], "refunded");

    // Stripe's own charge.refunded for it later changes nothing.
    let version = manifest.version();
    let body = stripe_event(
        "evt_refund_echo",
        "charge.refunded",
        json!({"id": "ch_x", "object": "charge", "payment_intent": intent, "amount": 5000, "amount_refunded": 5000, "refunded": true}),
    );
    let (st, ack) = app
        .webhook(
            &body,
            Some(&sign(body.as_bytes(), WEBHOOK_SECRET, unix_now())),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{ack}");
    let (_, m) = gate(&app, &org, &eid).await;
    assert_eq!(m.version(), version, "nothing new for the door");
    let (st, v) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "refunded"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "illegal_transition");
}
both_stripe!(purchase_through_stripe_then_refund);

async fn a_declined_card_can_be_retried(app: TestApp, stripe: LocalStripe) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer = app.register("buyer@example.com").await;
    let oid = id(&app.order(&buyer, &eid, 2, 1).await);
    let intent = stripe_intent(&app, &buyer, &oid).await;
    let (st, _) = stripe.pay(&intent, CARD_DECLINED).await;
    assert!(!st.is_success(), "the card is declined");
    let mut failed = Value::Null;
    for _ in 0..200 {
        let (_, p) = app
            .get(&format!("/orders/{oid}/payments"), &buyer.access)
            .await;
        if p[0]["status"] == "failed" {
            failed = p;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        failed[0]["status"], "failed",
        "the failure webhook was applied"
    );
    let (_, o) = app.get(&format!("/orders/{oid}"), &buyer.access).await;
    assert_eq!(o["status"], "pending", "the order still holds its seat");
    assert!(
        o["ticket_ids"].as_array().unwrap().is_empty(),
        "no tickets without payment"
    );
    let (st, again) = app
        .post(
            &format!("/orders/{oid}/payments"),
            Some(&buyer.access),
            json!({"method": "stripe"}),
        )
        .await;
    assert_eq!(
        (st, again["provider_ref"].as_str()),
        (StatusCode::OK, Some(intent.as_str())),
        "retry on the same intent"
    );
}
both_stripe!(a_declined_card_can_be_retried);

async fn a_refund_made_in_stripe_revokes_the_tickets(app: TestApp, stripe: LocalStripe) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer = app.register("buyer@example.com").await;
    let oid = id(&app.order(&buyer, &eid, 2, 2).await);
    let intent = stripe_intent(&app, &buyer, &oid).await;
    stripe.pay(&intent, CARD_OK).await;
    let paid = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "paid")
        .await;
    let (ring, mut manifest) = gate(&app, &org, &eid).await;
    let tid = paid["ticket_ids"][0].as_str().unwrap().to_string();
    let cred = credential(&app, &buyer.access, &tid).await;
    assert_eq!(admit(&ring, &manifest, &eid, &cred), Outcome::Admit);

    // Refunded in Stripe's dashboard: localstripe sends no charge.refunded,
    // so the test delivers the event Stripe would, signed with the secret.
    let (st, refund) = stripe
        .post("/v1/refunds", &[("payment_intent", &intent)])
        .await;
    assert!(st.is_success(), "{refund}");
    let body = stripe_event(
        "evt_refunded",
        "charge.refunded",
        json!({
        "id": refund["charge"], "object": "charge", "payment_intent": intent, "amount": 19800,
        "amount_refunded": 19800, "refunded": true, "refunds": {"data": [{"id": refund["id"]}]}}),
    );
    let sig = sign(body.as_bytes(), WEBHOOK_SECRET, unix_now());
    let (st, ack) = app.webhook(&body, Some(&sig)).await;
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{ack}"
    );
    let (_, o) = app.get(&format!("/orders/{oid}"), &buyer.access).await;
    assert_eq!(o["status"], "refunded");
    apply_delta(&app, &ring, &eid, &mut manifest).await;
    assert_eq!(
        admit(&ring, &manifest, &eid, &cred),
        Outcome::Reject(Reason::Revoked)
    );
    let version = manifest.version();
    let (st, ack) = app.webhook(&body, Some(&sig)).await;
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    let (_, m) = gate(&app, &org, &eid).await;
    assert_eq!(m.version(), version, "the replay published nothing");
    let (_, p) = app
        .get(&format!("/orders/{oid}/payments"), &buyer.access)
        .await;
    assert_eq!(p[0]["status"], "refunded");
    assert_eq!(app.available(&buyer.access, &eid, 2).await, 2);
}
both_stripe!(a_refund_made_in_stripe_revokes_the_tickets);

async fn late_payments_reclaim_stock_or_are_refunded(app: TestApp, stripe: LocalStripe) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer = app.register("buyer@example.com").await;
    let rival = app.register("rival@example.com").await;

    // Paid after the hold ran out, stock still there: the order is paid.
    let oid = id(&app.order(&buyer, &eid, 1, 1).await);
    let intent = stripe_intent(&app, &buyer, &oid).await;
    app.wait_order(&buyer.access, &oid, |o| o["status"] == "expired")
        .await;
    stripe.pay(&intent, CARD_OK).await;
    let o = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "paid")
        .await;
    assert_eq!(
        o["ticket_ids"].as_array().unwrap().len(),
        1,
        "the late payment got its ticket"
    );

    // Paid after the hold ran out and someone else took the seats: refunded.
    let late = id(&app.order(&buyer, &eid, 2, 2).await);
    let intent = stripe_intent(&app, &buyer, &late).await;
    app.wait_order(&buyer.access, &late, |o| o["status"] == "expired")
        .await;
    let taken = id(&app.order(&rival, &eid, 2, 2).await);
    let (st, v) = app
        .put(
            &format!("/orders/{taken}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    stripe.pay(&intent, CARD_OK).await;
    let mut refunded = Value::Null;
    for _ in 0..200 {
        let (_, p) = app
            .get(&format!("/orders/{late}/payments"), &buyer.access)
            .await;
        if p[0]["status"] == "refunded" {
            refunded = p;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(refunded[0]["status"], "refunded", "the money went back");
    let pi = stripe.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(pi["latest_charge"]["amount_refunded"], 19_800, "{pi}");
    let (_, o) = app.get(&format!("/orders/{late}"), &buyer.access).await;
    assert_eq!(
        (
            o["status"].as_str(),
            o["ticket_ids"].as_array().unwrap().len()
        ),
        (Some("expired"), 0)
    );
    let (_, t) = app.get(&format!("/orders/{taken}"), &rival.access).await;
    assert_eq!(t["status"], "paid", "the rival keeps the seats");
    assert_eq!(
        app.available(&buyer.access, &eid, 2).await,
        0,
        "never oversold"
    );
}
both_stripe!(late_payments_reclaim_stock_or_are_refunded, |c| {
    c.commerce.hold_secs = 1;
    c.commerce.sweep_interval_ms = 100;
});
