//! Issuing through the manifest sequencer (`store/sequencer.rs`): an order's
//! tickets are published after its own commit, in a version shared with
//! whatever else committed meanwhile, and nothing that commits is lost from
//! the manifest or escapes a status change.

use crate::both;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// Runs a statement straight on the test's database.
async fn exec(app: &TestApp, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.expect("db");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .expect(sql);
    pool.close().await;
}

/// A number about one event (`$1` = its id).
async fn of_event(app: &TestApp, sql: &str, eid: &str) -> i64 {
    count(app, sql, &[eid]).await
}

/// An active event with one free tier of `capacity`, and its id.
async fn free_event(app: &TestApp, org: &Session, capacity: i64) -> String {
    let mut body = event_body();
    body["tiers"] = json!([{"tier": 1, "name": "Free", "price_minor": 0, "capacity": capacity}]);
    let (st, e) = app.post("/events", Some(&org.access), body).await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let eid = id(&e);
    app.patch(
        &format!("/events/{eid}/status"),
        &org.access,
        json!({"status": "active"}),
    )
    .await;
    app.put(&format!("/events/{eid}/sales-policy"), &org.access,
        json!({"max_tickets_per_customer": 1000, "resale_enabled": false, "resale_max_percent": 100})).await;
    eid
}

/// The manifest of `eid` is whole: versions 1..=head with none missing,
/// nothing waiting for the sequencer, and `tickets` tickets listed.
async fn assert_manifest_whole(app: &TestApp, eid: &str, tickets: i64) {
    let q = |sql: &'static str| of_event(app, sql, eid);
    assert_eq!(
        q("SELECT COUNT(*) FROM manifest_versions WHERE event_id = $1").await,
        q("SELECT manifest_version FROM events WHERE id = $1").await,
        "versions run from 1 to the head with none missing"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM manifest_pending WHERE event_id = $1").await,
        0,
        "nothing is left waiting for the sequencer"
    );
    assert_eq!(
        q("SELECT COUNT(DISTINCT ticket_id) FROM manifest_changes WHERE event_id = $1").await,
        tickets,
        "every ticket is in the manifest"
    );
}

/// Scenario: the database refuses new manifest versions for a while (a
/// fault injected with a trigger), so a free order commits its tickets but
/// its publish fails. The buyer still gets the paid order; the tickets wait
/// in `manifest_pending` (and count as taken in the event view); once
/// versions can be written again the sweeper publishes them, and they join
/// `tiers.allocated`.
async fn a_publish_that_failed_after_commit_is_done_by_the_sweeper(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = free_event(&app, &org, 10).await;
    let buyer = app.register("buyer@example.com").await;
    let head = count(
        &app,
        "SELECT manifest_version FROM events WHERE id = $1",
        &[&eid],
    )
    .await;
    match app.backend {
        Backend::Postgres => {
            exec(
                &app,
                "CREATE FUNCTION gh_no_version() RETURNS trigger AS $$ BEGIN \
                 RAISE EXCEPTION 'injected: no manifest version'; END $$ LANGUAGE plpgsql",
            )
            .await;
            exec(
                &app,
                "CREATE TRIGGER gh_no_version BEFORE INSERT ON manifest_versions \
                 FOR EACH ROW EXECUTE FUNCTION gh_no_version()",
            )
            .await;
        }
        Backend::Sqlite => {
            exec(
                &app,
                "CREATE TRIGGER gh_no_version BEFORE INSERT ON manifest_versions \
                 BEGIN SELECT RAISE(ABORT, 'injected: no manifest version'); END",
            )
            .await;
        }
    }
    let o = app.order(&buyer, &eid, 1, 2).await;
    assert_eq!(
        o["status"], "paid",
        "the order is paid although its publish failed: {o}"
    );
    assert_eq!(o["ticket_ids"].as_array().unwrap().len(), 2, "{o}");
    let q = |sql: &'static str| of_event(&app, sql, &eid);
    assert_eq!(
        q("SELECT COUNT(*) FROM manifest_pending WHERE event_id = $1").await,
        2,
        "the tickets wait for their version"
    );
    assert_eq!(
        q("SELECT manifest_version FROM events WHERE id = $1").await,
        head,
        "no version was written"
    );
    let (_, e) = app.get(&format!("/events/{eid}"), &org.access).await;
    assert_eq!(
        e["tiers"][0]["available"], 8,
        "waiting tickets are not for sale: {e}"
    );

    match app.backend {
        Backend::Postgres => exec(&app, "DROP TRIGGER gh_no_version ON manifest_versions").await,
        Backend::Sqlite => exec(&app, "DROP TRIGGER gh_no_version").await,
    }
    let mut waited = 0;
    while q("SELECT COUNT(*) FROM manifest_pending WHERE event_id = $1").await > 0 {
        assert!(waited < 200, "the sweeper publishes the waiting tickets");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(
        q("SELECT manifest_version FROM events WHERE id = $1").await,
        head + 1,
        "both tickets in one version"
    );
    assert_eq!(
        q("SELECT allocated FROM tiers WHERE event_id = $1").await,
        2,
        "published tickets are counted"
    );
    assert_manifest_whole(&app, &eid, 2).await;
}
both!(
    a_publish_that_failed_after_commit_is_done_by_the_sweeper,
    |c| {
        c.commerce.sweep_interval_ms = 100;
    }
);

/// Scenario: buyers keep ordering free tickets while the organizer cancels
/// the event. Issuing shares the event row, cancelling waits for the
/// issuers in flight: every ticket that was issued is cancelled and revoked
/// in the manifest, and no order is paid after the cancellation.
async fn cancelling_during_an_on_sale_revokes_every_ticket_issued(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = free_event(&app, &org, 500).await;
    let mut buyers = Vec::new();
    for i in 0..8 {
        buyers.push(app.register(&format!("fan{i}@example.com")).await.access);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for token in buyers {
        let (api, eid) = (app.api(), eid.clone());
        tasks.spawn(async move {
            let mut paid = 0;
            for _ in 0..15 {
                let body = json!({"event_id": eid, "items": [{"tier": 1, "quantity": 1}]});
                let (st, _, o) = api.post("/orders", &token, &[], body).await;
                match st {
                    StatusCode::CREATED => {
                        assert_eq!(o["status"], "paid", "{o}");
                        paid += 1;
                    }
                    StatusCode::CONFLICT => {}
                    other => panic!("unexpected answer {other}: {o}"),
                }
            }
            paid
        });
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (st, v) = app
        .patch(
            &format!("/events/{eid}/status"),
            &org.access,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let paid: i64 = tasks.join_all().await.into_iter().sum();
    let q = |sql: &'static str| of_event(&app, sql, &eid);
    let tickets = q("SELECT COUNT(*) FROM tickets WHERE event_id = $1").await;
    assert!(tickets >= paid, "every paid order has its tickets");
    assert_eq!(
        q("SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status <> 'cancelled'").await,
        0,
        "no ticket of a cancelled event stays valid"
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM tickets t WHERE t.event_id = $1 AND NOT EXISTS \
           (SELECT 1 FROM manifest_changes mc WHERE mc.event_id = t.event_id AND mc.ticket_id = t.id \
            AND mc.revoked = 1 AND mc.version = (SELECT MAX(m2.version) FROM manifest_changes m2 \
            WHERE m2.event_id = t.event_id AND m2.ticket_id = t.id))")
        .await,
        0,
        "the gates see every ticket revoked"
    );
    assert_manifest_whole(&app, &eid, tickets).await;
}
both!(
    cancelling_during_an_on_sale_revokes_every_ticket_issued,
    |c| {
        c.database.max_connections = 16;
    }
);
