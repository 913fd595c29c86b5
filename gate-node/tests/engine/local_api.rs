//! The local API's refusals come in the cloud's shape,
//! `{"error": {"code", "message"}}`, with the right status, including the
//! ones the framework makes (wrong content type, bad JSON, unknown route,
//! wrong method, bad query).

use crate::harness::Cluster;
use gate_node::fixture::EventFixture;
use reqwest::StatusCode;

async fn refusal(resp: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(resp.status(), status, "status for the {code} case");
    let text = resp.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("the {code} answer is JSON in the error shape: {text:?}"));
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a message says what went wrong: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_refusals_use_the_error_shape() {
    let f = EventFixture::new(43, 2);
    let c = Cluster::start(&f, 1).await;
    let node = &c.nodes[0];
    let http = &node.http;
    let resp = http
        .post(node.url("/scan"))
        .header("content-type", "text/plain")
        .body(r#"{"text":"x"}"#)
        .send()
        .await
        .unwrap();
    refusal(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let resp = http
        .post(node.url("/scan"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    refusal(resp, StatusCode::BAD_REQUEST, "invalid_json").await;
    let resp = http
        .post(node.url("/scan"))
        .json(&serde_json::json!({"txt": "x"}))
        .send()
        .await
        .unwrap();
    refusal(resp, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable").await;
    let resp = http.get(node.url("/no/such/route")).send().await.unwrap();
    refusal(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = http.delete(node.url("/status")).send().await.unwrap();
    refusal(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let resp = http
        .get(node.url("/scans/recent?limit=lots"))
        .send()
        .await
        .unwrap();
    refusal(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = http
        .post(node.url("/scan"))
        .json(&serde_json::json!({"text": "A".repeat(8000)}))
        .send()
        .await
        .unwrap();
    refusal(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}
