//! Named zones from the organizer to the gate: a tier made with
//! `zones: ["Balcony"]` carries Balcony's bit, and a gate enrolled with a
//! code for "Balcony" knows its zone by name (`GET /status`).

use e2e::cloud::Cloud;
use e2e::node::{Node, Timings};
use e2e::proxy::Proxy;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_enrolled_for_a_named_zone_reports_the_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud_dir = dir.path().join("cloud");
    std::fs::create_dir_all(&cloud_dir).expect("cloud dir");
    let mut cloud = Cloud::start(&cloud_dir).await;
    cloud.organizer().await;
    let event = cloud.event().await;

    let (st, v) = cloud
        .call(
            Method::PUT,
            &format!("/events/{event}/zones/2"),
            Some(json!({"name": "Balcony"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, e) = cloud
        .call(
            Method::POST,
            &format!("/events/{event}/tiers"),
            Some(
                json!({"tier": 7, "name": "Balcony seat", "price_minor": 4000,
                        "capacity": 5, "zones": ["Balcony"]}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{e}");
    let tier = e["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == 7)
        .expect("the new tier");
    assert_eq!(tier["zone_mask"], 1 << 2, "Balcony is zone 2: {tier}");
    assert_eq!(tier["zones"], json!(["Balcony"]));

    let (st, c) = cloud
        .call(
            Method::POST,
            "/devices/enrollment-codes",
            Some(
                json!({"event_id": event, "gate": "Stairs", "direction": "entry",
                        "zone_name": "Balcony"}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(
        (c["zone"].as_u64(), c["zone_name"].as_str()),
        (Some(2), Some("Balcony"))
    );

    let gate_dir = dir.path().join("gate");
    std::fs::create_dir_all(&gate_dir).expect("gate dir");
    let mut node = Node::enroll(
        &gate_dir,
        Proxy::start().await,
        &cloud.url(""),
        c["code"].as_str().unwrap(),
        &[],
        Timings::fast(),
    );
    node.start();
    let status = node.status().await;
    assert_eq!(status["zone"], 2, "{status}");
    assert_eq!(status["zone_name"], "Balcony", "{status}");
    cloud.kill();
}
