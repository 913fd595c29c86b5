//! Signing in with a staff account and enrolling this device through the
//! cloud's public REST API: `POST /auth/login`; the events to pick from
//! (`GET /staff/events` for a staff account: the events whose roster it is
//! on; `GET /events` for an organizer, its own events, or an admin); then
//! `POST /devices/staff-enroll` for the chosen gate with the account's own
//! token and the device key's proof (`gate_node::cloud::CloudClient::staff_enroll`,
//! which reads the answer exactly as a gate node's code enrollment). After
//! that the device needs no network; the staff token is kept in memory only.

use crate::error::AppError;
use crate::view::{EventChoice, SignedIn};
use gate_node::cloud::CloudClient;
use gate_node::provision::Bundle;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use sync_protocol::SecretKey;
use sync_protocol::device_api::{GateDirection, StaffEnrollRequest};

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

    /// The events this account may set a device up for: those whose staff
    /// roster it is on (a staff account), the ones it organizes (every
    /// event for an admin); not ended or cancelled.
    pub async fn events(&self) -> Result<Vec<EventChoice>, AppError> {
        let path = match self.role.as_str() {
            "admin" => "/events?limit=100".to_owned(),
            "staff" => "/staff/events?limit=100".to_owned(),
            _ => format!("/events?limit=100&organizer_id={}", self.user_id),
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

    /// Enrolls the device with key `seed` for an entry gate of `event_id`
    /// with this account (`POST /devices/staff-enroll`): the cloud allows
    /// it to staff on the event's roster, its organizer and admins. The
    /// answer's bundle carries the device token, not the cloud URL.
    pub async fn enroll_device(
        &self,
        event_id: &str,
        gate: &str,
        zone: Option<u8>,
        device_name: &str,
        seed: &[u8; 32],
    ) -> Result<Bundle, AppError> {
        let event = event_id
            .parse()
            .map_err(|_| AppError::Invalid(format!("{event_id:?} is not an event id")))?;
        let user = self.user_id.parse().map_err(|_| {
            AppError::Cloud(format!(
                "the sign-in answer's user id {:?} is not a UUID",
                self.user_id
            ))
        })?;
        let req = StaffEnrollRequest::signed(
            &SecretKey::from_seed(*seed),
            event,
            user,
            gate,
            zone,
            GateDirection::Entry,
            device_name,
        );
        let client = CloudClient::new(&self.cloud_url, None, Duration::from_secs(15))
            .map_err(|e| AppError::cloud(&self.cloud_url, e))?;
        client
            .staff_enroll(&self.token, &req)
            .await
            .map_err(|e| AppError::cloud(&self.cloud_url, e))
    }
}
