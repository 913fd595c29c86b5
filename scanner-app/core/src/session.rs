//! Signing in with a staff account and enrolling this device through the
//! cloud's public REST API: `POST /auth/login`, `GET /events` (the events
//! the account organizes, drafts included), `POST /devices/enrollment-codes`
//! for the chosen gate, then the same `POST /devices/enroll` a gate node
//! uses (`gate_node::cloud::CloudClient::enroll`). After that the device
//! needs no network; the staff token is kept in memory only.

use crate::error::AppError;
use crate::view::{EventChoice, SignedIn};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use sync_protocol::device_api::{CreateEnrollmentCode, EnrollmentCodeView, GateDirection};

/// A signed-in staff member.
#[derive(Clone)]
pub struct StaffSession {
    /// Cloud base URL.
    pub cloud_url: String,
    /// Their email.
    pub email: String,
    /// Their user id.
    pub user_id: String,
    /// Their cloud role (`organizer`, `admin`, `staff`, ...).
    pub role: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for StaffSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffSession")
            .field("cloud_url", &self.cloud_url)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Login {
    access_token: String,
    user: LoginUser,
}

#[derive(Deserialize)]
struct LoginUser {
    id: String,
    email: String,
    role: String,
}

#[derive(Deserialize)]
struct EventPage {
    items: Vec<EventItem>,
}

#[derive(Deserialize)]
struct EventItem {
    id: String,
    name: String,
    #[serde(default)]
    venue: String,
    #[serde(default)]
    starts_at: String,
    status: String,
}

fn client() -> Result<reqwest::Client, AppError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| AppError::Invalid(format!("HTTP client: {e}")))
}

fn error_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .or_else(|| body["error"]["code"].as_str())
        .unwrap_or("unexpected answer")
        .to_owned()
}

impl StaffSession {
    /// Signs in.
    pub async fn sign_in(cloud_url: &str, email: &str, password: &str) -> Result<Self, AppError> {
        let cloud_url = cloud_url.trim().trim_end_matches('/').to_owned();
        if !(cloud_url.starts_with("http://") || cloud_url.starts_with("https://")) {
            return Err(AppError::Invalid(
                "the cloud address must start with https:// (or http:// on a test network)".into(),
            ));
        }
        let http = client()?;
        let resp = http
            .post(format!("{cloud_url}/auth/login"))
            .json(&json!({"email": email.trim(), "password": password}))
            .send()
            .await
            .map_err(|e| AppError::CloudUnreachable {
                url: cloud_url.clone(),
                detail: e.to_string(),
            })?;
        let status = resp.status();
        if status.as_u16() == 401 || status.as_u16() == 422 {
            return Err(AppError::BadLogin);
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(AppError::Cloud(error_message(&body)));
        }
        let login: Login = serde_json::from_value(body)
            .map_err(|e| AppError::Cloud(format!("unexpected sign-in answer: {e}")))?;
        Ok(Self {
            cloud_url,
            email: login.user.email,
            user_id: login.user.id,
            role: login.user.role,
            token: login.access_token,
            http,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, AppError> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.cloud_url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.map_err(|e| AppError::CloudUnreachable {
            url: self.cloud_url.clone(),
            detail: e.to_string(),
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(AppError::Cloud(error_message(&body)))
        }
    }

    /// The events this account may set a device up for: the ones it
    /// organizes (every event for an admin), not ended or cancelled.
    pub async fn events(&self) -> Result<Vec<EventChoice>, AppError> {
        let path = if self.role == "admin" {
            "/events?limit=100".to_owned()
        } else {
            format!("/events?limit=100&organizer_id={}", self.user_id)
        };
        let page: EventPage =
            serde_json::from_value(self.call(reqwest::Method::GET, &path, None).await?)
                .map_err(|e| AppError::Cloud(format!("unexpected event list: {e}")))?;
        Ok(page
            .items
            .into_iter()
            .filter(|e| e.status != "ended" && e.status != "cancelled")
            .map(|e| EventChoice {
                id: e.id,
                name: e.name,
                venue: e.venue,
                starts_at: e.starts_at,
                status: e.status,
            })
            .collect())
    }

    /// What the sign-in screen shows next.
    pub async fn signed_in(&self) -> Result<SignedIn, AppError> {
        Ok(SignedIn {
            email: self.email.clone(),
            role: self.role.clone(),
            events: self.events().await?,
        })
    }

    /// A one-time enrollment code for an entry gate of `event_id`.
    pub async fn enrollment_code(
        &self,
        event_id: &str,
        gate: &str,
        zone: Option<u8>,
    ) -> Result<String, AppError> {
        let req = CreateEnrollmentCode {
            event_id: event_id
                .parse()
                .map_err(|_| AppError::Invalid(format!("{event_id:?} is not an event id")))?,
            gate: gate.to_owned(),
            zone,
            zone_name: None,
            direction: GateDirection::Entry,
            ttl_secs: Some(600),
            grace_secs: None,
            require_listed: None,
        };
        let body = serde_json::to_value(&req).map_err(|e| AppError::Cloud(e.to_string()))?;
        let v = self
            .call(
                reqwest::Method::POST,
                "/devices/enrollment-codes",
                Some(body),
            )
            .await?;
        serde_json::from_value::<EnrollmentCodeView>(v)
            .map(|answer| answer.code)
            .map_err(|e| AppError::Cloud(format!("the enrollment-code answer is not valid: {e}")))
    }
}
