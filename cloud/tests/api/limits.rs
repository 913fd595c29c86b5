//! What a strict client and a busy box office meet at the gateway: login
//! limits by failure (per address and per account), refresh in its own
//! bucket, `Retry-After` rounded up, bodies that must be objects, and an
//! early 401 while the body is still on its way.

use crate::both;
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn login_status(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn failed_logins_slow_down_one_account_from_any_address(app: TestApp) {
    for _ in 0..3 {
        let r = login_status(&app, ADMIN_EMAIL, "wrong-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_status(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "3 failures a minute per account: even the right password waits"
    );
    assert_eq!(
        retry_after(&r),
        20,
        "one try back every 20 s, announced rounded up (19.9 s is 20)"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    app.register("clerk@venue.test").await;
    for _ in 0..5 {
        let r = login_status(&app, "clerk@venue.test", PASSWORD).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "another account from the same address is not locked out"
        );
    }
}
both!(failed_logins_slow_down_one_account_from_any_address, |c| {
    c.rate_limit.login_failures_per_account_per_minute = 3;
    c.rate_limit.login_failures_per_address_per_minute = 100;
});

async fn a_box_office_behind_one_address_logs_in_freely_but_guessing_is_slow(app: TestApp) {
    for i in 0..4 {
        app.register(&format!("staff{i}@venue.test")).await;
    }
    for round in 0..3 {
        for i in 0..4 {
            let r = login_status(&app, &format!("staff{i}@venue.test"), PASSWORD).await;
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "round {round}: successful logins never count against the address"
            );
        }
    }
    for who in ["a@guess.test", "b@guess.test"] {
        let r = login_status(&app, who, "guess-guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_status(&app, "c@guess.test", "guess-guess").await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "2 failures a minute per address, across accounts"
    );
    assert_eq!(retry_after(&r), 30, "60 s / 2, rounded up");
}
both!(
    a_box_office_behind_one_address_logs_in_freely_but_guessing_is_slow,
    |c| {
        c.rate_limit.login_failures_per_address_per_minute = 2;
        c.rate_limit.auth_per_minute = 100;
    }
);

async fn refresh_does_not_share_the_login_bucket(app: TestApp) {
    let mut current = app.admin().await;
    for i in 0..6 {
        let (st, v) = app
            .post(
                "/auth/refresh",
                None,
                json!({"refresh_token": current.refresh}),
            )
            .await;
        assert_eq!(
            st,
            StatusCode::OK,
            "refresh {i} is not limited by logins: {v}"
        );
        current = session(&v);
    }
    let r = login_status(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "refreshes spend no login budget"
    );
    let mut last = StatusCode::OK;
    for _ in 0..3 {
        last = app
            .post(
                "/auth/logout",
                None,
                json!({"refresh_token": "not-a-token"}),
            )
            .await
            .0;
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "refresh and logout have their own bucket (8/min)"
    );
}
both!(refresh_does_not_share_the_login_bucket, |c| {
    c.rate_limit.auth_per_minute = 2;
    c.rate_limit.login_failures_per_address_per_minute = 2;
    c.rate_limit.refresh_per_minute = 8;
});

async fn retry_after_is_rounded_up(app: TestApp) {
    let admin = app.admin().await;
    for _ in 0..3 {
        assert_eq!(app.get("/tickets", &admin.access).await.0, StatusCode::OK);
    }
    let r = app
        .client
        .get(app.url("/tickets"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        retry_after(&r),
        20,
        "the next slot opens in just under 20 s: waiting 19 s would be refused again"
    );
}
both!(retry_after_is_rounded_up, |c| {
    c.rate_limit.tickets_per_minute = 3;
});

async fn request_bodies_must_be_objects(app: TestApp) {
    let (st, v) = app
        .post("/auth/login", None, json!([ADMIN_EMAIL, ADMIN_PASSWORD]))
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("object"),
        "the message says what is expected: {v}"
    );
    let admin = app.admin().await;
    for body in [json!("x"), json!(3), json!(null), json!(["Harbour", "x"])] {
        let (st, v) = app.post("/events", Some(&admin.access), body.clone()).await;
        assert_error(
            st,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    let (st, v) = app
        .post(
            "/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "objects are still accepted: {v}");
}
both!(request_bodies_must_be_objects);

/// Reads one HTTP/1.1 response (headers and a Content-Length body).
async fn read_response(stream: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf[head_end..head_end + len].to_vec()))
}

async fn an_early_401_with_a_late_body_keeps_or_announces_the_connection(app: TestApp) {
    let body = serde_json::to_vec(&event_body()).unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stream.write_all(&body).await;
    let (head, _) = read_response(&mut stream)
        .await
        .expect("the 401 arrives whole");
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let announced = head.lines().any(|l| l.trim() == "connection: close");
    if announced {
        // The client was told; the server then closes cleanly.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the server closes after announcing it");
        assert!(n.is_ok());
        return;
    }
    let second = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    let sent = stream.write_all(second.as_bytes()).await;
    let answer = match sent {
        Ok(()) => read_response(&mut stream).await,
        Err(_) => None,
    };
    assert!(
        answer.is_some_and(|(h, _)| h.starts_with("http/1.1 200")),
        "a connection closed after a 401 must say `Connection: close`, or stay usable"
    );
}
both!(an_early_401_with_a_late_body_keeps_or_announces_the_connection);

async fn a_request_whose_body_is_read_keeps_its_connection(app: TestApp) {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = br#"{"email":"nobody@example.com","password":"whatever1"}"#;
    for i in 0..2 {
        let req = format!(
            "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let (head, _) = read_response(&mut stream).await.expect("an answer");
        assert!(head.starts_with("http/1.1 401"), "request {i}: {head}");
        assert!(
            !head.contains("connection: close"),
            "a fully read request keeps its connection alive: {head}"
        );
    }
    let _ = app.call(Method::GET, "/healthz", None, None).await;
}
both!(a_request_whose_body_is_read_keeps_its_connection);
