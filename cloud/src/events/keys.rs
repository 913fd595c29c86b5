//! Rotation of an event's signing keys (organizer of the event, admin).
//!
//! Routine rotation: `POST /events/{id}/keys` adds a key certified by the
//! organizer's root; from then on it signs new credentials and manifests,
//! and every manifest carries the certificates of all keys in service, so
//! tickets already printed under the old key keep admitting. Retiring
//! (`POST /events/{id}/keys/{key_id}/retire`) ends the old key: in one
//! transaction every valid ticket it signed gets a credential signed by the
//! current key at the next generation (the buyer's "my tickets" shows the
//! new QR; the old QR is `superseded` even at gates of the previous
//! release), and the root's `KeyRetirement` reaches the gates with their
//! next sync (`X-Key-Retirements`), after which they refuse anything the
//! key signed (`key_not_valid`) and manifests it signs.

use crate::auth::extract::{AuthUser, ManagedEvent};
use crate::crypto::signing::{self, SigningError, Trust};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::model::{EventId, UnixMillis};
use crate::state::AppState;
use crate::store::{EventKeyRow, EventRecord, Reissue, RetireKey, StoreError, signed_by};
use crate::tickets::issue::credential;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// Most keys in service at once: every manifest carries all their
/// certificates, and a manifest carries at most this many.
pub const MAX_KEYS_IN_SERVICE: usize = sync_protocol::manifest::MAX_CERTS as usize;

/// How often a retirement is tried again when tickets changed under it.
const RETIRE_ATTEMPTS: usize = 3;

/// What a gate needs to trust an event's credentials and manifests, and
/// the event's keys over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventKeys {
    /// The organizer's root public key (hex), the trust anchor.
    pub root_public_key: String,
    /// Key certificates of the event's signing keys in service (hex of the
    /// 139-byte layout).
    pub key_certificates: Vec<String>,
    /// Root-signed retirements of its retired keys (hex of the 107-byte
    /// layout, `docs/protocol.md`).
    pub key_retirements: Vec<String>,
    /// Every signing key of the event, oldest first.
    pub keys: Vec<EventKeyView>,
}

/// One signing key of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventKeyView {
    /// Key id (hex of the first 8 bytes of SHA-256 of the public key), as
    /// credentials name it.
    pub key_id: String,
    /// The ed25519 public key, hex.
    pub public_key: String,
    /// Added, unix ms.
    pub created_at: UnixMillis,
    /// Certificate window start, unix seconds.
    pub not_before: i64,
    /// Certificate window end, unix seconds.
    pub not_after: i64,
    /// Whether this key signs new credentials and manifests (the newest in
    /// service).
    pub current: bool,
    /// When it was retired, unix ms (`null`: in service).
    pub retired_at: Option<UnixMillis>,
}

/// The outcome of a retirement.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetiredKey {
    /// The retired key.
    pub key_id: String,
    /// When, unix ms.
    pub retired_at: UnixMillis,
    /// The key that signed the re-issued credentials.
    pub signed_by: String,
    /// Valid tickets whose credential was re-signed at the next generation.
    pub reissued: usize,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("event signing keys: {e}"))
}

impl From<SigningError> for ApiError {
    fn from(e: SigningError) -> Self {
        match e {
            SigningError::Store(s) => s.into(),
            other => internal(other),
        }
    }
}

async fn view(state: &AppState, event: &EventRecord) -> ApiResult<EventKeys> {
    let root = state.store.organizer_key(event.organizer_id).await?;
    let rows = state.store.event_keys(event.id).await?;
    let Trust { certs, retirements } = signing::trust(&rows)?;
    let current = rows
        .iter()
        .rev()
        .find(|k| k.retired_at.is_none())
        .map(|k| k.record.key.key_id.clone());
    Ok(EventKeys {
        root_public_key: hex::encode(root.public_key),
        key_certificates: certs.iter().map(|c| hex::encode(c.encode())).collect(),
        key_retirements: retirements
            .iter()
            .map(|r| hex::encode(r.encode()))
            .collect(),
        keys: rows
            .iter()
            .map(|k: &EventKeyRow| EventKeyView {
                key_id: k.record.key.key_id.clone(),
                public_key: hex::encode(&k.record.key.public_key),
                created_at: k.created_at,
                not_before: k.record.not_before,
                not_after: k.record.not_after,
                current: current.as_deref() == Some(k.record.key.key_id.as_str()),
                retired_at: k.retired_at,
            })
            .collect(),
    })
}

fn require_open(event: &EventRecord) -> ApiResult<()> {
    if event.status.editable() {
        return Ok(());
    }
    Err(StoreError::InvalidState(format!(
        "the keys of a {} event no longer change",
        event.status.as_str()
    ))
    .into())
}

/// The event's trust material: the organizer root public key, the
/// certificates of its signing keys in service, the retirements of the
/// others, and every key with its state (organizer of the event, admin).
#[utoipa::path(get, path = "/events/{id}/keys", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventKeys), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn signing_keys(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> ApiResult<Json<EventKeys>> {
    Ok(Json(view(&state, &m.event).await?))
}

/// Adds a signing key to the event, certified by the organizer's root:
/// from now on it signs new credentials and manifests. Keys already in
/// service stay trusted (tickets printed under them keep admitting) until
/// retired. Gates learn the new key from the next manifest they fetch.
#[utoipa::path(post, path = "/events/{id}/keys", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 201, body = EventKeys, description = "the event's keys, the new one `current`"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`invalid_state`: the event is over, or already has 16 keys in service")))]
pub async fn rotate_key(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> ApiResult<(StatusCode, Json<EventKeys>)> {
    require_open(&m.event)?;
    let now = state.now_ms();
    let key = signing::new_event_key(
        state.store.as_ref(),
        &state.vault,
        m.event.organizer_id,
        m.event.id,
        m.event.ends_at,
        now,
    )
    .await?;
    state
        .store
        .add_event_key(m.event.id, &key, MAX_KEYS_IN_SERVICE, now)
        .await?;
    tracing::info!(event = %m.event.id, key = %key.key.key_id, actor = %m.user.id, "event signing key added");
    Ok((StatusCode::CREATED, Json(view(&state, &m.event).await?)))
}

/// Retires one of the event's signing keys: every valid ticket it signed
/// gets a new credential signed by the current key (next generation, so
/// the old QR is refused as `superseded`), in one transaction with the
/// retirement; gates learn the root-signed retirement with their next sync
/// and then refuse what the key signed (`key_not_valid`).
#[utoipa::path(post, path = "/events/{id}/keys/{key_id}/retire", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"),
           ("key_id" = String, Path, description = "the key to retire (16 hex digits)")),
    responses((status = 200, body = RetiredKey),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such event, or no such key of it"),
              (status = 409, body = ErrorBody, description = "`gone`: already retired; `invalid_state`: the only key in service (add one first) or the event is over"),
              (status = 503, body = ErrorBody, description = "tickets kept changing meanwhile: retry")))]
pub async fn retire_key(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, key_id)): Path<(EventId, String)>,
) -> ApiResult<Json<RetiredKey>> {
    let event = state.store.event(id).await?;
    user.require_manager(&event, "only the event's organizer or an admin may do this")?;
    let key_id = key_id.to_ascii_lowercase();
    let rows = state.store.event_keys(event.id).await?;
    let Some(target) = rows.iter().find(|k| k.record.key.key_id == key_id) else {
        return Err(ApiError::NotFound(format!(
            "event key {key_id} not found: GET /events/{id}/keys lists them"
        )));
    };
    if target.retired_at.is_some() {
        return Err(StoreError::Gone(format!("key {key_id} is already retired")).into());
    }
    require_open(&event)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match retire_once(&state, &event, &key_id, &user).await {
            Err(ApiError::Retry(_)) if attempt < RETIRE_ATTEMPTS => continue,
            other => return other.map(Json),
        }
    }
}

async fn retire_once(
    state: &AppState,
    event: &EventRecord,
    key_id: &str,
    user: &AuthUser,
) -> ApiResult<RetiredKey> {
    let now = state.now_ms();
    let signer = crate::tickets::issue::signer(state, event).await?;
    let current = signer.key.key_id().to_string();
    if current == key_id {
        return Err(StoreError::InvalidState(format!(
            "key {key_id} is the event's current signing key: add a new one first \
             (POST /events/{}/keys), then retire this one",
            event.id
        ))
        .into());
    }
    let mut reissue = Vec::new();
    for t in state.store.tickets_with_credentials(event.id).await? {
        if !t
            .credential
            .as_deref()
            .is_some_and(|c| signed_by(c, key_id))
        {
            continue;
        }
        let generation = t.generation.checked_add(1).ok_or_else(|| {
            StoreError::InvalidState(format!(
                "ticket {} has reached the last credential generation",
                t.id
            ))
        })?;
        reissue.push(Reissue {
            ticket_id: t.id,
            from_generation: t.generation,
            credential: credential(&signer, event, t.id, t.tier, t.zone_mask, generation)?,
        });
    }
    let root = signing::organizer_root(state.store.as_ref(), &state.vault, event.organizer_id, now)
        .await?;
    let kid = parse_key_id(key_id)?;
    let retirement = root.retire(event.id, kid, (now / 1000) as u64);
    let reissued = state
        .store
        .retire_event_key(&RetireKey {
            event: event.id,
            key_id: key_id.to_string(),
            retirement: retirement.encode(),
            reissue,
            actor: user.id,
            now,
        })
        .await?;
    tracing::warn!(event = %event.id, key = key_id, reissued, actor = %user.id, "event signing key retired");
    Ok(RetiredKey {
        key_id: key_id.to_string(),
        retired_at: now,
        signed_by: current,
        reissued,
    })
}

fn parse_key_id(hex_id: &str) -> ApiResult<sync_protocol::KeyId> {
    let bytes: [u8; 8] = hex::decode(hex_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::Internal(format!("stored key id {hex_id} is not 16 hex digits"))
        })?;
    Ok(sync_protocol::KeyId(bytes))
}
