//! One Stripe event delivered to one replica and retried to the others
//! (Stripe retries a delivery whose answer it did not get, and a balancer
//! sends the retry wherever it likes), all at once: the order is paid once,
//! its tickets issued once, its confirmation queued once.

use super::Cluster;
use crate::common::{Session, id};
use crate::shop::{
    LocalStripe, STRIPE_KEY, WEBHOOK_SECRET, count, signed_now, stripe_intent, succeeded_body,
};
use reqwest::StatusCode;
use serde_json::Value;

async fn deliver(client: &reqwest::Client, url: String, body: String, signature: String) -> Value {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .expect("the replica answers");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "a signed delivery is acknowledged"
    );
    resp.json().await.expect("an acknowledgement")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivered_to_one_replica_and_retried_to_the_others_settles_once() {
    let stripe = LocalStripe::start().await;
    let cluster = Cluster::start(
        3,
        &[
            ("CLOUD_PAYMENTS__STRIPE_API_BASE", stripe.base()),
            ("CLOUD_PAYMENTS__STRIPE_SECRET_KEY", STRIPE_KEY.into()),
            ("CLOUD_PAYMENTS__WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ],
    )
    .await;
    let app = &cluster.app;
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let buyer: Session = app.register("buyer@example.com").await;
    let oid = id(&app.order(&buyer, &eid, 1, 2).await);
    let intent = stripe_intent(app, &buyer, &oid).await;
    let (st, confirmed) = stripe.pay(&intent, crate::shop::CARD_OK).await;
    assert!(st.is_success(), "localstripe takes the card: {confirmed}");

    let body = succeeded_body("evt_cluster_paid", &intent, 5000, &oid);
    let signature = signed_now(&body);
    // Each replica directly, and twice through the balancer, at once.
    let mut urls: Vec<String> = (0..3)
        .map(|i| cluster.direct(i, "/payments/webhook"))
        .collect();
    urls.push(app.url("/payments/webhook"));
    urls.push(app.url("/payments/webhook"));
    let acks = futures_util::future::join_all(
        urls.into_iter()
            .map(|u| deliver(&app.client, u, body.clone(), signature.clone())),
    )
    .await;
    let applied = acks.iter().filter(|a| a["outcome"] == "applied").count();
    assert_eq!(
        applied, 1,
        "one delivery applies the event, the others see it done: {acks:?}"
    );
    assert!(
        acks.iter()
            .all(|a| a["outcome"] == "applied" || a["outcome"] == "duplicate"),
        "{acks:?}"
    );

    let paid = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid["ticket_ids"].as_array().unwrap().len(), 2, "{paid}");
    let binds = [oid.as_str()];
    let once = |sql: &'static str| count(app, sql, &binds);
    assert_eq!(
        once("SELECT COUNT(*) FROM tickets WHERE order_id = $1").await,
        2,
        "the tickets are issued once"
    );
    assert_eq!(
        once("SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status = 'succeeded'").await,
        1,
        "one payment succeeded"
    );
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM webhook_events WHERE id = 'evt_cluster_paid'",
            &[]
        )
        .await,
        1,
        "the event is recorded once"
    );
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM notifications WHERE kind = 'order_confirmation' AND channel = 'email' AND user_id = $1",
            &[&buyer.user_id]
        )
        .await,
        1,
        "the buyer is sent one confirmation"
    );
}
