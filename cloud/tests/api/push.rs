//! The device push stream (`GET /sync/events/{id}/push`): news on connect
//! and on every change, and the same token checks as every device call.

use crate::both;
use crate::common::*;
use crate::devices::{device_call, enroll, error_code, sell};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Reads an open event stream event by event.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    /// The next `(event, data)`; `None` when the stream ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if name.is_empty() {
                    continue;
                }
                return Some((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("the stream sends news (or a keep-alive) well within 30 s");
            match chunk {
                Ok(Some(c)) => self.buf.push_str(&String::from_utf8_lossy(&c)),
                _ => return None,
            }
        }
    }

    /// Skips to the next event named `name`.
    async fn next_named(&mut self, name: &str) -> Option<Value> {
        while let Some((n, v)) = self.next().await {
            if n == name {
                return Some(v);
            }
        }
        None
    }
}

async fn open(app: &TestApp, eid: &str, token: &str) -> Events {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .get(app.url(&format!("/sync/events/{eid}/push")))
        .bearer_auth(token)
        .send()
        .await
        .expect("push request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Events {
        resp,
        buf: String::new(),
    }
}

async fn the_push_stream_tells_news_and_refuses_unknown_and_revoked_tokens(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dev = enroll(&app, &org, &eid).await;
    let path = format!("/sync/events/{eid}/push");

    let (st, body, _) = device_call(&app, None, &path, None).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    let unknown = "ab".repeat(32);
    let (st, body, _) = device_call(&app, Some(&unknown), &path, None).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "a token the cloud never issued opens no stream"
    );

    let mut events = open(&app, &eid, &dev.token).await;
    let first = events
        .next_named("manifest")
        .await
        .expect("a manifest event on connect");
    assert_eq!(first, json!({"version": 1}), "the activation is version 1");
    let roster = events
        .next_named("roster")
        .await
        .expect("a roster event on connect");
    assert_eq!(roster, json!({"devices": 1, "revoked": 0}));

    sell(&app, &org, &eid, 1).await;
    let news = events
        .next_named("manifest")
        .await
        .expect("news of the sale");
    assert_eq!(news, json!({"version": 2}), "the sale is version 2");

    let (st, v) = app
        .post(
            &format!("/devices/{}/revoke", dev.node_id),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    if let Some((name, data)) = events.next().await {
        panic!("a revoked device's stream ends without more news, got {name} {data}");
    }
    let (st, body, _) = device_call(&app, Some(&dev.token), &path, None).await;
    assert_eq!(
        (st, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "device_revoked"),
        "a revoked device cannot open the stream again"
    );
}
both!(the_push_stream_tells_news_and_refuses_unknown_and_revoked_tokens);

async fn another_devices_revocation_is_roster_news(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let watcher = enroll(&app, &org, &eid).await;
    let mut events = open(&app, &eid, &watcher.token).await;
    assert_eq!(
        events.next_named("roster").await,
        Some(json!({"devices": 1, "revoked": 0}))
    );
    let second = enroll(&app, &org, &eid).await;
    assert_eq!(
        events.next_named("roster").await,
        Some(json!({"devices": 2, "revoked": 0})),
        "an enrollment is roster news"
    );
    let (st, v) = app
        .post(
            &format!("/devices/{}/revoke", second.node_id),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        events.next_named("roster").await,
        Some(json!({"devices": 2, "revoked": 1})),
        "a revocation is roster news for the other devices"
    );
}
both!(another_devices_revocation_is_roster_news);
