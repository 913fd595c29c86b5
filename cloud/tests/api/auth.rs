//! Identity: registration, login, refresh rotation and reuse detection,
//! logout, profiles, forged and `alg: none` tokens.

use crate::both;
use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn register_login_and_profile(app: TestApp) {
    let s = app.register("Ada@Example.com").await;
    let (st, me) = app.get("/users/me", &s.access).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        me["email"], "ada@example.com",
        "emails are stored lower-cased"
    );
    assert_eq!(
        me["role"], "customer",
        "self-registration only ever makes customers"
    );
    assert!(
        me.get("password_hash").is_none(),
        "the hash never leaves the server"
    );

    let (st, v) = app
        .post(
            "/auth/register",
            None,
            json!({"email": "ada@example.com", "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "duplicate");

    let (st, v) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "wrong password"}),
        )
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (st, v) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "whatever1"}),
        )
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.login("ADA@example.com", PASSWORD).await;

    let (st, me) = app
        .patch(
            "/users/me",
            &s.access,
            json!({"display_name": "Ada L.", "country": "DK", "birth_year": 1990}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(
        (
            me["display_name"].as_str(),
            me["country"].as_str(),
            me["birth_year"].as_i64()
        ),
        (Some("Ada L."), Some("DK"), Some(1990))
    );
    let (st, me) = app
        .patch("/users/me", &s.access, json!({"country": null}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        me["country"].is_null() && me["display_name"] == "Ada L.",
        "null clears, omitted stays: {me}"
    );
    let (st, v) = app
        .patch("/users/me", &s.access, json!({"country": "Denmark"}))
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (st, v) = app
        .patch("/users/me", &s.access, json!({"role": "admin"}))
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
both!(register_login_and_profile);

async fn registration_validates_input(app: TestApp) {
    for body in [
        json!({"email": "not-an-email", "password": PASSWORD, "display_name": "X"}),
        json!({"email": "a@b.co", "password": "short", "display_name": "X"}),
        json!({"email": "a@b.co", "password": PASSWORD, "display_name": "  "}),
    ] {
        let (st, v) = app.post("/auth/register", None, body.clone()).await;
        assert_error(
            st,
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
}
both!(registration_validates_input);

async fn refresh_rotates_and_reuse_revokes_the_session(app: TestApp) {
    let s = app.register("rot@example.com").await;
    let (st, r1) = app
        .post("/auth/refresh", None, json!({"refresh_token": s.refresh}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r1}");
    let second = r1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, s.refresh, "each refresh returns a new token");
    let (st, _) = app
        .get("/users/me", r1["access_token"].as_str().unwrap())
        .await;
    assert_eq!(st, StatusCode::OK);

    // The first token is replayed (stolen copy): reuse detected, family revoked.
    let (st, v) = app
        .post("/auth/refresh", None, json!({"refresh_token": s.refresh}))
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "refresh_token_reused");
    // Even the legitimate latest token of that session is now dead.
    let (st, v) = app
        .post("/auth/refresh", None, json!({"refresh_token": second}))
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "session_revoked");

    // Another login's session is unaffected.
    let other = app.login("rot@example.com", PASSWORD).await;
    let (st, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": other.refresh}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "a separate session survives the revocation of another"
    );

    let (st, v) = app
        .post("/auth/refresh", None, json!({"refresh_token": "garbage"}))
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}
both!(refresh_rotates_and_reuse_revokes_the_session);

async fn concurrent_refreshes_of_one_token_admit_only_one(app: TestApp) {
    let s = app.register("race@example.com").await;
    let body = json!({"refresh_token": s.refresh});
    let (a, b) = tokio::join!(
        app.post("/auth/refresh", None, body.clone()),
        app.post("/auth/refresh", None, body.clone())
    );
    let oks = [a.0, b.0].iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(
        oks, 1,
        "exactly one of two racing refreshes may win: {a:?} {b:?}"
    );
}
both!(concurrent_refreshes_of_one_token_admit_only_one);

async fn logout_ends_the_session(app: TestApp) {
    let s = app.register("out@example.com").await;
    let (st, _) = app
        .post("/auth/logout", None, json!({"refresh_token": s.refresh}))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = app
        .post("/auth/refresh", None, json!({"refresh_token": s.refresh}))
        .await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "session_revoked");
    let (st, _) = app
        .post("/auth/logout", None, json!({"refresh_token": s.refresh}))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "logout is idempotent");
}
both!(logout_ends_the_session);

async fn forged_and_alg_none_tokens_are_refused(app: TestApp) {
    let s = app.register("mallory@example.com").await;
    let parts: Vec<&str> = s.access.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["role"] = json!("admin");
    let forged_payload = B64.encode(serde_json::to_vec(&claims).unwrap());
    let none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let rs256 = B64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let hs512 = B64.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
    let cases = [
        (
            "alg none, no signature",
            format!("{none}.{forged_payload}."),
        ),
        (
            "alg none, original signature",
            format!("{none}.{forged_payload}.{}", parts[2]),
        ),
        (
            "payload changed, signature kept",
            format!("{}.{forged_payload}.{}", parts[0], parts[2]),
        ),
        (
            "algorithm confusion RS256",
            format!("{rs256}.{}.{}", parts[1], parts[2]),
        ),
        (
            "other HMAC size",
            format!("{hs512}.{}.{}", parts[1], parts[2]),
        ),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in cases {
        let (st, v) = app.get("/users/me", &token).await;
        assert_error(st, &v, StatusCode::UNAUTHORIZED, "invalid_token");
        let (st, _) = app.get(&format!("/users/{}", s.user_id), &token).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{what} must not pass as admin"
        );
    }
    let (st, v) = app.call(Method::GET, "/users/me", None, None).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "missing_token");
    // A refresh token is not an access token.
    let (st, _) = app.get("/users/me", &s.refresh).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
both!(forged_and_alg_none_tokens_are_refused);

async fn roles_are_granted_by_admins_only(app: TestApp) {
    let c = app.register("c@example.com").await;
    let (st, v) = app
        .patch(
            &format!("/users/{}/role", c.user_id),
            &c.access,
            json!({"role": "admin"}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let org = app.organizer("o@example.com").await;
    let (st, me) = app.get("/users/me", &org.access).await;
    assert_eq!(
        (st, me["role"].as_str()),
        (StatusCode::OK, Some("organizer"))
    );
    let admin = app.admin().await;
    let (st, v) = app
        .patch(
            &format!("/users/{}/role", admin.user_id),
            &admin.access,
            json!({"role": "customer"}),
        )
        .await;
    assert_error(st, &v, StatusCode::CONFLICT, "conflict");
    let (st, v) = app
        .patch(
            &format!("/users/{}/role", uuid::Uuid::now_v7()),
            &admin.access,
            json!({"role": "staff"}),
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "not_found");
    let (st, v) = app
        .patch(
            &format!("/users/{}/role", c.user_id),
            &admin.access,
            json!({"role": "emperor"}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
both!(roles_are_granted_by_admins_only);
