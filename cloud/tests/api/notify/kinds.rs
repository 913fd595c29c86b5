//! The automatic messages besides the order confirmation: transfer received
//! (with the new holder's QR code) and sent, refund, event cancelled, and
//! the event reminder, which a buyer can opt out of.

use super::peers::{SmtpSink, decode_qr};
use super::{fast, mail, on_both};
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;

async fn transfer_refund_and_cancellation_emails(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let port = smtp.port;
    let app = TestApp::spawn(backend, move |c| {
        fast(c);
        mail(c, port);
        c.notifications.reminders.enabled = false;
    })
    .await;
    let (org, eid, buyer) = setup(&app).await;
    let friend = app.register("friend@example.com").await;
    let (_, tid) = bought(&app, &org, &eid, &buyer).await;
    let (st, v) = app
        .post(
            &format!("/tickets/{tid}/transfer"),
            Some(&buyer.access),
            json!({"to_user_id": friend.user_id}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got = smtp
        .wait_for("transfer received", |m| {
            m.to() == "friend@example.com" && m.subject().contains("sent you a ticket")
        })
        .await;
    let png = got
        .parts()
        .into_iter()
        .find(|p| p.name.as_deref() == Some(&format!("ticket-{tid}.png")))
        .expect("the new QR code");
    assert_eq!(
        decode_qr(&png.bytes),
        credential(&app, &friend.access, &tid).await,
        "the new holder gets the new credential"
    );
    smtp.wait_for("transfer sent", |m| {
        m.to() == "buyer@example.com" && m.subject().starts_with("You sent a ticket")
    })
    .await;

    let (oid, _) = bought(&app, &org, &eid, &buyer).await;
    let (st, v) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let m = smtp
        .wait_for("refund", |m| {
            m.to() == "buyer@example.com" && m.subject().starts_with("Refund for")
        })
        .await;
    assert!(
        m.text().contains("25.00 EUR") && m.text().contains(&oid),
        "{}",
        m.text()
    );

    let (st, v) = app
        .patch(
            &format!("/events/{eid}/status"),
            &org.access,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    smtp.wait_for("cancellation to the holder", |m| {
        m.to() == "friend@example.com" && m.subject().starts_with("Cancelled:")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !smtp
            .messages()
            .iter()
            .any(|m| m.to() == "buyer@example.com" && m.subject().starts_with("Cancelled:")),
        "the buyer holds no valid ticket any more (transferred one, refunded the other)"
    );
}
on_both!(transfer_refund_and_cancellation_emails);

async fn reminders_respect_the_opt_out(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let port = smtp.port;
    // A lead time that covers the event (2031): every sweep finds it due.
    let app = TestApp::spawn(backend, move |c| {
        fast(c);
        mail(c, port);
        c.notifications.reminders.lead_time_secs = 10 * 365 * 86_400;
    })
    .await;
    let (org, eid, buyer) = setup(&app).await;
    let quiet = app.register("quiet@example.com").await;
    let (st, v) = app
        .put(
            "/notifications/preferences",
            &quiet.access,
            json!({"reminders": false, "phone": null, "sms": false}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, p) = app.get("/notifications/preferences", &quiet.access).await;
    assert_eq!(p["reminders"], false);
    let _ = bought(&app, &org, &eid, &buyer).await;
    let _ = bought(&app, &org, &eid, &quiet).await;
    let m = smtp
        .wait_for("reminder", |m| {
            m.to() == "buyer@example.com" && m.subject().starts_with("Reminder:")
        })
        .await;
    assert!(m.text().contains("turn reminders off"), "{}", m.text());
    smtp.wait_for("the opted-out buyer's tickets", |m| {
        m.to() == "quiet@example.com" && m.subject().starts_with("Your tickets")
    })
    .await;
    // Another sweep (every 5 s) sends neither a second reminder nor one to the opted-out buyer.
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let reminders: Vec<String> = smtp
        .messages()
        .iter()
        .filter(|m| m.subject().starts_with("Reminder:"))
        .map(|m| m.to())
        .collect();
    assert_eq!(
        reminders,
        ["buyer@example.com"],
        "one reminder, none for the opted-out buyer"
    );
}
on_both!(reminders_respect_the_opt_out);
