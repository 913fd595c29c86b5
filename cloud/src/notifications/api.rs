//! The notification endpoints. Sending is never an open relay: organizers
//! reach the holders of their own events' tickets only; explicit addresses
//! and numbers are for admins. Every message goes through the outbox.

use super::dto::*;
use super::sms::is_e164;
use super::webhook;
use crate::auth::extract::{Admin, AuthUser, ManagedEvent, Organizer};
use crate::crypto::random_bytes;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::store::notifications::*;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Routes under `/notifications`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_email))
        .routes(routes!(send_sms))
        .routes(routes!(send_webhook))
        .routes(routes!(status))
        .routes(routes!(list))
        .routes(routes!(resend))
        .routes(routes!(resend_undeliverable))
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(get_prefs, put_prefs))
        .routes(routes!(put_branding))
}

/// AAD of an endpoint's sealed secrets.
pub fn secret_aad(endpoint: Uuid) -> String {
    format!("webhook-secret/{endpoint}")
}

const NO_RELAY: &str = "explicit recipients are for admins only; organizers send to the holders of their event's tickets (event_id)";

/// Who receives an organizer or admin send.
async fn audience(
    state: &AppState,
    user: &AuthUser,
    event_id: Option<crate::model::EventId>,
    user_ids: Option<&[crate::model::UserId]>,
) -> ApiResult<Vec<AudienceMember>> {
    let event = event_id.ok_or_else(|| ApiError::Validation("event_id is required".into()))?;
    let event = state.store.event(event).await?;
    user.require_manager(
        &event,
        "only the event's organizer or an admin may message its audience",
    )?;
    Ok(state.store.event_audience(event.id, user_ids).await?)
}

fn check_len(what: &str, s: &str, max: usize) -> ApiResult<()> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(ApiError::Validation(format!(
            "{what} must have 1 to {max} characters"
        )));
    }
    Ok(())
}

fn new_message(
    channel: Channel,
    user: &AuthUser,
    event: Option<crate::model::EventId>,
    to: String,
    member: Option<crate::model::UserId>,
    payload: String,
) -> NewNotification {
    NewNotification {
        channel,
        kind: "custom".into(),
        event_id: event,
        endpoint_id: None,
        user_id: member,
        recipient: to,
        payload,
        dedupe_key: None,
        created_by: Some(user.id),
    }
}

/// Sends an email to an event's ticket holders (organizer of the event,
/// admin) or to explicit addresses (admin).
#[utoipa::path(post, path = "/notifications/email", tag = "notifications", security(("bearer" = [])),
    request_body = SendEmail,
    responses((status = 202, body = Queued), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_email(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Json(req): Json<SendEmail>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    check_len("subject", &req.subject, 200)?;
    check_len("text", &req.text, 20_000)?;
    let event_json = match req.event_id {
        Some(e) => {
            let ev = state.store.event(e).await?;
            json!({"id": ev.id.to_string(), "name": ev.name})
        }
        None => serde_json::Value::Null,
    };
    let payload =
        json!({"subject": req.subject, "text": req.text, "event": event_json}).to_string();
    let mut msgs = Vec::new();
    if let Some(to) = &req.to {
        if !user.is_admin() {
            return Err(ApiError::Forbidden(NO_RELAY.into()));
        }
        if to.is_empty() || to.len() > 100 {
            return Err(ApiError::Validation(
                "to must list 1 to 100 addresses".into(),
            ));
        }
        for addr in to {
            addr.parse::<lettre::message::Mailbox>()
                .map_err(|_| ApiError::Validation(format!("{addr:?} is not an email address")))?;
            msgs.push(new_message(
                Channel::Email,
                &user,
                req.event_id,
                addr.clone(),
                None,
                payload.clone(),
            ));
        }
    } else {
        for m in audience(&state, &user, req.event_id, req.user_ids.as_deref()).await? {
            msgs.push(new_message(
                Channel::Email,
                &user,
                req.event_id,
                m.email,
                Some(m.user_id),
                payload.clone(),
            ));
        }
    }
    let ids = state
        .store
        .enqueue_notifications(&msgs, state.now_ms())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { ids })))
}

/// Sends an SMS to an event's ticket holders who gave a number and opted in
/// (organizer of the event, admin) or to explicit numbers (admin).
#[utoipa::path(post, path = "/notifications/sms", tag = "notifications", security(("bearer" = [])),
    request_body = SendSms,
    responses((status = 202, body = Queued), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_sms(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Json(req): Json<SendSms>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    check_len("text", &req.text, super::sms::MAX_BODY)?;
    let payload = json!({"text": req.text}).to_string();
    let mut msgs = Vec::new();
    if let Some(to) = &req.to {
        if !user.is_admin() {
            return Err(ApiError::Forbidden(NO_RELAY.into()));
        }
        if to.is_empty() || to.len() > 100 {
            return Err(ApiError::Validation("to must list 1 to 100 numbers".into()));
        }
        for n in to {
            if !is_e164(n) {
                return Err(ApiError::Validation(format!(
                    "{n:?} is not an E.164 number like +14155550100"
                )));
            }
            msgs.push(new_message(
                Channel::Sms,
                &user,
                req.event_id,
                n.clone(),
                None,
                payload.clone(),
            ));
        }
    } else {
        for m in audience(&state, &user, req.event_id, req.user_ids.as_deref()).await? {
            if let Some(phone) = m.prefs.phone.filter(|_| m.prefs.sms) {
                msgs.push(new_message(
                    Channel::Sms,
                    &user,
                    req.event_id,
                    phone,
                    Some(m.user_id),
                    payload.clone(),
                ));
            }
        }
    }
    let ids = state
        .store
        .enqueue_notifications(&msgs, state.now_ms())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { ids })))
}

async fn owned_endpoint(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
) -> ApiResult<WebhookEndpointRecord> {
    let e = state.store.webhook_endpoint(id).await?;
    if e.owner_id != user.id && !user.is_admin() {
        return Err(ApiError::NotFound("webhook endpoint not found".into()));
    }
    Ok(e)
}

/// Sends a signed delivery of your own to one of your endpoints (e.g. a test).
#[utoipa::path(post, path = "/notifications/webhook", tag = "notifications", security(("bearer" = [])),
    request_body = SendWebhook,
    responses((status = 202, body = Queued), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_webhook(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Json(req): Json<SendWebhook>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let e = owned_endpoint(&state, &user, req.endpoint_id).await?;
    let k = &req.kind;
    if k.is_empty()
        || k.len() > 64
        || !k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
    {
        return Err(ApiError::Validation(
            "type must be 1 to 64 of a-z, 0-9, '.' and '_'".into(),
        ));
    }
    if !req.data.is_object() {
        return Err(ApiError::Validation("data must be a JSON object".into()));
    }
    let now = state.now_ms();
    let body =
        json!({"type": k, "timestamp": crate::store::outbox::rfc3339(now), "data": req.data})
            .to_string();
    let msg = NewNotification {
        channel: Channel::Webhook,
        kind: k.clone(),
        event_id: e.event_id,
        endpoint_id: Some(e.id),
        user_id: None,
        recipient: e.url.clone(),
        payload: body,
        dedupe_key: None,
        created_by: Some(user.id),
    };
    let ids = state.store.enqueue_notifications(&[msg], now).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { ids })))
}

/// Whether `user` may see (and for webhooks replay) a message.
async fn may_see(state: &AppState, user: &AuthUser, r: &NotificationRecord) -> ApiResult<bool> {
    if user.is_admin() || r.created_by == Some(user.id) {
        return Ok(true);
    }
    if let Some(e) = r.endpoint_id
        && let Ok(ep) = state.store.webhook_endpoint(e).await
        && ep.owner_id == user.id
    {
        return Ok(true);
    }
    if let Some(ev) = r.event_id {
        let event = state.store.event(ev).await?;
        return Ok(user.manages(&event));
    }
    Ok(false)
}

/// A message's delivery status and attempt log (admin, its sender, the
/// event's organizer, the endpoint's owner).
#[utoipa::path(get, path = "/notifications/{id}/status", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = NotificationStatus), (status = 404, body = ErrorBody)))]
async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<NotificationStatus>> {
    let r = state.store.notification(id).await?;
    if !may_see(&state, &user, &r).await? {
        return Err(ApiError::NotFound("notification not found".into()));
    }
    let mut v = NotificationStatus::from(&r);
    v.attempt_log = state
        .store
        .notification_attempts(id)
        .await?
        .iter()
        .map(AttemptView::from)
        .collect();
    Ok(Json(v))
}

/// Messages of an event (its organizer) or of all events (admin).
#[utoipa::path(get, path = "/notifications", tag = "notifications", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<NotificationStatus>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such event"), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<NotificationStatus>>> {
    if let Some(e) = q.event_id {
        let event = state.store.event(e).await?;
        user.require_manager(
            &event,
            "only the event's organizer or an admin may list its messages",
        )?;
    } else if !user.is_admin() {
        return Err(ApiError::Validation("event_id is required".into()));
    }
    let scope = NotificationFilter {
        event_id: q.event_id,
        ..Default::default()
    };
    list_page(&state, &q, scope).await
}

/// One page of messages within `scope`: the query's status filter, cursor
/// and limit (1..=100, default 50), shared by every list endpoint.
async fn list_page(
    state: &AppState,
    q: &ListQuery,
    scope: NotificationFilter,
) -> ApiResult<Json<Vec<NotificationStatus>>> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<DeliveryStatus>)
        .transpose()
        .map_err(ApiError::Validation)?;
    // Out of range is an error, as the document says (not silently clamped).
    let limit = crate::http::extract::PageParams {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let f = NotificationFilter {
        status,
        after: q.cursor,
        limit,
        ..scope
    };
    let rows = state.store.list_notifications(&f).await?;
    Ok(Json(rows.iter().map(NotificationStatus::from).collect()))
}

/// Queues a delivered, failed or undeliverable message again with fresh
/// attempts and the same id (admin; a webhook's endpoint owner: replay).
#[utoipa::path(post, path = "/notifications/{id}/resend", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = NotificationStatus), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resend(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<NotificationStatus>> {
    let r = state.store.notification(id).await?;
    let owner = match r.endpoint_id {
        Some(e) => state
            .store
            .webhook_endpoint(e)
            .await
            .is_ok_and(|ep| ep.owner_id == user.id),
        None => false,
    };
    if !user.is_admin() && !owner {
        return Err(if may_see(&state, &user, &r).await? {
            ApiError::Forbidden(
                "only admins re-send email and SMS; endpoint owners replay webhooks".into(),
            )
        } else {
            ApiError::NotFound("notification not found".into())
        });
    }
    let r = state.store.resend_notification(id, state.now_ms()).await?;
    Ok(Json(NotificationStatus::from(&r)))
}

/// Queues every undeliverable message again (after configuring a transport).
#[utoipa::path(post, path = "/notifications/resend-undeliverable", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Requeued), (status = 403, body = ErrorBody)))]
async fn resend_undeliverable(
    State(state): State<AppState>,
    admin: Admin,
) -> ApiResult<Json<Requeued>> {
    let _ = admin;
    let queued = state.store.resend_undeliverable(state.now_ms()).await?;
    Ok(Json(Requeued { queued }))
}

fn check_types(types: &[String]) -> ApiResult<Vec<String>> {
    if types.is_empty() || types.len() > 20 {
        return Err(ApiError::Validation(
            "event_types must list 1 to 20 types".into(),
        ));
    }
    for t in types {
        if t != "*" && !EVENT_TYPES.contains(&t.as_str()) {
            return Err(ApiError::Validation(format!(
                "unknown event type {t:?}; known: {} (or \"*\")",
                EVENT_TYPES.join(", ")
            )));
        }
    }
    let mut t = types.to_vec();
    t.sort();
    t.dedup();
    Ok(t)
}

async fn check_target(state: &AppState, url: &str) -> ApiResult<String> {
    if url.len() > 2_000 {
        return Err(ApiError::Validation(
            "url is longer than 2000 characters".into(),
        ));
    }
    let u = webhook::check_url(url).map_err(ApiError::Validation)?;
    if let Err(why) =
        webhook::resolve(&u, &state.config.notifications.webhooks.allow_networks).await
        && why.starts_with("refused")
    {
        return Err(ApiError::Validation(why));
    }
    Ok(u.to_string())
}

fn new_secret(state: &AppState, id: Uuid) -> ApiResult<(SealedSecret, String)> {
    let key = random_bytes::<32>().map_err(|e| ApiError::Internal(e.to_string()))?;
    let sealed = state
        .vault
        .seal(&key, &secret_aad(id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        SealedSecret {
            sealed,
            expires_at: None,
        },
        webhook::encode_secret(&key),
    ))
}

/// Registers a webhook endpoint; the answer carries its signing secret once.
#[utoipa::path(post, path = "/notifications/webhook-endpoints", tag = "notifications", security(("bearer" = [])),
    request_body = CreateEndpoint,
    responses((status = 201, body = EndpointView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_endpoint(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Json(req): Json<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    if let Some(e) = req.event_id {
        let event = state.store.event(e).await?;
        user.require_manager(
            &event,
            "only the event's organizer may register its webhooks",
        )?;
    }
    let event_types = check_types(&req.event_types)?;
    let url = check_target(&state, &req.url).await?;
    let now = state.now_ms();
    let id = Uuid::now_v7();
    let (sealed, secret) = new_secret(&state, id)?;
    let e = WebhookEndpointRecord {
        id,
        owner_id: user.id,
        event_id: req.event_id,
        url,
        event_types,
        secrets: vec![sealed],
        enabled: true,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    state.store.create_webhook_endpoint(&e).await?;
    let mut v = EndpointView::of(&e, now);
    v.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

/// Your endpoints (admin: everyone's).
#[utoipa::path(get, path = "/notifications/webhook-endpoints", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Vec<EndpointView>), (status = 403, body = ErrorBody)))]
async fn list_endpoints(
    State(state): State<AppState>,
    Organizer(user): Organizer,
) -> ApiResult<Json<Vec<EndpointView>>> {
    let owner = (!user.is_admin()).then_some(user.id);
    let now = state.now_ms();
    let list = state.store.list_webhook_endpoints(owner).await?;
    Ok(Json(
        list.iter().map(|e| EndpointView::of(e, now)).collect(),
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/notifications/webhook-endpoints/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)))]
async fn get_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EndpointView>> {
    let e = owned_endpoint(&state, &user, id).await?;
    Ok(Json(EndpointView::of(&e, state.now_ms())))
}

/// Changes the URL or types, or turns deliveries on or off.
#[utoipa::path(patch, path = "/notifications/webhook-endpoints/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateEndpoint,
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateEndpoint>,
) -> ApiResult<Json<EndpointView>> {
    let mut e = owned_endpoint(&state, &user, id).await?;
    if let Some(url) = &req.url {
        e.url = check_target(&state, url).await?;
    }
    if let Some(t) = &req.event_types {
        e.event_types = check_types(t)?;
    }
    if let Some(on) = req.enabled {
        e.enabled = on;
        if on {
            e.disabled_reason = None;
        } else if e.disabled_reason.is_none() {
            e.disabled_reason = Some("disabled by its owner".into());
        }
    }
    e.updated_at = state.now_ms();
    state.store.update_webhook_endpoint(&e).await?;
    Ok(Json(EndpointView::of(&e, e.updated_at)))
}

/// Rotates the signing secret: the new one signs from now on, and the old
/// one keeps signing alongside it for the overlap (two signatures per
/// delivery), so receivers can switch without dropping a delivery.
#[utoipa::path(post, path = "/notifications/webhook-endpoints/{id}/rotate-secret", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EndpointView>> {
    let mut e = owned_endpoint(&state, &user, id).await?;
    let now = state.now_ms();
    let overlap =
        (state.config.notifications.webhooks.rotation_overlap_secs as i64).saturating_mul(1000);
    let (sealed, secret) = new_secret(&state, id)?;
    let mut secrets = vec![sealed];
    for mut s in e.secrets.drain(..) {
        if s.expires_at.is_some_and(|x| x <= now) {
            continue;
        }
        s.expires_at = Some(s.expires_at.unwrap_or(now + overlap).min(now + overlap));
        secrets.push(s);
    }
    secrets.truncate(3);
    e.secrets = secrets;
    e.updated_at = now;
    state.store.update_webhook_endpoint(&e).await?;
    let mut v = EndpointView::of(&e, now);
    v.secret = Some(secret);
    Ok(Json(v))
}

/// Deliveries to an endpoint, oldest first.
#[utoipa::path(get, path = "/notifications/webhook-endpoints/{id}/deliveries", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = Vec<NotificationStatus>), (status = 404, body = ErrorBody)))]
async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<NotificationStatus>>> {
    let e = owned_endpoint(&state, &user, id).await?;
    let scope = NotificationFilter {
        endpoint_id: Some(e.id),
        ..Default::default()
    };
    list_page(&state, &q, scope).await
}

/// Your notification preferences.
#[utoipa::path(get, path = "/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
async fn get_prefs(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Preferences>> {
    let p = state.store.notification_prefs(user.id).await?;
    Ok(Json(Preferences {
        reminders: p.reminders,
        phone: p.phone,
        sms: p.sms,
    }))
}

/// Sets your preferences: reminders on or off, SMS number and opt-in.
/// Transactional messages (tickets, transfers, refunds, cancellations)
/// always go.
#[utoipa::path(put, path = "/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    request_body = Preferences,
    responses((status = 200, body = Preferences), (status = 422, body = ErrorBody)))]
async fn put_prefs(
    State(state): State<AppState>,
    user: AuthUser,
    Json(p): Json<Preferences>,
) -> ApiResult<Json<Preferences>> {
    if let Some(phone) = &p.phone
        && !is_e164(phone)
    {
        return Err(ApiError::Validation(
            "phone must be an E.164 number like +14155550100".into(),
        ));
    }
    if p.sms && p.phone.is_none() {
        return Err(ApiError::Validation("sms needs a phone number".into()));
    }
    let rec = PrefsRecord {
        reminders: p.reminders,
        phone: p.phone.clone(),
        sms: p.sms,
    };
    state
        .store
        .set_notification_prefs(user.id, &rec, state.now_ms())
        .await?;
    Ok(Json(p))
}

fn is_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sets how the event looks in its messages (organizer, admin).
#[utoipa::path(put, path = "/notifications/branding/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")), request_body = Branding,
    responses((status = 200, body = Branding), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_branding(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(b): Json<Branding>,
) -> ApiResult<Json<Branding>> {
    if !is_colour(&b.primary_color) || !is_colour(&b.accent_color) {
        return Err(ApiError::Validation("colours must be #rrggbb".into()));
    }
    if let Some(u) = &b.logo_url
        && (!u.starts_with("https://") || u.len() > 500 || reqwest::Url::parse(u).is_err())
    {
        return Err(ApiError::Validation(
            "logo_url must be an https URL of at most 500 characters".into(),
        ));
    }
    let rec = BrandingRecord {
        primary_color: b.primary_color.clone(),
        accent_color: b.accent_color.clone(),
        logo_url: b.logo_url.clone(),
    };
    state
        .store
        .set_event_branding(m.event.id, &rec, state.now_ms())
        .await?;
    Ok(Json(b))
}
