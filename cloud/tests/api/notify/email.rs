//! Order confirmation end to end on a real SMTP server: the email arrives
//! with each ticket's QR code inline and attached (decoding to the ticket's
//! credential), an .ics entry, the event's branding, exactly once.

use super::peers::{SmtpSink, decode_qr};
use super::{fast, mail, on_both, outbox_id};
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;

async fn order_confirmation_carries_scannable_qr_codes(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let port = smtp.port;
    let app = TestApp::spawn(backend, move |c| {
        fast(c);
        mail(c, port);
    })
    .await;
    let (org, eid, buyer) = setup(&app).await;
    let welcome = smtp
        .wait_for("welcome to the buyer", |m| {
            m.to() == "buyer@example.com" && m.subject() == "Welcome to Gatehouse"
        })
        .await;
    assert!(welcome.text().contains("Hello buyer"), "{}", welcome.text());

    let (st, v) = app
        .put(&format!("/notifications/branding/{eid}"), &org.access,
            json!({"primary_color": "#aa0011", "accent_color": "#00aa22", "logo_url": "https://cdn.example/logo.png"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = app
        .put(
            &format!("/notifications/branding/{eid}"),
            &buyer.access,
            json!({"primary_color": "#000000", "accent_color": "#000000"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    let oid = id(&app.order(&buyer, &eid, 1, 2).await);
    let (st, o) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{o}");
    let tids: Vec<String> = o["ticket_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(tids.len(), 2);

    let m = smtp
        .wait_for("order confirmation", |m| {
            m.subject() == "Your tickets for Harbour Lights Festival"
        })
        .await;
    assert_eq!(m.to(), "buyer@example.com");
    assert!(
        m.rcpt_to().contains("buyer@example.com"),
        "envelope recipient: {}",
        m.rcpt_to()
    );
    let parts = m.parts();
    let html = m.html();
    for tid in &tids {
        let cred = credential(&app, &buyer.access, tid).await;
        let attached = parts
            .iter()
            .find(|p| p.name.as_deref() == Some(&format!("ticket-{tid}.png")))
            .unwrap_or_else(|| {
                panic!(
                    "ticket {tid} attached as PNG: {:?}",
                    parts.iter().map(|p| &p.name).collect::<Vec<_>>()
                )
            });
        assert_eq!(attached.content_type, "image/png");
        assert_eq!(
            decode_qr(&attached.bytes),
            cred,
            "the attached QR code is the ticket's credential"
        );
        let inline = parts
            .iter()
            .find(|p| {
                p.content_id.as_deref().map(|c| c.trim_matches(['<', '>']))
                    == Some(&format!("qr-{tid}"))
            })
            .expect("the QR code is also inline");
        assert_eq!(decode_qr(&inline.bytes), cred);
        assert!(
            html.contains(&format!("cid:qr-{tid}")),
            "the HTML shows the inline code"
        );
    }
    let ics = parts
        .iter()
        .find(|p| p.name.as_deref() == Some("event.ics"))
        .expect("a calendar entry");
    let ics = String::from_utf8_lossy(&ics.bytes);
    assert!(
        ics.contains("SUMMARY:Harbour Lights Festival") && ics.contains("DTSTART:20310601T180000Z"),
        "{ics}"
    );
    // minijinja escapes `/` in HTML as `&#x2f;` (still the same URL to a mail client).
    assert!(
        html.contains("#aa0011") && html.contains("cdn.example&#x2f;logo.png"),
        "the event's branding: {html}"
    );
    assert!(m.text().contains("50.00 EUR"), "{}", m.text());

    let nid = outbox_id(&m.message_id());
    // The server has the message before the worker records the delivery.
    let mut s = serde_json::Value::Null;
    for _ in 0..100 {
        let (st, v) = app
            .get(&format!("/notifications/{nid}/status"), &org.access)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        s = v;
        if s["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        (
            s["status"].as_str(),
            s["attempts"].as_u64(),
            s["channel"].as_str()
        ),
        (Some("delivered"), Some(1), Some("email")),
        "{s}"
    );
    assert_eq!(s["attempt_log"][0]["outcome"], "delivered", "{s}");
    let (st, v) = app
        .get(&format!("/notifications/{nid}/status"), &buyer.access)
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("notifications_delivered_total{channel=\"email\"}"),
        "per-channel metrics: {metrics}"
    );

    // Paying again changes nothing and sends nothing.
    let (st, _) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "paid"}),
        )
        .await;
    assert_ne!(st, StatusCode::OK, "an order is paid once");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let confirmations = smtp
        .messages()
        .iter()
        .filter(|m| m.subject().starts_with("Your tickets"))
        .count();
    assert_eq!(confirmations, 1, "one confirmation per paid order");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM notifications WHERE kind = 'order_confirmation'",
            &[]
        )
        .await,
        count(
            &app,
            "SELECT COUNT(*) FROM orders WHERE status = 'paid'",
            &[]
        )
        .await,
        "every paid order has its confirmation row, written in the same transaction"
    );
}
on_both!(order_confirmation_carries_scannable_qr_codes);

async fn without_smtp_messages_are_kept_as_undeliverable(backend: Backend) {
    let app = TestApp::spawn(backend, fast).await;
    let (org, eid, buyer) = setup(&app).await;
    let (_oid, _tid) = bought(&app, &org, &eid, &buyer).await;
    let admin = app.admin().await;
    let mut rows = serde_json::Value::Null;
    for _ in 0..200 {
        let (st, v) = app
            .get(
                "/notifications?status=undeliverable&limit=100",
                &admin.access,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if v.as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "order_confirmation")
        {
            rows = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let conf = rows
        .as_array()
        .and_then(|r| r.iter().find(|n| n["kind"] == "order_confirmation"))
        .expect("the confirmation is stored as undeliverable, not dropped");
    assert_eq!(
        conf["attempts"], 0,
        "no attempt is used up without a transport: {conf}"
    );
    assert!(
        conf["last_error"].as_str().unwrap().contains("smtp_host"),
        "it says what to configure: {conf}"
    );
    let (st, v) = app
        .post(
            "/notifications/resend-undeliverable",
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
}
on_both!(without_smtp_messages_are_kept_as_undeliverable);
