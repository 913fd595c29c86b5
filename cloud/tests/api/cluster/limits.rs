//! Rate limits shared through Redis (`rate_limit.store = "redis"`): three
//! replicas behind the balancer together allow the configured limit, not
//! three times it, and a password guesser the configured tries. And Redis going away at runtime: the limited routes
//! answer a typed 503 (fail closed), the rest keeps working, and the limits
//! are back when Redis is.

use super::{Cluster, RedisServer, served_by};
use crate::common::{Backend, TestApp};
use cloud::config::{LimiterStore, Secret};
use reqwest::StatusCode;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sharing_redis_allow_the_limit_once_not_three_times() {
    // 15 a minute: one more every 4 s, so the requests below (well under
    // 4 s) are let in 15 times whichever replica each reaches.
    const LIMIT: usize = 15;
    const LOGINS: usize = 6;
    let redis = RedisServer::start().await;
    let cluster = Cluster::start(
        3,
        &[
            ("CLOUD_RATE_LIMIT__STORE", "redis".into()),
            ("CLOUD_RATE_LIMIT__REDIS_URL", redis.url()),
            ("CLOUD_RATE_LIMIT__GLOBAL_PER_MINUTE", LIMIT.to_string()),
            (
                "CLOUD_RATE_LIMIT__LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE",
                "2".into(),
            ),
        ],
    )
    .await;
    let client = &cluster.app.client;
    let started = Instant::now();

    // A guesser's wrong passwords, one after another, each to the next
    // replica: two tries for the account in all, not two per replica.
    let mut logins = Vec::new();
    let mut guessed_at = BTreeSet::new();
    for n in 0..LOGINS {
        let r = client
            .post(cluster.app.url("/auth/login"))
            .json(&serde_json::json!({"email": crate::common::ADMIN_EMAIL, "password": format!("guess {n}")}))
            .send()
            .await
            .unwrap();
        guessed_at.insert(served_by(r.headers()));
        logins.push(r.status().as_u16());
    }
    assert_eq!(guessed_at.len(), 3, "the guesses reached every replica");
    assert_eq!(
        logins,
        [401, 401, 429, 429, 429, 429],
        "the account's failures are counted once for all replicas"
    );

    let url = cluster.app.url("/public/events");
    let answers = futures_util::future::join_all((0..3 * LIMIT).map(|_| async {
        let r = client.get(&url).send().await.expect("an answer");
        (
            r.status(),
            served_by(r.headers()),
            r.headers().get("retry-after").cloned(),
        )
    }))
    .await;
    let elapsed = started.elapsed();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut replicas = BTreeSet::new();
    for (st, by, retry) in &answers {
        *by_status.entry(st.as_u16()).or_default() += 1;
        replicas.insert(by.clone());
        if *st == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry.is_some(), "a 429 says when to come back");
        }
    }
    assert_eq!(
        replicas.len(),
        3,
        "the requests reached every replica: {replicas:?}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "the requests took {elapsed:?}: a token came back meanwhile"
    );
    // The logins above spent from the global bucket too.
    assert_eq!(
        by_status.get(&200).copied().unwrap_or(0),
        LIMIT - LOGINS,
        "one shared bucket of {LIMIT}, not one per replica: {by_status:?}"
    );
    assert_eq!(
        by_status.get(&429).copied().unwrap_or(0),
        2 * LIMIT + LOGINS,
        "{by_status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_limited_routes_answer_a_typed_503_and_recover() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let app = TestApp::spawn(Backend::Sqlite, move |c| {
        c.rate_limit.store = LimiterStore::Redis;
        c.rate_limit.redis_url = Secret::new(url);
        c.rate_limit.redis_timeout_ms = 200;
    })
    .await;
    let (st, _) = app
        .call(reqwest::Method::GET, "/public/events", None, None)
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "Redis up: the request is counted and let in"
    );

    redis.kill();
    let resp = app
        .client
        .get(app.url("/public/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "fail closed, never a 500"
    );
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limiter_unavailable", "{body}");
    let (st, _) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "unlimited routes (health, webhooks, device sync) keep working"
    );
    let (st, v) = app
        .post("/payments/webhook", None, serde_json::json!({}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_signature")),
        "the payment webhook does not ask Redis: {v}"
    );

    redis.resume().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (st, v) = app
            .call(reqwest::Method::GET, "/public/events", None, None)
            .await;
        if st == StatusCode::OK {
            break;
        }
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(
            Instant::now() < deadline,
            "the limiter reconnects once Redis is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
