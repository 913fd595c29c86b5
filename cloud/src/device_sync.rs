//! What enrolled devices sync (device token, own event only): the signed
//! full manifest, signed deltas, and check-in CRDT batches. Contract:
//! `docs/device-api.md`; byte layouts: `docs/protocol.md`.
//!
//! These routes sit outside the per-address rate limit (a venue's gates
//! share one NAT address and sync every few seconds); they are
//! authenticated by device token instead. Bodies up to
//! [`SYNC_BODY_LIMIT`] are accepted here only (a full 10,000-record
//! message); every answer carries `X-Gatehouse-Time`.

use crate::crypto::signing::event_signer;
use crate::devices::auth::EventDevice;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Query;
use crate::state::AppState;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sync_protocol::SyncMessage;
use sync_protocol::roster::{RecordRefusal, RosterHeader, SignedRoster, verify_signatures};
use sync_protocol::sync::MAX_RECORDS_PER_MESSAGE;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest sync body: a full message of maximal records fits in 2.1 MB;
/// the rest is room for a large summary (the LAN envelope's limit).
pub const SYNC_BODY_LIMIT: usize = sync_protocol::sync::MAX_ENVELOPE_LEN;
/// The manifest version served.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-manifest-version");
/// The event's key retirements on every manifest answer (200 and 204):
/// comma-separated hex of root-signed `KeyRetirement`s (`docs/protocol.md`).
/// A header, not a manifest field, so manifests keep their frozen layouts
/// and gates of the previous release (which ignore it) keep syncing.
pub const RETIREMENTS_HEADER: HeaderName = HeaderName::from_static("x-key-retirements");

fn with_retirements(mut r: Response, retirements: &[sync_protocol::KeyRetirement]) -> Response {
    if retirements.is_empty() {
        return r;
    }
    let value = retirements
        .iter()
        .map(|x| hex::encode(x.encode()))
        .collect::<Vec<_>>()
        .join(",");
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(RETIREMENTS_HEADER, v);
    }
    r
}

/// Routes under `/sync`.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(manifest))
        .routes(routes!(delta))
        .routes(routes!(checkins))
        .routes(routes!(roster))
        .routes(routes!(crate::push::stream))
        .layer(DefaultBodyLimit::max(SYNC_BODY_LIMIT))
        .layer(axum::middleware::from_fn(refuse_announced_oversize))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::devices::auth::time_header,
        ))
}

/// Answers 413 on the `Content-Length` alone, before authenticating or
/// reading a byte of a body that could not be accepted anyway.
async fn refuse_announced_oversize(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > SYNC_BODY_LIMIT as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(req).await
}

fn binary(version: Option<u64>, bytes: Vec<u8>) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response();
    if let Some(v) = version {
        r.headers_mut().insert(VERSION_HEADER, HeaderValue::from(v));
    }
    r
}

async fn signer(state: &AppState, dev: &EventDevice) -> ApiResult<crate::store::EventSigner> {
    event_signer(state.store.as_ref(), &state.vault, dev.event_id)
        .await
        .map_err(|e| ApiError::Internal(format!("event signing key: {e}")))
}

/// The event's full signed manifest at its current version.
#[utoipa::path(get, path = "/sync/events/{event_id}/manifest", tag = "device sync", security(("device_token" = [])),
    params(("event_id" = String, Path, format = Uuid, description = "the device's event")),
    responses((status = 200, content_type = "application/octet-stream", description = "signed manifest (`docs/protocol.md`); `X-Manifest-Version`; `X-Key-Retirements` when the event has retired keys"),
               (status = 401, body = ErrorBody, description = "missing, unknown or revoked (`device_revoked`) token"),
               (status = 403, body = ErrorBody, description = "another event than the device's (`wrong_event`)")))]
async fn manifest(State(state): State<AppState>, dev: EventDevice) -> ApiResult<Response> {
    let signer = signer(&state, &dev).await?;
    let (version, bytes) = state
        .store
        .signed_manifest(dev.event_id, &signer, state.now_secs())
        .await?;
    Ok(with_retirements(
        binary(Some(version), bytes),
        &signer.retirements,
    ))
}

/// `?since=V`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeltaQuery {
    /// The manifest version the device holds.
    since: u64,
}

/// The signed delta from version `since` to the current version.
#[utoipa::path(get, path = "/sync/events/{event_id}/manifest/delta", tag = "device sync", security(("device_token" = [])),
    params(("event_id" = String, Path, format = Uuid, description = "the device's event"), DeltaQuery),
    responses((status = 200, content_type = "application/octet-stream", description = "signed delta; `X-Manifest-Version`; `X-Key-Retirements` when the event has retired keys"),
               (status = 204, description = "`since` is current (`X-Key-Retirements` as on 200)"),
               (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "`full_manifest_required`: no delta from `since`")))]
async fn delta(
    State(state): State<AppState>,
    dev: EventDevice,
    Query(q): Query<DeltaQuery>,
) -> ApiResult<Response> {
    let (changes, base) = match state
        .store
        .manifest_changes_since(dev.event_id, q.since)
        .await
    {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::coded(
                StatusCode::CONFLICT,
                "full_manifest_required",
                format!("no delta from version {}: fetch the full manifest", q.since),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    // Most polls find the device current: answer before opening the key.
    if changes.version == q.since {
        let mut r = StatusCode::NO_CONTENT.into_response();
        r.headers_mut()
            .insert(VERSION_HEADER, HeaderValue::from(q.since));
        let trust = crate::crypto::signing::event_trust(state.store.as_ref(), dev.event_id)
            .await
            .map_err(|e| ApiError::Internal(format!("event signing keys: {e}")))?;
        return Ok(with_retirements(r, &trust.retirements));
    }
    let signer = signer(&state, &dev).await?;
    let version = changes.version;
    let bytes = changes
        .sign_delta(q.since, &base, &signer, state.now_secs())
        .map_err(|e| ApiError::Internal(format!("signing delta: {e}")))?;
    Ok(with_retirements(
        binary(Some(version), bytes),
        &signer.retirements,
    ))
}

/// Pushes a batch of check-in records and pulls what the device lacks.
#[utoipa::path(post, path = "/sync/events/{event_id}/checkins", tag = "device sync", security(("device_token" = [])),
    params(("event_id" = String, Path, format = Uuid, description = "the device's event")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "a SyncMessage: the device's summary and at most 10,000 records"),
    responses((status = 200, content_type = "application/octet-stream", description = "a SyncMessage: the cloud's summary and at most 10,000 records the device lacks"),
               (status = 400, body = ErrorBody, description = "not a sync message (`invalid_sync_message`)"),
               (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "a record conflicts with the copy held; nothing written"),
               (status = 413, body = ErrorBody),
               (status = 422, body = ErrorBody, description = "`wrong_event` or `foreign_node`; nothing written")))]
async fn checkins(
    State(state): State<AppState>,
    dev: EventDevice,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::bad_request("invalid_body", r.body_text()),
    })?;
    let msg = SyncMessage::decode(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_sync_message",
            format!("the body is not a sync message: {e}"),
        )
    })?;
    if msg.event_id != dev.event_id {
        return Err(ApiError::coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_event",
            "the sync message is for another event",
        ));
    }
    let mut nodes: Vec<_> = msg.records.iter().map(|r| r.id.node).collect();
    nodes.sort();
    nodes.dedup();
    if let Some(node) = state
        .store
        .foreign_nodes(dev.event_id, &nodes)
        .await?
        .first()
    {
        return Err(ApiError::coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "foreign_node",
            format!("node {node} belongs to another event"),
        ));
    }
    let revoked = check_records(&state, &dev, &msg).await?;
    let out = state
        .store
        .sync_checkins(
            dev.event_id,
            &msg,
            &revoked,
            dev.device.id,
            state.now_ms().max(0) as u64,
            MAX_RECORDS_PER_MESSAGE,
        )
        .await?;
    tracing::info!(
        device = %dev.device.id, event = %dev.event_id, pushed = msg.records.len(),
        new = out.report.new, refused = out.report.refused, conflicts = out.report.conflicts,
        pulled = out.reply.records.len(), "check-in sync"
    );
    metrics::counter!("cloud_checkins_ingested_total").increment(out.report.new as u64);
    crate::console::fleet::record(&state, &dev, &headers).await;
    Ok(binary(None, out.reply.encode()))
}

/// Checks every record of an upload against the event's roster as published
/// now: a device of the event, signed by it, not dated before its
/// enrollment. Returns the records a revoked device made after its
/// revocation (kept as evidence, never counted); any other refusal refuses
/// the whole batch (422, nothing written).
async fn check_records(
    state: &AppState,
    dev: &EventDevice,
    msg: &SyncMessage,
) -> ApiResult<std::collections::BTreeSet<sync_protocol::ScanId>> {
    let roster = state.store.roster_now(dev.event_id).await?;
    let mut revoked = std::collections::BTreeSet::new();
    let mut pairs = Vec::with_capacity(msg.records.len());
    let refuse = |e: RecordRefusal| {
        ApiError::coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.code(),
            format!("{e}; nothing was written"),
        )
    };
    for r in &msg.records {
        match roster.standing(r) {
            Ok(entry) => pairs.push((r, &entry.public_key)),
            Err(RecordRefusal::Revoked(id)) => {
                let entry = roster
                    .entry(&id.node)
                    .ok_or_else(|| refuse(RecordRefusal::UnknownDevice(id)))?;
                pairs.push((r, &entry.public_key));
                revoked.insert(id);
            }
            Err(e) => return Err(refuse(e)),
        }
    }
    verify_signatures(&pairs).map_err(refuse)?;
    Ok(revoked)
}

/// `?since=V`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RosterQuery {
    /// The roster version the device holds (0: none).
    since: u64,
}

pub use sync_protocol::device_api::{GossipKeyView, RosterView};

/// The signed device roster and the current gossip key, publishing the
/// next version first if the event's devices changed.
pub async fn current_roster(
    state: &AppState,
    event: crate::model::EventId,
    since: u64,
) -> ApiResult<Option<RosterView>> {
    let signer = event_signer(state.store.as_ref(), &state.vault, event)
        .await
        .map_err(|e| ApiError::Internal(format!("event signing key: {e}")))?;
    let aad = format!("gossip-key/{event}");
    let internal = |e: crate::crypto::CryptoError| ApiError::Internal(format!("gossip key: {e}"));
    let candidate = state
        .vault
        .seal(
            &crate::crypto::random_bytes::<32>().map_err(internal)?,
            &aad,
        )
        .map_err(internal)?;
    let published = state
        .store
        .publish_roster(event, &signer.key.public(), &candidate, state.now_ms())
        .await?;
    if since == published.version {
        return Ok(None);
    }
    let update = state.store.roster_update(event, since).await?;
    let header = RosterHeader {
        event_id: event,
        version: update.current.version,
        digest: update.current.digest,
        issued_at: state.now_secs(),
    };
    let mut entries = update.entries;
    let bytes = SignedRoster::sign(&signer.key, &header, update.base, &mut entries)
        .map_err(|e| ApiError::Internal(format!("signing roster: {e}")))?;
    let key = state
        .vault
        .open(&update.current.sealed_gossip_key, &aad)
        .map_err(internal)?;
    Ok(Some(RosterView {
        version: update.current.version,
        roster: hex::encode(bytes),
        gossip_key: GossipKeyView {
            version: update.current.version,
            key: hex::encode(key),
        },
    }))
}

/// The signed device roster (delta from `since`, or full) and the gossip
/// key of its version.
#[utoipa::path(get, path = "/sync/events/{event_id}/roster", tag = "device sync", security(("device_token" = [])),
    params(("event_id" = String, Path, format = Uuid, description = "the device's event"), RosterQuery),
    responses((status = 200, body = RosterView, description = "the roster and the current gossip key"),
               (status = 204, description = "`since` is current"),
               (status = 401, body = ErrorBody, description = "missing, unknown or revoked (`device_revoked`) token"),
               (status = 403, body = ErrorBody, description = "another event than the device's (`wrong_event`)")))]
async fn roster(
    State(state): State<AppState>,
    dev: EventDevice,
    Query(q): Query<RosterQuery>,
) -> ApiResult<Response> {
    match current_roster(&state, dev.event_id, q.since).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(view) => Ok(axum::Json(view).into_response()),
    }
}
