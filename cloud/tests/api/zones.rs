//! Named zones (`/events/{id}/zones`): an event names its zone numbers
//! once, tiers admit by name, enrollment codes set gates up by name, and
//! every view shows the names.

use crate::both;
use crate::common::*;
use crate::devices::new_code;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn put_zone(
    app: &TestApp,
    s: &Session,
    eid: &str,
    zone: i64,
    name: &str,
) -> (StatusCode, Value) {
    app.put(
        &format!("/events/{eid}/zones/{zone}"),
        &s.access,
        json!({"name": name}),
    )
    .await
}

async fn delete_zone(app: &TestApp, s: &Session, eid: &str, zone: i64) -> (StatusCode, Value) {
    app.call(
        Method::DELETE,
        &format!("/events/{eid}/zones/{zone}"),
        Some(&s.access),
        None,
    )
    .await
}

async fn activate(app: &TestApp, org: &Session, eid: &str) {
    let (s, v) = app
        .patch(
            &format!("/events/{eid}/status"),
            &org.access,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "activate: {v}");
}

async fn zone_names_are_unique_in_range_and_readable_once_published(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.create_event(&org).await);

    let (s, v) = put_zone(&app, &org, &eid, 2, "  Balcony ").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"zone": 2, "name": "Balcony"}),
        "the name is trimmed"
    );
    let (s, v) = put_zone(&app, &org, &eid, 0, "Floor").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, v) = put_zone(&app, &org, &eid, 3, "Balcony").await;
    assert_error(s, &v, StatusCode::CONFLICT, "duplicate");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("Balcony"),
        "{v}"
    );
    for bad in [32, 200] {
        let (s, v) = put_zone(&app, &org, &eid, bad, "Roof").await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for bad in ["", "   ", "evil\u{202E}yenolab", &"x".repeat(33)] {
        let (s, v) = put_zone(&app, &org, &eid, 5, bad).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }

    // Renaming keeps the number; the refused writes left nothing behind.
    let (s, v) = put_zone(&app, &org, &eid, 2, "Upper balcony").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.get(&format!("/events/{eid}/zones"), &org.access).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!([{"zone": 0, "name": "Floor"}, {"zone": 2, "name": "Upper balcony"}])
    );

    // A draft's zones are not public; a published event's are.
    let (s, v) = app
        .call(Method::GET, &format!("/events/{eid}/zones"), None, None)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    activate(&app, &org, &eid).await;
    let (s, v) = app
        .call(Method::GET, &format!("/events/{eid}/zones"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    let (s, v) = app
        .call(Method::GET, &format!("/public/events/{eid}"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["zones"][1]["name"], "Upper balcony", "{v}");
    // VIP (mask 3) admits to zones 0 and 1; only 0 is named.
    assert_eq!(v["tiers"][1]["zones"], json!(["Floor"]), "{v}");

    let unknown = "/events/00000000-0000-7000-8000-000000000000/zones";
    let (s, v) = app.call(Method::GET, unknown, None, None).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    let (s, v) = put_zone(
        &app,
        &org,
        "00000000-0000-7000-8000-000000000000",
        1,
        "Roof",
    )
    .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
}
both!(zone_names_are_unique_in_range_and_readable_once_published);

async fn the_openapi_document_describes_zones(app: TestApp) {
    let (s, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = &doc["paths"];
    assert!(paths["/events/{id}/zones"]["get"].is_object(), "list");
    for m in ["put", "delete"] {
        let op = &paths["/events/{id}/zones/{zone}"][m];
        assert!(op.is_object(), "{m}");
        for code in ["403", "404", "409", "422"] {
            assert!(op["responses"][code].is_object(), "{m} documents {code}");
        }
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["ZoneView"].is_object());
    assert!(schemas["TierInput"]["properties"]["zones"].is_object());
    assert!(schemas["TierView"]["properties"]["zones"].is_object());
    assert!(schemas["CreateEvent"]["properties"]["zones"].is_object());
}
both!(the_openapi_document_describes_zones);

async fn only_the_organizer_or_an_admin_names_zones(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let other = app.organizer("other@example.com").await;
    let buyer = app.register("buyer@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let (s, _) = put_zone(&app, &org, &eid, 1, "Floor").await;
    assert_eq!(s, StatusCode::OK);

    for who in [&other, &buyer] {
        let (s, v) = put_zone(&app, who, &eid, 1, "Mine").await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
        let (s, v) = put_zone(&app, who, &eid, 4, "Mine").await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
        let (s, v) = delete_zone(&app, who, &eid, 1).await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    }
    let (_, v) = app.get(&format!("/events/{eid}/zones"), &org.access).await;
    assert_eq!(v, json!([{"zone": 1, "name": "Floor"}]), "nothing changed");

    let admin = app.admin().await;
    let (s, v) = put_zone(&app, &admin, &eid, 4, "Terrace").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = delete_zone(&app, &admin, &eid, 4).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // Someone else's draft does not exist for them.
    let draft = id(&app.create_event(&org).await);
    let (s, v) = put_zone(&app, &other, &draft, 1, "Floor").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    let (s, v) = app
        .get(&format!("/events/{draft}/zones"), &other.access)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
}
both!(only_the_organizer_or_an_admin_names_zones);

async fn tiers_admit_to_zones_by_name(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let mut body = event_body();
    body["zones"] = json!([{"zone": 0, "name": "Floor"}, {"zone": 2, "name": "Balcony"}]);
    body["tiers"] = json!([
        {"tier": 1, "name": "GA", "price_minor": 2500, "capacity": 100, "zones": ["Floor"]},
        {"tier": 2, "name": "Balcony seat", "price_minor": 4000, "capacity": 10, "zones": ["Balcony"]},
        {"tier": 3, "name": "All areas", "price_minor": 9900, "capacity": 2, "zones": ["Balcony", "Floor"], "zone": "Everywhere"}
    ]);
    let (s, e) = app.post("/events", Some(&org.access), body).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let eid = id(&e);
    let tiers = &e["tiers"];
    assert_eq!(tiers[0]["zone_mask"], 1);
    assert_eq!(tiers[1]["zone_mask"], 4, "Balcony is zone 2: bit 2");
    assert_eq!(tiers[1]["zones"], json!(["Balcony"]));
    assert_eq!(
        tiers[1]["zone"], "Balcony",
        "the label defaults to the names"
    );
    assert_eq!(tiers[2]["zone_mask"], 5);
    assert_eq!(tiers[2]["zones"], json!(["Floor", "Balcony"]));
    assert_eq!(tiers[2]["zone"], "Everywhere");

    // An unknown name: 422 unknown_zone, listing the known ones; nothing added.
    let tier = |n: u16, extra: Value| {
        let mut t = json!({"tier": n, "name": format!("T{n}"), "price_minor": 100, "capacity": 5});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t
    };
    let tiers_path = format!("/events/{eid}/tiers");
    let (s, v) = app
        .post(
            &tiers_path,
            Some(&org.access),
            tier(4, json!({"zones": ["Roof"]})),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "unknown_zone");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Roof") && msg.contains("\"Floor\" (0)") && msg.contains("\"Balcony\" (2)"),
        "{msg}"
    );
    let (s, v) = app
        .post(
            &tiers_path,
            Some(&org.access),
            tier(4, json!({"zones": ["Floor"], "zone_mask": 1})),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (s, v) = app
        .post(
            &tiers_path,
            Some(&org.access),
            tier(4, json!({"zones": []})),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (_, v) = app.get(&format!("/events/{eid}"), &org.access).await;
    assert_eq!(
        v["tiers"].as_array().unwrap().len(),
        3,
        "no half-made tier: {v}"
    );

    // A zone named later can be used at once.
    let (s, _) = put_zone(&app, &org, &eid, 7, "Terrace").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app
        .post(
            &tiers_path,
            Some(&org.access),
            tier(4, json!({"zones": ["Terrace"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["tiers"][3]["zone_mask"], 1 << 7, "{v}");

    // A new event's zones must be unique and in range.
    for zones in [
        json!([{"zone": 1, "name": "A"}, {"zone": 1, "name": "B"}]),
        json!([{"zone": 1, "name": "A"}, {"zone": 2, "name": "A"}]),
        json!([{"zone": 32, "name": "A"}]),
    ] {
        let mut body = event_body();
        body["zones"] = zones;
        let (s, v) = app.post("/events", Some(&org.access), body).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    // Tiers of a new event can only name the zones it brings.
    let mut body = event_body();
    body["tiers"] =
        json!([{"tier": 1, "name": "GA", "price_minor": 1, "capacity": 1, "zones": ["Floor"]}]);
    let (s, v) = app.post("/events", Some(&org.access), body).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "unknown_zone");
}
both!(tiers_admit_to_zones_by_name);

async fn a_zone_in_use_keeps_its_name(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let mut body = event_body();
    body["zones"] = json!([{"zone": 2, "name": "Balcony"}]);
    body["tiers"] =
        json!([{"tier": 1, "name": "Seat", "price_minor": 1, "capacity": 1, "zones": ["Balcony"]}]);
    let (s, e) = app.post("/events", Some(&org.access), body).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let eid = id(&e);
    activate(&app, &org, &eid).await;

    let (s, v) = delete_zone(&app, &org, &eid, 2).await;
    assert_error(s, &v, StatusCode::CONFLICT, "zone_in_use");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("\"Seat\""),
        "{v}"
    );

    // An unused enrollment code for zone 5 holds it too.
    let (s, _) = put_zone(&app, &org, &eid, 5, "Bar").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = new_code(&app, &org, &eid, json!({"zone": 5})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = delete_zone(&app, &org, &eid, 5).await;
    assert_error(s, &v, StatusCode::CONFLICT, "zone_in_use");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("enrollment code"),
        "{v}"
    );

    // A free zone loses its name; then it has none to lose.
    let (s, _) = put_zone(&app, &org, &eid, 9, "Spare").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = delete_zone(&app, &org, &eid, 9).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = delete_zone(&app, &org, &eid, 9).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    let (s, v) = delete_zone(&app, &org, &eid, 40).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (_, v) = app.get(&format!("/events/{eid}/zones"), &org.access).await;
    assert_eq!(
        v,
        json!([{"zone": 2, "name": "Balcony"}, {"zone": 5, "name": "Bar"}])
    );
}
both!(a_zone_in_use_keeps_its_name);

async fn gates_are_set_up_by_zone_name_and_learn_it(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let mut body = event_body();
    body["zones"] = json!([{"zone": 2, "name": "Balcony"}]);
    let (s, e) = app.post("/events", Some(&org.access), body).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let eid = id(&e);
    activate(&app, &org, &eid).await;

    let (s, v) = new_code(&app, &org, &eid, json!({"zone_name": "Roof"})).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "unknown_zone");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"Balcony\" (2)"),
        "{v}"
    );
    let (s, v) = new_code(&app, &org, &eid, json!({"zone_name": "Balcony", "zone": 2})).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let (s, c) = new_code(&app, &org, &eid, json!({"zone_name": "Balcony"})).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(
        (c["zone"].clone(), c["zone_name"].clone()),
        (json!(2), json!("Balcony"))
    );
    // A number still works and shows the name when the zone has one.
    let (s, n) = new_code(&app, &org, &eid, json!({"zone": 2})).await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert_eq!(n["zone_name"], "Balcony");
    let (s, n) = new_code(&app, &org, &eid, json!({"zone": 4})).await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert!(
        n.get("zone_name").is_none(),
        "an unnamed zone has no name: {n}"
    );

    let code = c["code"].as_str().unwrap();
    let (s, enrolled) = app
        .post(
            "/devices/enroll",
            None,
            crate::devices::enroll_body([3; 32], code, code),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{enrolled}");
    assert_eq!(enrolled["policy"]["zone"], 2, "{enrolled}");
    assert_eq!(enrolled["policy"]["zone_name"], "Balcony", "{enrolled}");

    // A rename shows in the device list at once (the number is what the gate enforces).
    let (s, _) = put_zone(&app, &org, &eid, 2, "Upper balcony").await;
    assert_eq!(s, StatusCode::OK);
    let (s, devices) = app
        .get(&format!("/devices?event_id={eid}"), &org.access)
        .await;
    assert_eq!(s, StatusCode::OK, "{devices}");
    assert_eq!(devices[0]["zone"], 2);
    assert_eq!(devices[0]["zone_name"], "Upper balcony", "{devices}");
    let (s, doors) = app.get(&format!("/events/{eid}/doors"), &org.access).await;
    assert_eq!(s, StatusCode::OK, "{doors}");
    assert_eq!(doors["fleet"][0]["zone"], 2, "{doors}");
    assert_eq!(doors["fleet"][0]["zone_name"], "Upper balcony", "{doors}");

    // The enrolled device holds the zone.
    let (s, v) = delete_zone(&app, &org, &eid, 2).await;
    assert_error(s, &v, StatusCode::CONFLICT, "zone_in_use");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("devices"),
        "{v}"
    );
}
both!(gates_are_set_up_by_zone_name_and_learn_it);
