//! `POST /notifications/email` is no open relay: customers may not send,
//! organizers reach only the holders of their own events' tickets, explicit
//! addresses are for admins; bad input is a typed 4xx that queues nothing.

use super::peers::SmtpSink;
use super::{fast, mail, on_both, outbox_id};
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;

async fn organizers_reach_their_audience_only(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let port = smtp.port;
    let app = TestApp::spawn(backend, move |c| {
        fast(c);
        mail(c, port);
    })
    .await;
    let (org, eid, buyer) = setup(&app).await;
    let _ = bought(&app, &org, &eid, &buyer).await;
    let bystander = app.register("bystander@example.com").await;
    let rival = app.organizer("rival@example.com").await;
    let msg = |extra: serde_json::Value| {
        let mut b = json!({"subject": "Doors open at 18:00", "text": "Bring your <ticket>.\n\nSee you soon"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let before = count(&app, "SELECT COUNT(*) FROM notifications", &[]).await;
    for (who, body, status, code) in [
        (
            &buyer,
            msg(json!({"event_id": eid})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &bystander,
            msg(json!({"to": ["victim@example.com"]})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &org,
            msg(json!({"to": ["victim@example.com"]})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &org,
            msg(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &rival,
            msg(json!({"event_id": eid})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &org,
            json!({"event_id": eid, "subject": "", "text": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &org,
            json!({"event_id": eid, "subject": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let (st, v) = app
            .post("/notifications/email", Some(&who.access), body)
            .await;
        assert_error(st, &v, status, code);
    }
    let (st, v) = app
        .post(
            "/notifications/sms",
            Some(&org.access),
            json!({"to": ["+14155550123"], "text": "hi"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM notifications", &[]).await,
        before,
        "refused sends queue nothing"
    );

    let (st, v) = app
        .post(
            "/notifications/email",
            Some(&org.access),
            msg(json!({"event_id": eid})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        v["ids"].as_array().unwrap().len(),
        1,
        "one holder, one message: {v}"
    );
    let m = smtp
        .wait_for("the organizer's message", |m| {
            m.subject() == "Doors open at 18:00"
        })
        .await;
    assert_eq!(m.to(), "buyer@example.com");
    assert!(
        m.html().contains("Bring your &lt;ticket&gt;."),
        "escaped in HTML: {}",
        m.html()
    );
    assert!(
        m.text().contains("Bring your <ticket>."),
        "verbatim in text"
    );
    let nid = outbox_id(&m.message_id());
    assert_eq!(nid, v["ids"][0].as_str().unwrap());
    let (st, s) = app
        .get(&format!("/notifications/{nid}/status"), &rival.access)
        .await;
    assert_error(st, &s, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .get(&format!("/notifications?event_id={eid}"), &rival.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    let doc = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for path in [
        "/notifications/email",
        "/notifications/sms",
        "/notifications/webhook",
        "/notifications/{id}/status",
    ] {
        assert!(
            doc.contains(&format!("\"{path}\"")),
            "{path} is in the OpenAPI document"
        );
    }
    let admin = app.admin().await;
    let (st, v) = app
        .post(
            "/notifications/email",
            Some(&admin.access),
            json!({"to": ["ops@example.com"], "subject": "Maintenance", "text": "Tonight"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "admins may address anyone: {v}");
    smtp.wait_for("the admin's message", |m| {
        m.subject() == "Maintenance" && m.to() == "ops@example.com"
    })
    .await;
    let (st, v) = app
        .post(
            "/notifications/email",
            Some(&admin.access),
            json!({"to": ["not an address"], "subject": "x", "text": "y"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
on_both!(organizers_reach_their_audience_only);
