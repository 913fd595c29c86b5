//! The seed's check-in endpoints over the CRDT: lookup, validation, online
//! check-in with duplicate prevention, scans by id, user and event, stats
//! with a partition's double admission, and role checks throughout.

use crate::both;
use crate::common::*;
use crate::devices::{device_call, enroll, record, sell};
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::checkin::Summary;
use sync_protocol::{ScanRecord, SyncMessage};

async fn push(app: &TestApp, token: &str, eid: &str, records: Vec<ScanRecord>) -> SyncMessage {
    let body = SyncMessage {
        event_id: eid.parse().unwrap(),
        have: Summary::default(),
        records,
    }
    .encode();
    let (st, bytes, _) = device_call(
        app,
        Some(token),
        &format!("/sync/events/{eid}/checkins"),
        Some(body),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    SyncMessage::decode(&bytes).unwrap()
}

async fn door_endpoints_decide_record_and_prevent_duplicates(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let staff = app.with_role("staff@example.com", "staff").await;
    let holder = app.register("holder@example.com").await;
    let stranger = app.register("stranger@example.com").await;
    let rival = app.organizer("rival@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    crate::correctness::add_staff(&app, &org, &eid, &staff).await;
    let (st, sale) = app
        .post(
            &format!("/events/{eid}/ticket-sale"),
            Some(&org.access),
            json!({"tier": 1, "quantity": 1, "holder_name": "Holder", "payment_method": "card",
                   "buyer_email": "holder@example.com"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sale}");
    let tid = sale["tickets"][0]["id"].as_str().unwrap().to_string();
    let qr = sale["tickets"][0]["credential"]
        .as_str()
        .unwrap()
        .to_string();

    // Lookup ("registration"): door roles only; the credential must verify.
    let (st, v) = app
        .post(
            "/checkin/tickets",
            Some(&staff.access),
            json!({"credential": qr}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["registered"].as_bool(), v["state"].as_str()),
        (Some(true), Some("never_seen"))
    );
    let (st, v) = app
        .post(
            "/checkin/tickets",
            Some(&staff.access),
            json!({"credential": "TK1:garbage"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "malformed_credential",
    );
    let (st, v) = app
        .post(
            "/checkin/tickets",
            Some(&holder.access),
            json!({"ticket_id": tid}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app
        .post(
            "/checkin/tickets",
            Some(&rival.access),
            json!({"ticket_id": tid}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    // Validate is a dry run.
    let validate = format!("/checkin/tickets/{tid}/validate");
    let (st, v) = app.get(&validate, &org.access).await;
    assert_eq!(
        (st, v["decision"].as_str()),
        (StatusCode::OK, Some("admit")),
        "{v}"
    );
    assert!(v["scan_id"].is_null(), "validation records nothing");
    let (st, v) = app.get(&format!("{validate}?zone=5"), &org.access).await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::OK, Some("wrong_zone")),
        "{v}"
    );
    let (st, v) = app.get(&validate, &holder.access).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    // Online check-in: admit once, then already_inside (recorded too).
    let (st, first) = app
        .post(
            "/checkin/check-in",
            Some(&staff.access),
            json!({"credential": qr, "gate": "Box office"}),
        )
        .await;
    assert_eq!(
        (st, first["decision"].as_str()),
        (StatusCode::CREATED, Some("admit")),
        "{first}"
    );
    let (st, again) = app
        .post(
            "/checkin/check-in",
            Some(&staff.access),
            json!({"ticket_id": tid}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{again}");
    assert_eq!(
        (again["decision"].as_str(), again["reason"].as_str()),
        (Some("reject"), Some("already_inside"))
    );
    let (st, v) = app
        .post(
            "/checkin/check-in",
            Some(&holder.access),
            json!({"ticket_id": tid}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let other = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    crate::correctness::add_staff(&app, &org, &other, &staff).await;
    let (st, v) = app
        .post(
            "/checkin/check-in",
            Some(&staff.access),
            json!({"credential": qr, "event_id": other}),
        )
        .await;
    // Another event's ticket is signed by a key this event does not hold:
    // the signature is checked before anything the credential claims
    // (docs/protocol.md, the decision), so it is `unknown_key`.
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::OK, Some("unknown_key")),
        "{v}"
    );
    assert!(
        v["scan_id"].is_null(),
        "another event's ticket is not recorded"
    );

    // The scan by id: door roles and the ticket's owner.
    let sid = first["scan_id"].as_str().unwrap();
    let (st, v) = app
        .get(&format!("/checkin/check-in/{sid}"), &holder.access)
        .await;
    assert_eq!(
        (st, v["gate"].as_str()),
        (StatusCode::OK, Some("Box office")),
        "{v}"
    );
    assert_eq!(v["operator"], staff.user_id.as_str());
    let (st, v) = app
        .get(&format!("/checkin/check-in/{sid}"), &stranger.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app.get("/checkin/check-in/not-a-scan", &org.access).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_path");

    // Lists: a customer only their own; pages by cursor.
    let mine = format!("/checkin/user/{}/check-ins", holder.user_id);
    let (st, v) = app.get(&mine, &holder.access).await;
    assert_eq!(
        (st, v["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2)),
        "{v}"
    );
    let (st, v) = app.get(&mine, &stranger.access).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = app.get(&mine, &rival.access).await;
    assert_eq!(
        (st, v["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "not the rival's event"
    );
    let list = format!("/checkin/event/{eid}/check-ins");
    let (st, p1) = app.get(&format!("{list}?limit=1"), &staff.access).await;
    assert_eq!(st, StatusCode::OK, "{p1}");
    let cursor = p1["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, p2) = app
        .get(&format!("{list}?limit=1&cursor={cursor}"), &staff.access)
        .await;
    assert_ne!(p2["items"][0]["scan_id"], p1["items"][0]["scan_id"]);
    assert_eq!(p2["items"][0]["reason"], "already_inside", "HLC order");
    let (st, v) = app.get(&list, &holder.access).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    // The door record and the analytics funnel come from the same scans.
    let (_, rec) = app
        .get(&format!("/checkin/tickets/{tid}"), &holder.access)
        .await;
    assert_eq!(
        (rec["state"].as_str(), rec["entries"].as_u64()),
        (Some("inside"), Some(1)),
        "{rec}"
    );
    let (_, a) = app
        .get(&format!("/events/{eid}/analytics"), &org.access)
        .await;
    assert_eq!(
        a["checked_in"], 1,
        "the funnel counts the admitted ticket: {a}"
    );

    // A gate syncing after the online check-in learns it.
    let gate = enroll(&app, &org, &eid).await;
    let reply = push(&app, &gate.token, &eid, vec![]).await;
    assert_eq!(reply.records.len(), 2, "both online scans reach the gates");
}

async fn concurrent_online_check_ins_admit_once(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tickets = sell(&app, &org, &eid, 1).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, url, token, qr) = (
            app.client.clone(),
            app.url("/checkin/check-in"),
            org.access.clone(),
            tickets[0].1.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"credential": qr}))
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut admits = 0;
    for t in tasks {
        let v = t.await.unwrap();
        if v["decision"] == "admit" {
            admits += 1;
        } else {
            assert_eq!(v["reason"], "already_inside", "{v}");
        }
    }
    assert_eq!(
        admits, 1,
        "one ticket, one admission, whatever the concurrency"
    );
}

async fn stats_flag_a_partitions_double_admission(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tickets = sell(&app, &org, &eid, 2).await;
    let (a, b) = (
        enroll(&app, &org, &eid).await,
        enroll(&app, &org, &eid).await,
    );
    let hour = 1_900_000_000_000 / 3_600_000 * 3_600_000;
    let mut at_b = record(b.node_id, 1, &eid, &tickets[0].0, hour + 2_000);
    at_b.gate = "South".into();
    at_b.sign(&sync_protocol::SecretKey::from_seed([7; 32]));
    push(
        &app,
        &a.token,
        &eid,
        vec![record(a.node_id, 1, &eid, &tickets[0].0, hour + 1_000)],
    )
    .await;
    push(&app, &b.token, &eid, vec![at_b]).await;
    let mut rejected = record(a.node_id, 2, &eid, &tickets[1].0, hour + 3_000);
    rejected.outcome = sync_protocol::Outcome::Reject(sync_protocol::Reason::Revoked);
    rejected.sign(&sync_protocol::SecretKey::from_seed([7; 32]));
    push(&app, &a.token, &eid, vec![rejected]).await;

    let staff = app.with_role("staff@example.com", "staff").await;
    crate::correctness::add_staff(&app, &org, &eid, &staff).await;
    let (st, s) = app
        .get(&format!("/checkin/event/{eid}/stats"), &staff.access)
        .await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(
        (s["admitted"].as_u64(), s["admissions"].as_i64()),
        (Some(1), Some(2)),
        "{s}"
    );
    assert_eq!(
        (s["inside_now"].as_u64(), s["rejected"].as_i64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let doubles = s["double_admissions"].as_array().unwrap();
    assert_eq!(
        doubles.len(),
        1,
        "both gates admitted ticket 0 while partitioned: {s}"
    );
    assert_eq!(doubles[0]["second"], format!("{}:1", b.node_id));
    assert_eq!(
        s["per_gate"].as_array().unwrap().len(),
        2,
        "North 2 and South"
    );
    assert_eq!(s["per_hour"][0]["admitted"], 2);
    let customer = app.register("c@example.com").await;
    let (st, v) = app
        .get(&format!("/checkin/event/{eid}/stats"), &customer.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    // The cloud's own decision sees the gates' scans.
    let (_, v) = app
        .post(
            "/checkin/check-in",
            Some(&org.access),
            json!({"ticket_id": tickets[0].0}),
        )
        .await;
    assert_eq!(v["reason"], "already_inside", "{v}");
}

both!(door_endpoints_decide_record_and_prevent_duplicates);
both!(concurrent_online_check_ins_admit_once);
both!(stats_flag_a_partitions_double_admission);
