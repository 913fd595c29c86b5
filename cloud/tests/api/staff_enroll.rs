//! Door staff set a scanner up with their own account (issue 11): the
//! events of their roster (`GET /staff/events`) and self-enrollment
//! (`POST /devices/staff-enroll`), which only a place on the event's roster
//! (or managing the event) allows, and which a removal from the roster
//! stops. Also the roster by email (`POST /events/{id}/staff` with `email`).

use crate::both;
use crate::common::*;
use crate::correctness::add_staff;
use crate::devices::{device_call, error_code};
use ed25519_dalek::{Signer, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::device_api::{EnrollResponse, enrollment_message, staff_enrollment_subject};

/// The self-enrollment a device with `seed` sends for `event` as `user`.
fn staff_body(seed: [u8; 32], event: &str, user: &str, gate: &str) -> Value {
    let key = SigningKey::from_bytes(&seed);
    let subject = staff_enrollment_subject(event.parse().unwrap(), user.parse().unwrap());
    let proof = key.sign(&enrollment_message(&subject));
    json!({
        "event_id": event,
        "gate": gate,
        "zone": null,
        "direction": "exit",
        "name": "scanner-app laptop",
        "device_public_key": hex::encode(key.verifying_key().to_bytes()),
        "proof": hex::encode(proof.to_bytes()),
    })
}

async fn staff_enroll(app: &TestApp, who: &Session, body: Value) -> (StatusCode, Value) {
    app.post("/devices/staff-enroll", Some(&who.access), body)
        .await
}

async fn staff_see_their_roster_events_and_enroll_a_scanner_for_one(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let other = id(&app.active_event(&org).await);
    let staff = app.with_role("door@example.com", "staff").await;

    let (st, v) = app.get("/staff/events", &staff.access).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["items"], json!([]), "on no roster yet: no events");
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([5; 32], &eid, &staff.user_id, "Side door"),
    )
    .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    add_staff(&app, &org, &eid, &staff).await;
    let (_, v) = app.get("/staff/events", &staff.access).await;
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![eid.as_str()], "exactly the roster's event: {v}");
    assert!(
        v["items"][0]["tiers"].is_array(),
        "a full event view, as GET /events gives: {v}"
    );

    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([5; 32], &eid, &staff.user_id, "Side door"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "on the roster: {v}");
    let enrolled: EnrollResponse =
        serde_json::from_value(v.clone()).expect("the same EnrollResponse as POST /devices/enroll");
    assert_eq!(enrolled.event_id.to_string(), eid);
    assert_eq!(
        enrolled.gate, "Side door",
        "the gate the staff member chose"
    );
    assert_eq!(
        v["policy"],
        json!({"event_id": eid, "zone": null, "direction": "exit", "grace_secs": 60,
               "require_listed": false, "default_reentry": false})
    );
    // The token works like any device token.
    let (st, _, _) = device_call(
        &app,
        Some(&enrolled.device_token),
        &format!("/sync/events/{eid}/manifest"),
        None,
    )
    .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "a staff-enrolled device syncs like any device"
    );

    // The same proof again would give the key a second token.
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([5; 32], &eid, &staff.user_id, "Side door"),
    )
    .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");

    // Not on the other event's roster.
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([6; 32], &other, &staff.user_id, "Gate"),
    )
    .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");

    // The organizer sees who enrolled it, and revokes it like any device.
    let (st, list) = app
        .get(&format!("/devices?event_id={eid}"), &org.access)
        .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let dev = &list.as_array().unwrap()[0];
    assert_eq!(dev["id"], enrolled.node_id.to_string().as_str());
    assert_eq!(
        dev["enrolled_by"],
        staff.user_id.as_str(),
        "recorded as enrolled by the staff member: {dev}"
    );
    assert_eq!(dev["gate"], "Side door");
    assert_eq!(dev["direction"], "exit");
    let (st, v) = app
        .post(
            &format!("/devices/{}/revoke", enrolled.node_id),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, body, _) = device_call(
        &app,
        Some(&enrolled.device_token),
        &format!("/sync/events/{eid}/manifest"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "device_revoked");

    // Taken off the roster: no new enrollment, no roster event.
    let (st, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/events/{eid}/staff/{}", staff.user_id),
            Some(&org.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([8; 32], &eid, &staff.user_id, "Side door"),
    )
    .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (_, v) = app.get("/staff/events", &staff.access).await;
    assert_eq!(v["items"], json!([]), "removed from the roster: {v}");
    let (_, list) = app
        .get(&format!("/devices?event_id={eid}"), &org.access)
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "nothing was stored by the refused enrollment"
    );
}
both!(staff_see_their_roster_events_and_enroll_a_scanner_for_one);

async fn staff_enrollment_refuses_bad_proofs_input_and_strangers(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let staff = app.with_role("door@example.com", "staff").await;
    let colleague = app.with_role("colleague@example.com", "staff").await;
    add_staff(&app, &org, &eid, &staff).await;
    add_staff(&app, &org, &eid, &colleague).await;

    // A proof made for a colleague's account does not enroll for this one.
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([5; 32], &eid, &colleague.user_id, "Side door"),
    )
    .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_proof");
    // A code-style proof does not either.
    let mut body = staff_body([5; 32], &eid, &staff.user_id, "Side door");
    let key = SigningKey::from_bytes(&[5; 32]);
    body["proof"] = hex::encode(key.sign(&enrollment_message("ABCD-EFGH-JKMN")).to_bytes()).into();
    let (st, v) = staff_enroll(&app, &staff, body).await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_proof");

    let mut body = staff_body([5; 32], &eid, &staff.user_id, "Side door");
    body["zone"] = 32.into();
    let (st, v) = staff_enroll(&app, &staff, body).await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([5; 32], &eid, &staff.user_id, "  "),
    )
    .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let mut body = staff_body([5; 32], &eid, &staff.user_id, "Side door");
    body["code"] = "ABCD-EFGH-JKMN".into();
    let (st, v) = staff_enroll(&app, &staff, body).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused: {v}"
    );
    let (st, v) = app
        .post(
            "/devices/staff-enroll",
            None,
            staff_body([5; 32], &eid, &staff.user_id, "Side door"),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");

    // A buyer and a rival organizer are not the event's door staff.
    let buyer = app.register("buyer@example.com").await;
    let (st, v) = staff_enroll(
        &app,
        &buyer,
        staff_body([9; 32], &eid, &buyer.user_id, "Side door"),
    )
    .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let rival = app.organizer("rival@example.com").await;
    let (st, v) = staff_enroll(
        &app,
        &rival,
        staff_body([9; 32], &eid, &rival.user_id, "Side door"),
    )
    .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    // The event's organizer may enroll directly too (no roster needed).
    let (st, v) = staff_enroll(
        &app,
        &org,
        staff_body([9; 32], &eid, &org.user_id, "Office"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body(
            [5; 32],
            &uuid::Uuid::now_v7().to_string(),
            &staff.user_id,
            "Side door",
        ),
    )
    .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");

    // Nothing but the organizer's device was stored.
    let (_, list) = app
        .get(&format!("/devices?event_id={eid}"), &org.access)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["enrolled_by"], org.user_id.as_str());

    // An ended event takes no new devices.
    for to in ["live", "ended"] {
        let (st, v) = app
            .patch(
                &format!("/events/{eid}/status"),
                &org.access,
                json!({"status": to}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = staff_enroll(
        &app,
        &staff,
        staff_body([5; 32], &eid, &staff.user_id, "Side door"),
    )
    .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
}
both!(staff_enrollment_refuses_bad_proofs_input_and_strangers);

async fn organizers_put_staff_on_the_roster_by_email(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let staff = app.with_role("door@example.com", "staff").await;
    let roster = format!("/events/{eid}/staff");

    let (st, v) = app
        .post(
            &roster,
            Some(&org.access),
            json!({"email": "  Door@Example.com "}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["user_id"],
        staff.user_id.as_str(),
        "found by email, case-insensitive"
    );
    let (st, v) = app
        .post(
            &roster,
            Some(&org.access),
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("registers first"),
        "the message says what to do: {v}"
    );
    let (st, v) = app
        .post(
            &roster,
            Some(&org.access),
            json!({"email": "door@example.com", "user_id": staff.user_id}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = app.post(&roster, Some(&org.access), json!({})).await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = app
        .post(
            &roster,
            Some(&org.access),
            json!({"email": "door@example.com"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "duplicate");
    let (_, v) = app.get(&roster, &org.access).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
}
both!(organizers_put_staff_on_the_roster_by_email);

async fn the_openapi_document_has_the_staff_endpoints(app: TestApp) {
    let (st, doc) = app
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let enroll = &doc["paths"]["/devices/staff-enroll"]["post"];
    assert!(
        enroll.is_object(),
        "POST /devices/staff-enroll is documented"
    );
    for code in ["201", "403", "404", "409", "422"] {
        assert!(
            enroll["responses"][code].is_object(),
            "{code} is documented: {enroll}"
        );
    }
    assert!(
        doc["components"]["schemas"]["StaffEnrollRequest"].is_object(),
        "the request schema comes from sync_protocol's type"
    );
    assert!(
        doc["paths"]["/staff/events"]["get"].is_object(),
        "GET /staff/events is documented"
    );
    let add = &doc["components"]["schemas"]["AddStaff"]["properties"];
    assert!(add["email"].is_object(), "the roster takes an email: {add}");
}
both!(the_openapi_document_has_the_staff_endpoints);
