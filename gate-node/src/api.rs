//! The node's local HTTP API (axum): `GET /status`, `GET /scans/recent`,
//! `POST /peer/sync` (LAN sync, see [`crate::peer`]), `GET /metrics`
//! (Prometheus) and, when enabled, `POST /scan` (text in, decision out: what
//! a door-staff desktop or a test harness uses).
//!
//! Handlers are thin: extract, call the engine, store or peer hub off the
//! async threads, answer JSON. Errors are one [`ApiError`] with a stable code.

use crate::cloud_sync::{CloudStatus, CloudSync};
use crate::engine::{CounterSnapshot, Engine, EngineError, ScanReport, decision_label};
use crate::peer::{PeerError, PeerHub, PeerState, TIME_HEADER};
use crate::store::{CloudBacklog, Evidence, ManifestInfo, RosterInfo, StoreError};
use crate::time::BestTime;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use sync_protocol::checkin::DoubleAdmission;
use sync_protocol::{Direction, EventId, Hlc, NodeId, Reason, ScanRecord, TicketId};

/// Everything the handlers need.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The scan pipeline (and through it the store and time).
    pub engine: Arc<Engine>,
    /// LAN sync.
    pub peers: Arc<PeerHub>,
    /// Cloud sync, when configured.
    pub cloud: Option<Arc<CloudSync>>,
    /// Prometheus renderer, when this process installed the recorder.
    pub metrics: Option<PrometheusHandle>,
    /// Whether `POST /scan` is served.
    pub scan_endpoint: bool,
}

/// One error answer: `{"error": {"code", "message"}}`, the cloud's shape,
/// for every refusal including the framework's own (bad JSON, wrong content
/// type, unknown route, wrong method).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 400 `invalid_json`: the body is not JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// 404 `not_found` for a path this API does not serve.
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    /// 405.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// 413.
    #[error("request body is larger than this endpoint accepts")]
    PayloadTooLarge,
    /// 415.
    #[error("expected a request with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`: this caller may not use this endpoint.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("not found")]
    NotFound,
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 422.
    #[error("{0}")]
    Unprocessable(String),
    /// 500; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::NoRoute(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "local API internal error");
        }
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}});
        (self.status_code(), Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match &r {
            JsonRejection::JsonDataError(e) => {
                ApiError::Unprocessable(format!("invalid request body: {}", e.body_text()))
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::InvalidJson(format!("malformed JSON: {}", e.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            _ => ApiError::BadRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query: {}", r.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

async fn wrong_method() -> ApiError {
    ApiError::MethodNotAllowed
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<PeerError> for ApiError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::Unauthorized(_) | PeerError::UnknownKeyVersion(_) | PeerError::Replay(_) => {
                ApiError::Unauthorized(e.to_string())
            }
            PeerError::Refused(_) => ApiError::Unprocessable(e.to_string()),
            PeerError::Malformed(_) | PeerError::Loopback => ApiError::BadRequest(e.to_string()),
            PeerError::WrongEvent => ApiError::Unprocessable(e.to_string()),
            PeerError::Conflict(_) => ApiError::Conflict(e.to_string()),
            PeerError::Store(_) | PeerError::Transport(_) => ApiError::Internal(e.to_string()),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `GET /status`.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// This node.
    pub node_id: NodeId,
    /// The event.
    pub event_id: EventId,
    /// Gate label.
    pub gate: String,
    /// Entry or exit.
    pub direction: Direction,
    /// Zone guarded.
    pub zone: Option<u8>,
    /// Its name in the event, when the cloud named it.
    pub zone_name: Option<String>,
    /// Manifest held.
    pub manifest: ManifestInfo,
    /// Best time.
    pub time: BestTime,
    /// Records held (all nodes).
    pub records: u64,
    /// Records the cloud has not acknowledged.
    pub pending: CloudBacklog,
    /// Cloud sync state (`null` when no cloud is configured).
    pub cloud: Option<CloudStatus>,
    /// Peers.
    pub peers: Vec<PeerState>,
    /// Scan counters since start.
    pub counters: CounterSnapshot,
    /// Double admissions found (first 100).
    pub double_admissions: Vec<DoubleAdmission>,
    /// The device roster held (which devices' records this node believes).
    pub roster: RosterInfo,
    /// Records refused but kept as evidence: conflicting copies of a held
    /// scan id (a device signed two records under one id) and records of
    /// revoked devices made after revocation.
    pub flagged: Flagged,
}

/// Evidence counts and the latest pieces.
#[derive(Clone, Debug, Serialize)]
pub struct Flagged {
    /// Conflicting copies kept.
    pub conflicts: u64,
    /// Records of revoked devices refused.
    pub revoked: u64,
    /// The latest 20 pieces of evidence.
    pub latest: Vec<Evidence>,
}

async fn status(State(s): State<AppState>) -> Result<Json<Status>, ApiError> {
    let engine = s.engine.clone();
    let (manifest, records, pending, double_admissions, id, roster, flagged) =
        blocking(move || {
            let store = engine.store();
            let (conflicts, revoked) = store.evidence_counts()?;
            Ok((
                store.manifest_info()?,
                store.record_count()?,
                store.cloud_backlog()?,
                store.double_admissions(100)?,
                store.require_identity()?,
                store.roster_info()?,
                Flagged {
                    conflicts,
                    revoked,
                    latest: store.evidence(20)?,
                },
            ))
        })
        .await?;
    Ok(Json(Status {
        node_id: id.node_id,
        event_id: id.event_id,
        gate: id.gate,
        direction: id.policy.direction,
        zone: id.policy.zone,
        zone_name: id.zone_name,
        manifest,
        time: s.engine.time().now(),
        records,
        pending,
        cloud: s.cloud.as_ref().map(|c| c.status()),
        peers: s.peers.peers(),
        counters: s.engine.counters(),
        double_admissions,
        roster,
        flagged,
    }))
}

/// One row of `GET /scans/recent`.
#[derive(Clone, Debug, Serialize)]
pub struct RecentScan {
    /// `node:seq`.
    pub scan_id: String,
    /// Recording node.
    pub node_id: NodeId,
    /// Its sequence number.
    pub seq: u64,
    /// Ticket.
    pub ticket_id: TicketId,
    /// HLC.
    pub hlc: Hlc,
    /// `"admit"` or `"reject"`.
    pub decision: &'static str,
    /// Reason of a rejection.
    pub reason: Option<Reason>,
    /// Gate label.
    pub gate: String,
    /// Entry or exit.
    pub direction: Direction,
}

impl From<ScanRecord> for RecentScan {
    fn from(r: ScanRecord) -> Self {
        Self {
            scan_id: r.id.to_string(),
            node_id: r.id.node,
            seq: r.id.seq,
            ticket_id: r.ticket_id,
            hlc: r.hlc,
            decision: decision_label(r.outcome),
            reason: r.outcome.reason(),
            gate: r.gate,
            direction: r.direction,
        }
    }
}

#[derive(Deserialize)]
struct RecentQuery {
    limit: Option<usize>,
}

async fn recent(
    State(s): State<AppState>,
    q: Result<Query<RecentQuery>, QueryRejection>,
) -> Result<Json<Vec<RecentScan>>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(50).min(10_000);
    let engine = s.engine.clone();
    let records = blocking(move || Ok(engine.store().recent(limit)?)).await?;
    Ok(Json(records.into_iter().map(RecentScan::from).collect()))
}

async fn peer_sync(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let reply = s.peers.handle(body.to_vec()).await.inspect_err(|e| {
        tracing::warn!(error = %e, "peer sync message refused");
    })?;
    let mut resp = match reply {
        Some(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    let now = s.engine.time().now();
    if now.trusted
        && let Ok(v) = HeaderValue::from_str(&now.ms.to_string())
    {
        resp.headers_mut().insert(TIME_HEADER, v);
    }
    Ok(resp)
}

async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let handle = s.metrics.as_ref().ok_or(ApiError::NotFound)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ScanRequest {
    text: String,
}

async fn scan(
    State(s): State<AppState>,
    caller: Option<Extension<ConnectInfo<SocketAddr>>>,
    req: Result<Json<ScanRequest>, JsonRejection>,
) -> Result<Json<ScanReport>, ApiError> {
    if !s.scan_endpoint {
        return Err(ApiError::NotFound);
    }
    // Anyone who can post here writes durable records that sync to every
    // peer and the cloud: only this gate itself may.
    let caller = caller.map(|Extension(ConnectInfo(a))| a.ip().to_canonical());
    if !caller.is_some_and(http_guard::this_host) {
        return Err(ApiError::Forbidden(
            "POST /scan is answered only on the gate itself (127.0.0.1 or ::1); \
             run the client on the gate, or send scans through a scan source"
                .into(),
        ));
    }
    let Json(req) = req?;
    let engine = s.engine.clone();
    let report = blocking(move || {
        engine.scan_text(&req.text).map_err(|e| match e {
            EngineError::Store(e) => ApiError::from(e),
        })
    })
    .await?;
    Ok(Json(report))
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/scans/recent", get(recent))
        .route(
            "/peer/sync",
            post(peer_sync).layer(DefaultBodyLimit::max(sync_protocol::sync::MAX_ENVELOPE_LEN)),
        )
        .route("/metrics", get(metrics))
        .route("/scan", post(scan).layer(DefaultBodyLimit::max(4096)))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, with `limits`
/// (header-read and idle timeouts, a request deadline, a connection limit
/// whose reserve only this gate itself and its known peers may use, a
/// per-address cap): a flood of strangers cannot stop `/status` on the
/// gate or peer sync.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: http_guard::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let peers = state.peers.clone();
    http_guard::Server::new(limits)
        .trusting(move |ip| http_guard::this_host(ip) || peers.is_peer_address(ip))
        .serve(listener, router(state), shutdown)
        .await
}
