//! Transfers: the old QR is superseded at the gate and the new one
//! admitted, both parties see the move, the chain of owners is kept.

use crate::both;
use crate::common::*;
use crate::shop::*;
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::{Outcome, Reason};

async fn a_transfer_supersedes_the_old_credential(app: TestApp) {
    let org = app.organizer("org@example.com").await;
    let eid = id(&app.active_event(&org).await);
    let owner = app.register("owner@example.com").await;
    let friend = app.register("friend@example.com").await;
    let third = app.register("third@example.com").await;
    let (_, tid) = bought(&app, &org, &eid, &owner).await;
    let old = credential(&app, &owner.access, &tid).await;
    let (ring, mut manifest) = gate(&app, &org, &eid).await;
    assert_eq!(admit(&ring, &manifest, &eid, &old), Outcome::Admit);

    let path = format!("/tickets/{tid}/transfer");
    for (who, body, status, code) in [
        (
            &friend,
            json!({"to_user_id": friend.user_id}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &owner,
            json!({"to_user_id": owner.user_id}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &owner,
            json!({"to_email": "nobody@example.com"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &owner,
            json!({"to_email": "friend@example.com", "to_user_id": friend.user_id}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &owner,
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let (st, v) = app.post(&path, Some(&who.access), body).await;
        assert_error(st, &v, status, code);
    }
    let (st, t) = app
        .post(
            &path,
            Some(&owner.access),
            json!({"to_email": "Friend@Example.com"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(
        (t["generation"].as_u64(), t["to_user_id"].as_str()),
        (Some(1), Some(friend.user_id.as_str()))
    );
    assert!(
        t.get("credential").is_none(),
        "the sender never sees the new credential"
    );

    apply_delta(&app, &ring, &eid, &mut manifest).await;
    assert_eq!(
        admit(&ring, &manifest, &eid, &old),
        Outcome::Reject(Reason::Superseded),
        "the old QR is refused"
    );
    let new = credential(&app, &friend.access, &tid).await;
    assert_ne!(new, old);
    assert_eq!(
        admit(&ring, &manifest, &eid, &new),
        Outcome::Admit,
        "the recipient's QR is admitted"
    );
    let (st, v) = app.get(&format!("/tickets/{tid}"), &owner.access).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    assert!(ticket_ids(&app, &owner).await.is_empty());
    assert_eq!(ticket_ids(&app, &friend).await, std::slice::from_ref(&tid));
    for who in [&owner, &friend] {
        let (_, mine) = app.get("/transfers", &who.access).await;
        assert_eq!(
            mine.as_array().unwrap().len(),
            1,
            "both parties see the transfer: {mine}"
        );
    }

    // Passed on again: the chain keeps every owner, the audit every step.
    let (st, _) = app
        .post(
            &path,
            Some(&friend.access),
            json!({"to_user_id": third.user_id}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, chain) = app
        .get(&format!("/tickets/{tid}/transfers"), &owner.access)
        .await;
    let owners: Vec<(&str, &str, u64)> = chain
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["from_user_id"].as_str().unwrap(),
                l["to_user_id"].as_str().unwrap(),
                l["generation"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [
            (owner.user_id.as_str(), friend.user_id.as_str(), 1),
            (friend.user_id.as_str(), third.user_id.as_str(), 2)
        ]
    );
    let (_, history) = app
        .get(&format!("/tickets/{tid}/history"), &third.access)
        .await;
    let steps: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["issued", "transferred", "transferred"]);
    let (st, v) = app
        .get(
            &format!("/tickets/{tid}/transfers"),
            &app.register("x@example.com").await.access,
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    apply_delta(&app, &ring, &eid, &mut manifest).await;
    assert_eq!(
        admit(&ring, &manifest, &eid, &new),
        Outcome::Reject(Reason::Superseded)
    );
    let newest = credential(&app, &third.access, &tid).await;
    assert_eq!(admit(&ring, &manifest, &eid, &newest), Outcome::Admit);

    let missing = uuid::Uuid::now_v7();
    let (st, v) = app
        .post(
            &format!("/tickets/{missing}/transfer"),
            Some(&third.access),
            json!({"to_user_id": owner.user_id}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
}
both!(a_transfer_supersedes_the_old_credential);
