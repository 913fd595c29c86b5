//! Correctness at the door and with the money (issue 16): each scenario
//! failed before its fix.

use crate::both;
use crate::common::*;
use crate::shop::*;
use crate::tickets::now;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::manifest::DoorState;
use sync_protocol::{Outcome, Reason};

/// Runs a statement straight on the test's database.
async fn exec(app: &TestApp, sql: &str, binds: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.expect("db");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = q.bind(b.to_string());
    }
    q.execute(&pool).await.expect(sql);
    pool.close().await;
}

async fn set_status(app: &TestApp, org: &Session, eid: &str, status: &str) {
    let (st, v) = app
        .patch(
            &format!("/events/{eid}/status"),
            &org.access,
            json!({"status": status}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{status}: {v}");
}

async fn ending_an_event_closes_the_door_and_a_stale_gate_says_so(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let (_, tid) = bought(&app, &org, &eid, &buyer).await;
    let cred = credential(&app, &buyer.access, &tid).await;
    let (ring, mut told) = gate(&app, &org, &eid).await;
    use sync_protocol::ManifestView;
    assert_eq!(
        told.door().state,
        Some(DoorState::OnSale),
        "an active event is on sale"
    );
    assert_eq!(admit(&ring, &told, &eid, &cred), Outcome::Admit);

    set_status(&app, &org, &eid, "live").await;
    apply_delta(&app, &ring, &eid, &mut told).await;
    assert_eq!(told.door().state, Some(DoorState::Live));
    assert_eq!(
        admit(&ring, &told, &eid, &cred),
        Outcome::Admit,
        "doors open"
    );
    let offline = told.clone();

    set_status(&app, &org, &eid, "ended").await;
    apply_delta(&app, &ring, &eid, &mut told).await;
    assert_eq!(
        admit(&ring, &told, &eid, &cred),
        Outcome::Reject(Reason::EventClosed),
        "a gate told the event ended admits nobody"
    );
    // The gate that went offline before the change keeps what it knew and
    // says how old that is.
    let event = eid.parse().unwrap();
    let d = sync_protocol::decide(
        &cred,
        &ring,
        &offline,
        &sync_protocol::CheckinLog::new(event),
        &sync_protocol::GatePolicy::entry(event),
        now(),
    );
    assert_eq!(d.outcome, Outcome::Admit, "it was never told");
    assert_eq!(d.door, Some(DoorState::Live));
    assert!(
        d.door_news_age_secs.is_some(),
        "it says how old its news is: {d:?}"
    );
}
both!(ending_an_event_closes_the_door_and_a_stale_gate_says_so);

async fn a_refunded_ticket_leaves_the_market(app: TestApp) {
    let (org, eid, seller) = setup(&app).await;
    let (oid, tid) = bought(&app, &org, &eid, &seller).await;
    let (st, listing) = app
        .post(
            "/market/listings",
            Some(&seller.access),
            json!({"ticket_id": tid, "price_minor": 2500}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{listing}");
    let lid = id(&listing);
    let (st, v) = app
        .put(
            &format!("/orders/{oid}/status"),
            &org.access,
            json!({"status": "refunded", "reason": "customer asked"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, l) = app
        .get(&format!("/market/listings/{lid}"), &seller.access)
        .await;
    assert_eq!(
        l["status"], "cancelled",
        "the refund closed the listing: {l}"
    );
    let buyer = app.register("other@example.com").await;
    let (st, v) = app
        .post(
            &format!("/market/listings/{lid}/buy"),
            Some(&buyer.access),
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "gone");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM orders WHERE listing_id = $1",
            &[&lid]
        )
        .await,
        0,
        "nobody could open an order for a refunded ticket"
    );
}
both!(a_refunded_ticket_leaves_the_market);

async fn manual_payment_references_are_per_organizer(app: TestApp) {
    let org1 = app.organizer("one@example.com").await;
    let org2 = app.organizer("two@example.com").await;
    let e1 = id(&app.active_event(&org1).await);
    let e2 = id(&app.active_event(&org2).await);
    let buyer = app.register("buyer@example.com").await;
    let pay = |org: Session, oid: String| {
        let app = &app;
        async move {
            app.put(
                &format!("/orders/{oid}/status"),
                &org.access,
                json!({"status": "paid", "reason": "REF-1"}),
            )
            .await
        }
    };
    let o1 = id(&app.order(&buyer, &e1, 1, 1).await);
    let (st, v) = pay(org1.clone(), o1).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let o2 = id(&app.order(&buyer, &e2, 1, 1).await);
    let (st, v) = pay(org2.clone(), o2).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "another organizer's REF-1 is their own business: {v}"
    );
    let o3 = id(&app.order(&buyer, &e1, 1, 1).await);
    let (st, v) = pay(org1.clone(), o3).await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "one organizer cannot book REF-1 twice: {v}"
    );
}
both!(manual_payment_references_are_per_organizer);

async fn a_token_whose_account_is_gone_is_401(app: TestApp) {
    let org = app.organizer("gone@example.com").await;
    exec(
        &app,
        "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
        &[&org.user_id],
    )
    .await;
    exec(
        &app,
        "DELETE FROM sessions WHERE user_id = $1",
        &[&org.user_id],
    )
    .await;
    exec(&app, "DELETE FROM users WHERE id = $1", &[&org.user_id]).await;
    let (st, v) = app.post("/events", Some(&org.access), event_body()).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "unknown_subject");
    let (st, v) = app.get("/users/me", &org.access).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "unknown_subject");
}
both!(a_token_whose_account_is_gone_is_401);

async fn hidden_text_past_events_and_made_up_currencies_are_refused(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let cases = [
        ("name", json!("Harbour\u{0}Lights")),
        ("name", json!("evil\u{202E}gnp")),
        ("name", json!("\u{200B}\u{200D}")),
        ("venue", json!("Pier\u{7}4")),
        ("currency", json!("ZZZ")),
        ("starts_at", json!("2020-06-01T18:00:00Z")),
    ];
    for (field, value) in cases {
        let mut body = event_body();
        body[field] = value.clone();
        if field == "starts_at" {
            body["ends_at"] = json!("2020-06-01T23:00:00Z");
        }
        let (st, v) = app.post("/events", Some(&org.access), body).await;
        assert_error(
            st,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let _ = (field, value);
    }
    let (st, v) = app
        .post(
            "/auth/register",
            None,
            json!({"email": "z@example.com", "password": PASSWORD, "display_name": "\u{200B}"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM events", &[]).await,
        0,
        "nothing was stored"
    );
}
both!(hidden_text_past_events_and_made_up_currencies_are_refused);

/// A late payment's re-hold that meets a transient database failure (a real
/// PostgreSQL `serialization_failure`, raised by a trigger on the inventory
/// rows the re-hold claims) fails the delivery for a retry: it never
/// decides "the hold expired" and owes the money back. (SQLite serialises
/// writers before the transaction starts, so this failure cannot happen at
/// this point there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_during_a_late_payment_is_retried_not_refunded() {
    let (app, _stripe) = stripe_app(Backend::Postgres, |c| {
        c.commerce.hold_secs = 1;
        c.commerce.sweep_interval_ms = 100;
    })
    .await;
    let (_org, eid, buyer) = setup(&app).await;
    let oid = id(&app.order(&buyer, &eid, 2, 1).await);
    let intent = stripe_intent(&app, &buyer, &oid).await;
    app.wait_order(&buyer.access, &oid, |o| o["status"] == "expired")
        .await;
    exec(
        &app,
        "CREATE FUNCTION gh_injected() RETURNS trigger AS $$ BEGIN \
         RAISE EXCEPTION 'injected conflict' USING ERRCODE = '40001'; END $$ LANGUAGE plpgsql",
        &[],
    )
    .await;
    exec(
        &app,
        "CREATE TRIGGER gh_injected BEFORE UPDATE ON tier_slots FOR EACH ROW EXECUTE FUNCTION gh_injected()",
        &[],
    )
    .await;
    let body = succeeded_body("evt_late_1", &intent, 9900, &oid);
    let sig = signed_now(&body);
    let (st, v) = app.webhook(&body, Some(&sig)).await;
    assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE, "try_again");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payments WHERE provider_ref = $1 AND status IN ('refund_due', 'refunded')",
            &[&intent]
        )
        .await,
        0,
        "a transient failure owes nobody a refund"
    );
    exec(&app, "DROP TRIGGER gh_injected ON tier_slots", &[]).await;
    let (st, v) = app.webhook(&body, Some(&sig)).await;
    assert_eq!(st, StatusCode::OK, "the retried delivery goes through: {v}");
    let o = app
        .wait_order(&buyer.access, &oid, |o| o["status"] == "paid")
        .await;
    assert_eq!(o["ticket_ids"].as_array().unwrap().len(), 1, "{o}");
}

async fn three_endpoints_report_one_checked_in_figure(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let (_, first) = bought(&app, &org, &eid, &buyer).await;
    let (_, second) = bought(&app, &org, &eid, &buyer).await;
    let _unused = bought(&app, &org, &eid, &buyer).await;
    for tid in [&first, &second, &first] {
        let (st, v) = app
            .post(
                "/checkin/check-in",
                Some(&org.access),
                json!({"ticket_id": tid, "gate": "North"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let (_, stats) = app.get(&format!("/events/{eid}/stats"), &org.access).await;
    let (_, analytics) = app
        .get(&format!("/events/{eid}/analytics"), &org.access)
        .await;
    let (_, door) = app
        .get(&format!("/checkin/event/{eid}/stats"), &org.access)
        .await;
    let figures = (
        stats["checked_in"].as_i64(),
        analytics["checked_in"].as_i64(),
        door["admitted"].as_i64(),
    );
    assert_eq!(
        figures,
        (Some(2), Some(2), Some(2)),
        "two tickets were let in, and every endpoint says so: {stats} {analytics} {door}"
    );
    let per_tier: i64 = stats["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["checked_in"].as_i64().unwrap())
        .sum();
    assert_eq!(per_tier, 2, "the tiers add up to the total");
}
both!(three_endpoints_report_one_checked_in_figure);

/// Puts `staff` on `eid`'s roster (as its organizer `org`).
pub async fn add_staff(app: &TestApp, org: &Session, eid: &str, staff: &Session) {
    let (st, v) = app
        .post(
            &format!("/events/{eid}/staff"),
            Some(&org.access),
            json!({"user_id": staff.user_id}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

async fn staff_work_only_the_doors_of_their_events(app: TestApp) {
    let (org, eid, buyer) = setup(&app).await;
    let other = id(&app.active_event(&org).await);
    let (_, tid) = bought(&app, &org, &eid, &buyer).await;
    let staff = app.with_role("door@example.com", "staff").await;
    let check_in = |event: String| {
        let (app, staff, tid) = (&app, staff.clone(), tid.clone());
        async move {
            app.post(
                "/checkin/check-in",
                Some(&staff.access),
                json!({"ticket_id": tid, "event_id": event}),
            )
            .await
        }
    };
    let (st, v) = check_in(eid.clone()).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    add_staff(&app, &org, &eid, &staff).await;
    let (_, roster) = app.get(&format!("/events/{eid}/staff"), &org.access).await;
    assert_eq!(
        roster["items"][0]["user_id"],
        staff.user_id.as_str(),
        "{roster}"
    );
    let (st, v) = app
        .post(
            &format!("/events/{eid}/staff"),
            Some(&org.access),
            json!({"user_id": staff.user_id}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "duplicate");
    let (st, v) = app
        .post(
            &format!("/events/{eid}/staff"),
            Some(&org.access),
            json!({"user_id": buyer.user_id}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = check_in(eid.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "on the roster: {v}");
    let (st, v) = app
        .get(&format!("/checkin/event/{other}/stats"), &staff.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let rival = app.organizer("rival@example.com").await;
    let (st, v) = app
        .post(
            &format!("/events/{eid}/staff"),
            Some(&rival.access),
            json!({"user_id": staff.user_id}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/events/{eid}/staff/{}", staff.user_id),
            Some(&org.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = app
        .get(&format!("/checkin/event/{eid}/stats"), &staff.access)
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
}
both!(staff_work_only_the_doors_of_their_events);
