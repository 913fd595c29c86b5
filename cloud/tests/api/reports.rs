//! Reports of every type, as JSON and CSV.

use crate::both;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn every_report_type_as_json_and_csv(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = app.active_event(&org).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fan = app.register("fan@example.com").await;
    app.patch(
        "/users/me",
        &fan.access,
        json!({"country": "DK", "birth_year": 1994}),
    )
    .await;
    let (st, _) = app.post(&format!("/events/{eid}/ticket-sale"), Some(&org.access),
        json!({"tier": 1, "quantity": 2, "holder_name": "Fan", "buyer_email": "fan@example.com", "payment_method": "card"})).await;
    assert_eq!(st, StatusCode::CREATED);

    let mut ids = Vec::new();
    for (kind, first_column) in [
        ("sales", "tier"),
        ("attendance", "tier"),
        ("revenue", "channel"),
        ("demographic", "country"),
        ("performance", "metric"),
    ] {
        let (st, r) = app
            .post(
                &format!("/events/{eid}/reports"),
                Some(&org.access),
                json!({"type": kind}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{kind}: {r}");
        assert_eq!(r["type"], kind);
        assert_eq!(r["columns"][0], first_column, "{kind}: {r}");
        let rid = r["id"].as_str().unwrap().to_string();
        let (st, again) = app
            .get(&format!("/events/reports/{rid}"), &org.access)
            .await;
        assert_eq!((st, &again["rows"]), (StatusCode::OK, &r["rows"]));
        let resp = app
            .client
            .get(app.url(&format!("/events/reports/{rid}?format=csv")))
            .bearer_auth(&org.access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let csv = resp.text().await.unwrap();
        assert!(csv.starts_with(first_column), "{kind} CSV header: {csv}");
        assert_eq!(
            csv.lines().count(),
            1 + r["rows"].as_array().unwrap().len(),
            "{kind}: one line per row: {csv}"
        );
        ids.push(rid);
    }
    let (_, sales) = app
        .get(&format!("/events/reports/{}", ids[0]), &org.access)
        .await;
    assert_eq!(
        sales["rows"][0],
        json!([1, "General admission", 100, 2, 0, 5000, "EUR"])
    );
    let (_, demo) = app
        .get(&format!("/events/reports/{}", ids[3]), &org.access)
        .await;
    assert_eq!(demo["rows"], json!([["DK", "1990s", 2]]));
    let (_, revenue) = app
        .get(
            &format!("/events/reports/{}?format=csv", ids[2]),
            &org.access,
        )
        .await;
    assert_eq!(
        revenue,
        json!("channel,status,orders,total_minor,currency\r\nbox_office,paid,1,5000,EUR\r\n")
    );

    let (st, list) = app
        .get(&format!("/events/{eid}/reports?limit=3"), &org.access)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert!(list["next_cursor"].is_string());

    let (st, v) = app
        .post(
            &format!("/events/{eid}/reports"),
            Some(&org.access),
            json!({"type": "astrology"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = app
        .get(
            &format!("/events/reports/{}?format=xml", ids[0]),
            &org.access,
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "invalid_query");
    let stranger = app.organizer("other@example.com").await;
    let (st, v) = app
        .get(&format!("/events/reports/{}", ids[0]), &stranger.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
}
both!(every_report_type_as_json_and_csv);
