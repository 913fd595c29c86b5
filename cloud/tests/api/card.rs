//! Card payments confirmed by the server: the buyer's browser tokenizes
//! the card with Stripe.js (here: localstripe's `/v1/tokens` with the
//! publishable key, what its Stripe.js mock does), the server attaches the
//! token's card to the intent and confirms; the webhook pays the order.
//! (localstripe does not take a second card on an intent whose charge was
//! declined, so the retry after a decline is not exercised here.)

use crate::both_stripe;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;

async fn token_card(stripe: &LocalStripe, number: &str) -> String {
    let (st, tok) = stripe
        .post(
            "/v1/tokens",
            &[
                ("card[number]", number),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2034"),
                ("card[cvc]", "123"),
            ],
        )
        .await;
    assert!(st.is_success(), "token: {tok}");
    tok["card"]["id"]
        .as_str()
        .expect("the token's card id")
        .to_string()
}

async fn a_card_from_stripe_js_pays_the_order(app: TestApp, stripe: LocalStripe) {
    let (org, eid, buyer) = setup(&app).await;
    let other = app.register("other@example.com").await;
    let oid = id(&app.order(&buyer, &eid, 1, 1).await);
    let pid = id(&start_stripe(&app, &buyer, &oid).await);
    let path = format!("/orders/{oid}/payments/{pid}/card");

    let (st, v) = app
        .post(
            &path,
            Some(&buyer.access),
            json!({"card": "4242424242424242"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let card = token_card(&stripe, CARD_OK).await;
    let (st, v) = app
        .post(&path, Some(&other.access), json!({"card": card}))
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post(&path, Some(&org.access), json!({"card": card}))
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post(
            &format!("/orders/{oid}/payments/{}/card", uuid::Uuid::now_v7()),
            Some(&buyer.access),
            json!({"card": card}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");

    let (st, v) = app
        .post(&path, Some(&buyer.access), json!({"card": card}))
        .await;
    assert_eq!(
        (st, v["stripe_status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{v}"
    );
    let paid = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid["payment_method"], "stripe", "{paid}");
    assert_eq!(
        paid["ticket_ids"].as_array().unwrap().len(),
        1,
        "the ticket is issued"
    );
    let (st, v) = app
        .post(&path, Some(&buyer.access), json!({"card": card}))
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
}
both_stripe!(a_card_from_stripe_js_pays_the_order);

async fn a_declined_card_is_refused_with_stripes_reason(app: TestApp, stripe: LocalStripe) {
    let (_org, eid, buyer) = setup(&app).await;
    let oid = id(&app.order(&buyer, &eid, 1, 1).await);
    let p = start_stripe(&app, &buyer, &oid).await;
    let path = format!("/orders/{oid}/payments/{}/card", id(&p));
    let declined = token_card(&stripe, CARD_DECLINED).await;
    let (st, v) = app
        .post(&path, Some(&buyer.access), json!({"card": declined}))
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Stripe refused"),
        "the reason is Stripe's: {v}"
    );
    let (_, o) = app.get(&format!("/orders/{oid}"), &buyer.access).await;
    assert_eq!(
        o["status"], "pending",
        "a declined card pays nothing; the order still holds its seat: {o}"
    );
    assert!(
        o["ticket_ids"].as_array().unwrap().is_empty(),
        "no tickets without payment"
    );
}
both_stripe!(a_declined_card_is_refused_with_stripes_reason);
