//! The cloud client, to the contract in `docs/device-api.md`: enrollment
//! (device ed25519 key and proof), full manifests and deltas, and batched
//! check-in sync. Every call sends the device token as a bearer token and
//! feeds the cloud's `X-Gatehouse-Time` to the time source.
//!
//! Every answer is parsed defensively: hex of the wrong length, unknown
//! enums or bodies that do not decode are [`CloudError::BadResponse`].

use crate::provision::Bundle;
use crate::time::{TimeAuthority, TimeSource};
use std::sync::Arc;
use std::time::Duration;
use sync_protocol::device_api::{
    EnrollRequest, EnrollResponse, ErrorBody, ErrorDetail, StaffEnrollRequest,
};
use sync_protocol::{EventId, SecretKey, SyncMessage};

pub use sync_protocol::device_api::{GATE_STATUS_HEADER, TIME_HEADER};
/// Longest body accepted from the cloud (a manifest of 4M entries fits).
const MAX_BODY: usize = 256 << 20;

/// A cloud call failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// No answer (DNS, connect, timeout, TLS).
    #[error("cloud unreachable: {0}")]
    Unreachable(String),
    /// The device token was refused (e.g. `device_revoked`).
    #[error("cloud refused the device token ({code})")]
    Unauthorized {
        /// The error code in the body.
        code: String,
    },
    /// An error answer.
    #[error("cloud answered HTTP {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Message.
        message: String,
    },
    /// An answer that does not follow the contract.
    #[error("cloud sent an invalid answer: {0}")]
    BadResponse(String),
    /// The cloud URL given is not an http(s) URL.
    #[error("{0}")]
    InvalidUrl(String),
}

impl CloudError {
    /// The code of an API error, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Api { code, .. } | CloudError::Unauthorized { code } => Some(code),
            _ => None,
        }
    }
}

/// The device's public key and its enrollment proof, both hex: an ed25519
/// signature over `"gatehouse-enroll:" + code`
/// ([`sync_protocol::device_api::sign_enrollment`]).
pub fn enrollment_proof(device_seed: &[u8; 32], code: &str) -> (String, String) {
    let req = EnrollRequest::signed(&SecretKey::from_seed(*device_seed), code, "");
    (req.device_public_key, req.proof)
}

/// A roster answer: the signed roster (full or delta) and the gossip key of
/// its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterFetch {
    /// Signed roster bytes.
    pub roster: Vec<u8>,
    /// `(roster version, gossip key)`.
    pub gossip_key: (u64, [u8; 32]),
}

/// What a delta request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaFetch {
    /// `204`: the node is current; the event's key retirements.
    UpToDate(Vec<Vec<u8>>),
    /// A signed delta, and the event's key retirements.
    Delta(Vec<u8>, Vec<Vec<u8>>),
    /// `409 full_manifest_required`.
    FullRequired,
}

/// A full signed manifest and the event's key retirements.
#[derive(Debug, Clone)]
pub struct ManifestFetch {
    /// The signed manifest.
    pub bytes: Vec<u8>,
    /// Root-signed `KeyRetirement`s (`X-Key-Retirements`), to apply first.
    pub retirements: Vec<Vec<u8>>,
}

/// Most retirements one answer may carry.
const MAX_RETIREMENTS: usize = 64;

/// The `X-Key-Retirements` header: comma-separated hex of 107-byte
/// retirements (absent: none). Verified later against the root; here only
/// its shape is checked.
pub fn retirements(headers: &reqwest::header::HeaderMap) -> Result<Vec<Vec<u8>>, CloudError> {
    let Some(v) = headers.get("x-key-retirements") else {
        return Ok(Vec::new());
    };
    let bad = |why: &str| CloudError::BadResponse(format!("X-Key-Retirements: {why}"));
    let text = v.to_str().map_err(|_| bad("not text"))?;
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() > MAX_RETIREMENTS {
        return Err(bad("too many"));
    }
    parts
        .into_iter()
        .map(|p| {
            hex::decode(p)
                .ok()
                .filter(|b| b.len() == sync_protocol::keys::RETIREMENT_LEN)
                .ok_or_else(|| bad("not hex of a 107-byte retirement"))
        })
        .collect()
}

/// An HTTP client for one cloud.
#[derive(Debug, Clone)]
pub struct CloudClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// For the push stream only: no total timeout (the stream stays open),
    /// and a fresh connection per stream, never one left by another call.
    push_http: reqwest::Client,
    time: Option<Arc<TimeSource>>,
}

impl CloudClient {
    /// A client for `base` (e.g. `https://cloud.example`).
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<Self, CloudError> {
        check_base_url(base)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| CloudError::Unreachable(e.to_string()))?;
        let push_http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .tcp_keepalive(Duration::from_secs(15))
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| CloudError::Unreachable(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
            push_http,
            time: None,
        })
    }

    /// The base URL (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Feeds the cloud's clock to `time` on every answer.
    pub fn with_time(mut self, time: Arc<TimeSource>) -> Self {
        self.time = Some(time);
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// `GET /sync/events/{id}/push` on the push client: the open stream
    /// (read it with [`crate::cloud_push::SseParser`]).
    pub async fn push(&self, event: &EventId) -> Result<reqwest::Response, CloudError> {
        let url = format!("{}/sync/events/{event}/push", self.base);
        let mut rb = self
            .push_http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        self.send(rb).await
    }

    /// Sends, reads the time header and turns error statuses into errors.
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, CloudError> {
        let resp = rb
            .send()
            .await
            .map_err(|e| CloudError::Unreachable(e.to_string()))?;
        if let (Some(time), Some(ms)) = (
            &self.time,
            resp.headers()
                .get(TIME_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok()),
        ) {
            time.observe(ms, TimeAuthority::Cloud);
        }
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or(ErrorDetail {
                code: "unknown".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        if status.as_u16() == 401 {
            return Err(CloudError::Unauthorized { code: detail.code });
        }
        Err(CloudError::Api {
            status: status.as_u16(),
            code: detail.code,
            message: detail.message,
        })
    }

    async fn body(resp: reqwest::Response) -> Result<Vec<u8>, CloudError> {
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(CloudError::BadResponse("body too large".into()));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CloudError::Unreachable(e.to_string()))?;
        if bytes.len() > MAX_BODY {
            return Err(CloudError::BadResponse("body too large".into()));
        }
        Ok(bytes.to_vec())
    }

    /// `POST /devices/enroll` with a fresh device key. The answer has the
    /// fields of a provisioning [`Bundle`] and always a device token; the
    /// device seed, the manifest and the cloud URL are not the cloud's to
    /// set (the caller has the seed and the URL, the manifest is fetched
    /// next), whatever the answer says.
    pub async fn enroll(
        &self,
        code: &str,
        name: &str,
        device_seed: &[u8; 32],
    ) -> Result<Bundle, CloudError> {
        let req = EnrollRequest::signed(&SecretKey::from_seed(*device_seed), code, name);
        let resp = self
            .send(
                self.request(reqwest::Method::POST, "/devices/enroll")
                    .json(&req),
            )
            .await?;
        Self::enrolled(resp).await
    }

    /// `POST /devices/staff-enroll`: a staff member on the event's roster
    /// enrolls this device with their own access token (`user_token`, not
    /// a device token) and a request signed by the device key
    /// ([`StaffEnrollRequest::signed`]). The answer is read exactly as
    /// [`Self::enroll`]'s.
    pub async fn staff_enroll(
        &self,
        user_token: &str,
        req: &StaffEnrollRequest,
    ) -> Result<Bundle, CloudError> {
        let resp = self
            .send(
                self.request(reqwest::Method::POST, "/devices/staff-enroll")
                    .bearer_auth(user_token)
                    .json(req),
            )
            .await?;
        Self::enrolled(resp).await
    }

    /// The bundle an enrollment answer (either path) hands the device.
    async fn enrolled(resp: reqwest::Response) -> Result<Bundle, CloudError> {
        let bytes = Self::body(resp).await?;
        let answer: EnrollResponse = serde_json::from_slice(&bytes)
            .map_err(|e| CloudError::BadResponse(format!("enrollment answer: {e}")))?;
        Ok(Bundle {
            node_id: answer.node_id,
            event_id: answer.event_id,
            root_public_key: answer.root_public_key,
            key_certificates: answer.key_certificates,
            gossip_key: answer.gossip_key,
            gossip_key_version: answer.gossip_key_version,
            roster: Some(answer.roster),
            zone_name: answer.policy.zone_name.clone(),
            policy: answer.policy.into(),
            gate: answer.gate,
            device_seed: None,
            device_token: Some(answer.device_token),
            cloud_url: None,
            manifest: None,
        })
    }

    /// `GET /sync/events/{id}/manifest`: the full signed manifest.
    pub async fn manifest(&self, event: &EventId) -> Result<ManifestFetch, CloudError> {
        let path = format!("/sync/events/{event}/manifest");
        let resp = self.send(self.request(reqwest::Method::GET, &path)).await?;
        let retirements = retirements(resp.headers())?;
        Ok(ManifestFetch {
            bytes: Self::body(resp).await?,
            retirements,
        })
    }

    /// `GET /sync/events/{id}/manifest/delta?since=V`.
    pub async fn delta(&self, event: &EventId, since: u64) -> Result<DeltaFetch, CloudError> {
        let path = format!("/sync/events/{event}/manifest/delta?since={since}");
        match self.send(self.request(reqwest::Method::GET, &path)).await {
            Ok(resp) if resp.status().as_u16() == 204 => {
                Ok(DeltaFetch::UpToDate(retirements(resp.headers())?))
            }
            Ok(resp) => {
                let r = retirements(resp.headers())?;
                Ok(DeltaFetch::Delta(Self::body(resp).await?, r))
            }
            Err(CloudError::Api {
                status: 409, code, ..
            }) if code == "full_manifest_required" => Ok(DeltaFetch::FullRequired),
            Err(e) => Err(e),
        }
    }

    /// `GET /sync/events/{id}/roster?since=V`: `None` when the node is
    /// current, else the signed roster (a delta from `V` when the cloud can,
    /// else full) and the gossip key of its version.
    pub async fn roster(
        &self,
        event: &EventId,
        since: u64,
    ) -> Result<Option<RosterFetch>, CloudError> {
        let path = format!("/sync/events/{event}/roster?since={since}");
        let resp = self.send(self.request(reqwest::Method::GET, &path)).await?;
        if resp.status().as_u16() == 204 {
            return Ok(None);
        }
        let bytes = Self::body(resp).await?;
        let answer: sync_protocol::device_api::RosterView =
            serde_json::from_slice(&bytes).map_err(|e| CloudError::BadResponse(e.to_string()))?;
        let bad = |what: &str| CloudError::BadResponse(format!("roster answer: {what}"));
        let roster = hex::decode(answer.roster.trim()).map_err(|_| bad("roster is not hex"))?;
        let key = hex::decode(answer.gossip_key.key.trim())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| bad("gossip key is not 64 hex digits"))?;
        Ok(Some(RosterFetch {
            roster,
            gossip_key: (answer.gossip_key.version, key),
        }))
    }

    /// `POST /sync/events/{id}/checkins`: one batch up, the cloud's answer down.
    pub async fn sync_checkins(
        &self,
        event: &EventId,
        msg: &SyncMessage,
    ) -> Result<SyncMessage, CloudError> {
        self.sync_checkins_reporting(event, msg, None).await
    }

    /// [`Self::sync_checkins`], with the gate's state for the cloud's fleet
    /// view in the optional `X-Gate-Status` header (a JSON object; clouds
    /// that do not know it ignore it).
    pub async fn sync_checkins_reporting(
        &self,
        event: &EventId,
        msg: &SyncMessage,
        status: Option<&str>,
    ) -> Result<SyncMessage, CloudError> {
        let path = format!("/sync/events/{event}/checkins");
        let mut rb = self
            .request(reqwest::Method::POST, &path)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(msg.encode());
        if let Some(s) = status {
            rb = rb.header(GATE_STATUS_HEADER, s);
        }
        let bytes = Self::body(self.send(rb).await?).await?;
        let reply =
            SyncMessage::decode(&bytes).map_err(|e| CloudError::BadResponse(e.to_string()))?;
        if reply.event_id != *event {
            return Err(CloudError::BadResponse(
                "sync answer for another event".into(),
            ));
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::hex_array;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn enrollment_proof_verifies_under_the_device_key() {
        let (public, proof) = enrollment_proof(&[4; 32], "ABCD-EFGH-JKLM");
        let key = VerifyingKey::from_bytes(&hex_array::<32>("k", &public).unwrap()).unwrap();
        let sig = Signature::from_bytes(&hex_array::<64>("p", &proof).unwrap());
        // The documented message, spelled out: the contract other clients follow.
        key.verify(b"gatehouse-enroll:ABCD-EFGH-JKLM", &sig)
            .unwrap();
        assert!(key.verify(b"gatehouse-enroll:OTHER", &sig).is_err());
    }

    /// A cloud at `127.0.0.1:0` answering every enrollment with `answer`.
    async fn cloud_answering(answer: serde_json::Value) -> CloudClient {
        let app = axum::Router::new().route(
            "/devices/enroll",
            axum::routing::post(move || async move { axum::Json(answer) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        CloudClient::new(&format!("http://{addr}"), None, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn an_enrollment_answer_cannot_set_the_seed_manifest_or_url_and_must_hold_a_token() {
        let f = crate::fixture::EventFixture::new(7, 2);
        let mut sent = serde_json::to_value(f.bundle(1, "North")).unwrap();
        sent["device_token"] = "ab".repeat(32).into();
        sent["cloud_url"] = "http://elsewhere.invalid".into();
        let got = cloud_answering(sent.clone())
            .await
            .enroll("CODE", "gate", &[4; 32])
            .await
            .unwrap();
        assert_eq!(
            (got.device_seed, got.manifest, got.cloud_url),
            (None, None, None),
            "the device key stays the one drawn on the device; the manifest and URL come from elsewhere"
        );
        assert_eq!(got.device_token.as_deref(), Some("ab".repeat(32).as_str()));

        sent.as_object_mut().unwrap().remove("device_token");
        let err = cloud_answering(sent)
            .await
            .enroll("CODE", "gate", &[4; 32])
            .await
            .unwrap_err();
        assert!(
            matches!(err, CloudError::BadResponse(_)),
            "an enrollment without a token is no enrollment: {err}"
        );
    }
}

/// Refuses a cloud URL without an http(s) scheme with a message that says
/// how to write it (`127.0.0.1:3902` would otherwise fail at the first
/// request as a bare "builder error").
pub fn check_base_url(base: &str) -> Result<(), CloudError> {
    let fix = || {
        CloudError::InvalidUrl(format!(
            "the cloud URL {base:?} needs a scheme: write it as http://{base} (or https://{base})"
        ))
    };
    match reqwest::Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(url) if matches!(url.scheme(), "http" | "https") => Err(CloudError::InvalidUrl(
            format!("the cloud URL {base:?} has no host, e.g. http://127.0.0.1:3000"),
        )),
        Ok(_) | Err(_) if !base.contains("://") => Err(fix()),
        Ok(url) => Err(CloudError::InvalidUrl(format!(
            "the cloud URL {base:?} uses {}: only http:// and https:// are spoken",
            url.scheme()
        ))),
        Err(e) => Err(CloudError::InvalidUrl(format!(
            "the cloud URL {base:?} is not a URL ({e}), e.g. http://127.0.0.1:3000"
        ))),
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn a_cloud_url_without_a_scheme_says_how_to_write_it() {
        for bad in ["127.0.0.1:3902", "localhost:3902", "cloud.example.com"] {
            let e = CloudClient::new(bad, None, Duration::from_secs(1))
                .expect_err("no scheme")
                .to_string();
            assert!(e.contains("needs a scheme"), "{bad}: {e}");
            assert!(e.contains(&format!("http://{bad}")), "{bad}: {e}");
        }
        assert!(CloudClient::new("ftp://x", None, Duration::from_secs(1)).is_err());
        assert!(CloudClient::new("http://127.0.0.1:3902/", None, Duration::from_secs(1)).is_ok());
    }
}
