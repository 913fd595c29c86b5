//! SMS through a Twilio-like receiver that checks basic auth, the form
//! fields and E.164 numbers, and throttles the first request with 429.

use super::peers::{TWILIO_FROM, TWILIO_SID, TWILIO_TOKEN, TwilioSink};
use super::{fast, on_both};
use crate::common::*;
use crate::shop::*;
use cloud::config::Secret;
use reqwest::StatusCode;
use serde_json::json;

async fn sms_reaches_buyers_who_asked_for_it(backend: Backend) {
    let twilio = TwilioSink::start().await;
    let base = twilio.base.clone();
    let app = TestApp::spawn(backend, move |c| {
        fast(c);
        c.notifications.sms.api_base = base;
        c.notifications.sms.account_sid = TWILIO_SID.into();
        c.notifications.sms.auth_token = Secret::new(TWILIO_TOKEN);
        c.notifications.sms.from = TWILIO_FROM.into();
    })
    .await;
    let (org, eid, buyer) = setup(&app).await;
    let (st, v) = app
        .put(
            "/notifications/preferences",
            &buyer.access,
            json!({"reminders": true, "phone": "0041 79", "sms": true}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = app
        .put(
            "/notifications/preferences",
            &buyer.access,
            json!({"reminders": true, "phone": "+41791234567", "sms": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (oid, _) = bought(&app, &org, &eid, &buyer).await;
    let seen = twilio.wait_for(1).await;
    assert_eq!(
        (seen[0].to.as_str(), seen[0].from.as_str()),
        ("+41791234567", TWILIO_FROM)
    );
    assert!(seen[0].body.contains(&oid), "{}", seen[0].body);
    let (st, list) = app
        .get(&format!("/notifications?event_id={eid}"), &org.access)
        .await;
    assert_eq!(st, StatusCode::OK);
    let sms = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "sms")
        .expect("the SMS row")
        .clone();
    let mut s = serde_json::Value::Null;
    for _ in 0..100 {
        s = app
            .get(
                &format!("/notifications/{}/status", sms["id"].as_str().unwrap()),
                &org.access,
            )
            .await
            .1;
        if s["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        (s["status"].as_str(), s["attempts"].as_u64()),
        (Some("delivered"), Some(2)),
        "the 429 was retried: {s}"
    );
    assert_eq!(s["attempt_log"][0]["status_code"], 429, "{s}");

    let admin = app.admin().await;
    let (st, v) = app
        .post(
            "/notifications/sms",
            Some(&admin.access),
            json!({"to": ["+447700900123"], "text": "Gates open"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let seen = twilio.wait_for(2).await;
    assert_eq!(
        (seen[1].to.as_str(), seen[1].body.as_str()),
        ("+447700900123", "Gates open")
    );
    let (st, v) = app
        .post(
            "/notifications/sms",
            Some(&admin.access),
            json!({"to": ["447700900123"], "text": "x"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
on_both!(sms_reaches_buyers_who_asked_for_it);

async fn a_wrong_token_fails_without_retrying(backend: Backend) {
    let twilio = TwilioSink::start().await;
    let base = twilio.base.clone();
    let app = TestApp::spawn(backend, move |c| {
        fast(c);
        c.notifications.sms.api_base = base;
        c.notifications.sms.account_sid = TWILIO_SID.into();
        c.notifications.sms.auth_token = Secret::new("wrong-token");
        c.notifications.sms.from = TWILIO_FROM.into();
    })
    .await;
    let admin = app.admin().await;
    let (st, v) = app
        .post(
            "/notifications/sms",
            Some(&admin.access),
            json!({"to": ["+447700900123"], "text": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let nid = v["ids"][0].as_str().unwrap().to_string();
    for _ in 0..100 {
        let (_, s) = app
            .get(&format!("/notifications/{nid}/status"), &admin.access)
            .await;
        if s["status"] == "failed" {
            assert_eq!(
                (s["attempts"].as_u64(), s["last_status_code"].as_u64()),
                (Some(1), Some(401)),
                "a 4xx is final: {s}"
            );
            assert!(
                !s.to_string().contains("wrong-token"),
                "the token is never shown: {s}"
            );
            assert!(twilio.seen().is_empty());
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the SMS never failed");
}
on_both!(a_wrong_token_fails_without_retrying);
