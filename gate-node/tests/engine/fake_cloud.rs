//! A minimal in-process cloud speaking `docs/device-api.md` (enrollment,
//! manifests and deltas, check-in sync), so the node's cloud client and sync
//! loop run against the real contract before the real cloud exists.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gate_node::fixture::EventFixture;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use sync_protocol::{CheckinLog, NodeId, ScanRecord, SyncMessage};

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const CODE: &str = "GOOD-CODE-0001";
/// What the fake cloud's clock says (unix ms), on every answer.
pub const CLOUD_TIME_MS: u64 = 1_763_000_000_000;

#[derive(Default)]
pub struct Counts {
    pub checkin_requests: AtomicUsize,
    pub full_manifests: AtomicUsize,
    pub deltas: AtomicUsize,
    /// Most records pushed in one request.
    pub max_batch: AtomicUsize,
}

pub struct Cloud {
    pub event: Mutex<EventFixture>,
    /// Deltas by base version; a version missing here answers 409.
    pub deltas: Mutex<HashMap<u64, Vec<u8>>>,
    pub log: Mutex<CheckinLog>,
    pub counts: Counts,
    pub node_id: NodeId,
}

type Shared = Arc<Cloud>;

fn timed(status: StatusCode, body: impl IntoResponse) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        "x-gatehouse-time",
        CLOUD_TIME_MS.to_string().parse().unwrap(),
    );
    r
}

fn error(status: StatusCode, code: &str) -> Response {
    timed(
        status,
        axum::Json(serde_json::json!({"error": {"code": code, "message": code}})),
    )
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn enroll(State(c): State<Shared>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request");
    };
    if req["code"] != CODE {
        return error(StatusCode::NOT_FOUND, "unknown_code");
    }
    let key = hex::decode(req["device_public_key"].as_str().unwrap_or("")).unwrap_or_default();
    let proof = hex::decode(req["proof"].as_str().unwrap_or("")).unwrap_or_default();
    let verified = <[u8; 32]>::try_from(key.as_slice())
        .ok()
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .zip(<[u8; 64]>::try_from(proof.as_slice()).ok())
        .is_some_and(|(k, sig)| {
            k.verify_strict(
                &sync_protocol::device_api::enrollment_message(CODE),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .is_ok()
        });
    if !verified {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "bad_proof");
    }
    let f = c.event.lock().unwrap();
    let b = f.bundle(1, "North 2");
    timed(
        StatusCode::CREATED,
        axum::Json(serde_json::json!({
            "node_id": c.node_id,
            "device_token": TOKEN,
            "event_id": f.event_id,
            "root_public_key": b.root_public_key,
            "key_certificates": b.key_certificates,
            "gossip_key": b.gossip_key,
            "gossip_key_version": b.gossip_key_version,
            "roster": b.roster,
            "policy": b.policy,
            "gate": "North 2",
        })),
    )
}

async fn manifest(State(c): State<Shared>, h: HeaderMap, Path(_e): Path<String>) -> Response {
    if !authorized(&h) {
        return error(StatusCode::UNAUTHORIZED, "device_revoked");
    }
    c.counts.full_manifests.fetch_add(1, Ordering::SeqCst);
    let f = c.event.lock().unwrap();
    timed(StatusCode::OK, f.manifest_bytes())
}

async fn delta(
    State(c): State<Shared>,
    h: HeaderMap,
    Path(_e): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&h) {
        return error(StatusCode::UNAUTHORIZED, "device_revoked");
    }
    let since: u64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    if since == c.event.lock().unwrap().version {
        return timed(StatusCode::NO_CONTENT, ());
    }
    match c.deltas.lock().unwrap().get(&since) {
        Some(d) => {
            c.counts.deltas.fetch_add(1, Ordering::SeqCst);
            timed(StatusCode::OK, d.clone())
        }
        None => error(StatusCode::CONFLICT, "full_manifest_required"),
    }
}

async fn roster(
    State(c): State<Shared>,
    h: HeaderMap,
    Path(_e): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&h) {
        return error(StatusCode::UNAUTHORIZED, "device_revoked");
    }
    let since: u64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let f = c.event.lock().unwrap();
    if since == f.roster_version {
        return timed(StatusCode::NO_CONTENT, ());
    }
    timed(
        StatusCode::OK,
        axum::Json(serde_json::json!({
            "version": f.roster_version,
            "roster": hex::encode(f.roster_bytes()),
            "gossip_key": {
                "version": f.roster_version,
                "key": hex::encode(f.gossip_key_at(f.roster_version)),
            },
        })),
    )
}

async fn checkins(
    State(c): State<Shared>,
    h: HeaderMap,
    Path(_e): Path<String>,
    body: Bytes,
) -> Response {
    if !authorized(&h) {
        return error(StatusCode::UNAUTHORIZED, "device_revoked");
    }
    c.counts.checkin_requests.fetch_add(1, Ordering::SeqCst);
    let Ok(msg) = SyncMessage::decode(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request");
    };
    c.counts
        .max_batch
        .fetch_max(msg.records.len(), Ordering::SeqCst);
    let mut log = c.log.lock().unwrap();
    if log.apply(msg.records).is_err() {
        return error(StatusCode::CONFLICT, "conflict");
    }
    let reply = SyncMessage {
        event_id: log.event_id(),
        have: log.summary().clone(),
        records: log.missing_for(&msg.have, 10_000),
    };
    timed(StatusCode::OK, reply.encode())
}

impl Cloud {
    pub fn new(f: EventFixture) -> Shared {
        Arc::new(Cloud {
            log: Mutex::new(CheckinLog::new(f.event_id)),
            event: Mutex::new(f),
            deltas: Mutex::new(HashMap::new()),
            counts: Counts::default(),
            node_id: NodeId::from_bytes([0x61; 16]),
        })
    }

    pub async fn serve(self: &Shared) -> SocketAddr {
        let app = Router::new()
            .route("/devices/enroll", post(enroll))
            .route("/sync/events/{event}/manifest", get(manifest))
            .route("/sync/events/{event}/manifest/delta", get(delta))
            .route("/sync/events/{event}/checkins", post(checkins))
            .route("/sync/events/{event}/roster", get(roster))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Revokes a ticket and publishes the delta from the previous version.
    pub fn refund(&self, ticket: sync_protocol::TicketId) {
        let mut f = self.event.lock().unwrap();
        let base = f.version;
        let d = f.revoke(ticket);
        self.deltas.lock().unwrap().insert(base, d);
    }

    /// Advances the manifest without publishing deltas (pruned history).
    pub fn change_without_delta(&self, entries: Vec<sync_protocol::ManifestEntry>) {
        self.event.lock().unwrap().delta(entries);
    }

    /// A scan made elsewhere (another device of the event).
    pub fn record_elsewhere(&self, record: ScanRecord) {
        self.log.lock().unwrap().insert(record).unwrap();
    }
}
