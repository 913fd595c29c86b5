//! The real `cloud` binary on a fresh SQLite database, and the REST calls
//! the scenarios make (as an admin-made organizer, like a real one).

use crate::binary;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ADMIN_EMAIL: &str = "admin@gatehouse.test";
const ADMIN_PASSWORD: &str = "admin-password-1";
const PASSWORD: &str = "correct horse battery";

/// A running cloud process. Its data directory (database, keys) outlives
/// restarts.
#[derive(Debug)]
pub struct Cloud {
    /// Where it listens now.
    pub addr: SocketAddr,
    /// Data directory.
    pub dir: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
    /// The organizer's access token, once [`Cloud::organizer`] ran.
    pub token: String,
    /// Extra environment (configuration) of every start.
    env: Vec<(String, String)>,
}

fn spawn(dir: &Path, env: &[(String, String)]) -> (Child, SocketAddr) {
    let log_path = dir.join("cloud.log");
    let mut child = Command::new(binary("cloud"))
        .arg("serve")
        .env("CLOUD_DATA_DIR", dir)
        .env("CLOUD_SERVER__BIND", "127.0.0.1:0")
        .env("CLOUD_AUTH__BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("CLOUD_AUTH__BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CLOUD_RATE_LIMIT__AUTH_PER_MINUTE", "10000")
        .env("CLOUD_RATE_LIMIT__GLOBAL_PER_MINUTE", "100000")
        .env("CLOUD_RATE_LIMIT__TICKETS_PER_MINUTE", "10000")
        .env("CLOUD_LOG__FORMAT", "json")
        .env("RUST_LOG", "info,sqlx=warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the cloud binary");
    let stdout = child.stdout.take().expect("cloud stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Drain the log into a file (a full pipe would stall the cloud), and
    // report the listening address.
    std::thread::spawn(move || {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .ok();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["fields"]["message"] == "cloud listening"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the cloud logs `cloud listening` with its address")
        .parse()
        .expect("a socket address");
    (child, addr)
}

impl Cloud {
    /// Starts a cloud on a fresh SQLite database in `dir`.
    pub async fn start(dir: &Path) -> Cloud {
        Self::start_with(dir, Vec::new()).await
    }

    /// Starts a cloud in `dir` with extra configuration in `env` (for
    /// example `CLOUD_DATABASE__URL` for PostgreSQL).
    pub async fn start_with(dir: &Path, env: Vec<(String, String)>) -> Cloud {
        let (child, addr) = spawn(dir, &env);
        let cloud = Cloud {
            addr,
            dir: dir.to_owned(),
            child: Some(child),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            token: String::new(),
            env,
        };
        cloud.wait_ready().await;
        cloud
    }

    async fn wait_ready(&self) {
        crate::wait_until(Duration::from_secs(30), "the cloud's /readyz", || async {
            self.http
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// `kill -9`: the process dies mid-whatever.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data (a new port).
    pub async fn restart(&mut self) {
        self.kill();
        let (child, addr) = spawn(&self.dir, &self.env);
        self.child = Some(child);
        self.addr = addr;
        self.wait_ready().await;
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A JSON call with the organizer's token; status and body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// A JSON call with `token` (none if empty); status and body.
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("cloud request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn expect(&self, method: reqwest::Method, path: &str, body: Value, want: u16) -> Value {
        let (st, v) = self.call(method, path, Some(body)).await;
        assert_eq!(st, want, "{path}: {v}");
        v
    }

    /// Registers an organizer (role granted by the bootstrap admin) and
    /// signs in as them.
    pub async fn organizer(&mut self) {
        let post = reqwest::Method::POST;
        let admin = self
            .expect(
                post.clone(),
                "/auth/login",
                json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
                200,
            )
            .await;
        let user = self
            .expect(
                post.clone(),
                "/auth/register",
                json!({"email": "org@gatehouse.test", "password": PASSWORD, "display_name": "Org"}),
                201,
            )
            .await;
        self.token = admin["access_token"].as_str().expect("admin token").into();
        let uid = user["user"]["id"].as_str().expect("user id").to_string();
        self.expect(
            reqwest::Method::PATCH,
            &format!("/users/{uid}/role"),
            json!({"role": "organizer"}),
            200,
        )
        .await;
        let org = self
            .expect(
                post,
                "/auth/login",
                json!({"email": "org@gatehouse.test", "password": PASSWORD}),
                200,
            )
            .await;
        self.token = org["access_token"]
            .as_str()
            .expect("organizer token")
            .into();
    }

    /// Registers `email` (password [`PASSWORD`]) as a door-staff account
    /// (role granted by the bootstrap admin) and puts it on `event`'s staff
    /// roster by email, as the organizer.
    pub async fn staff(&self, event: &str, email: &str) {
        let post = reqwest::Method::POST;
        let (st, admin) = self
            .call_as(
                "",
                post.clone(),
                "/auth/login",
                Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
            )
            .await;
        assert_eq!(st, 200, "admin login: {admin}");
        let (st, user) = self
            .call_as(
                "",
                post,
                "/auth/register",
                Some(json!({"email": email, "password": PASSWORD, "display_name": "Door"})),
            )
            .await;
        assert_eq!(st, 201, "register {email}: {user}");
        let uid = user["user"]["id"].as_str().expect("user id");
        let (st, v) = self
            .call_as(
                admin["access_token"].as_str().expect("admin token"),
                reqwest::Method::PATCH,
                &format!("/users/{uid}/role"),
                Some(json!({"role": "staff"})),
            )
            .await;
        assert_eq!(st, 200, "grant staff: {v}");
        self.expect(
            reqwest::Method::POST,
            &format!("/events/{event}/staff"),
            json!({"email": email}),
            201,
        )
        .await;
    }

    /// An active event with one general-admission tier; its id.
    pub async fn event(&self) -> String {
        let e = self
            .expect(
                reqwest::Method::POST,
                "/events",
                json!({"name": "Harbour Lights", "venue": "Pier 4", "currency": "EUR",
                       "starts_at": "2031-06-01T18:00:00Z", "ends_at": "2031-06-01T23:30:00Z",
                       "tiers": [{"tier": 1, "name": "GA", "price_minor": 2500, "capacity": 10000}]}),
                201,
            )
            .await;
        let id = e["id"].as_str().expect("event id").to_string();
        self.expect(
            reqwest::Method::PATCH,
            &format!("/events/{id}/status"),
            json!({"status": "active"}),
            200,
        )
        .await;
        id
    }

    /// A one-time enrollment code for a gate of the event.
    pub async fn enrollment_code(&self, event: &str, gate: &str, require_listed: bool) -> String {
        let v = self
            .expect(
                reqwest::Method::POST,
                "/devices/enrollment-codes",
                json!({"event_id": event, "gate": gate, "direction": "entry", "require_listed": require_listed}),
                201,
            )
            .await;
        v["code"].as_str().expect("code").to_string()
    }

    /// A box-office sale of `n` tickets: `(id, QR text)` each.
    pub async fn sell(&self, event: &str, n: u32) -> Vec<(String, String)> {
        let sale = self
            .expect(
                reqwest::Method::POST,
                &format!("/events/{event}/ticket-sale"),
                json!({"tier": 1, "quantity": n, "holder_name": "Jensen", "payment_method": "cash"}),
                201,
            )
            .await;
        sale["tickets"]
            .as_array()
            .expect("tickets")
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().expect("id").to_string(),
                    t["credential"].as_str().expect("credential").to_string(),
                )
            })
            .collect()
    }

    /// Registers a customer: `(access token, user id)`.
    pub async fn customer(&self, email: &str) -> (String, String) {
        let (st, v) = self
            .call_as(
                "",
                reqwest::Method::POST,
                "/auth/register",
                Some(json!({"email": email, "password": PASSWORD, "display_name": "Buyer"})),
            )
            .await;
        assert_eq!(st, 201, "register {email}: {v}");
        (
            v["access_token"].as_str().expect("token").into(),
            v["user"]["id"].as_str().expect("user id").into(),
        )
    }

    /// An online order of one ticket by `buyer`, paid by the manual method
    /// (the organizer confirms it): `(order id, ticket id)`.
    pub async fn buy_online(&self, event: &str, buyer: &str) -> (String, String) {
        let (st, order) = self
            .call_as(
                buyer,
                reqwest::Method::POST,
                "/orders",
                Some(json!({"event_id": event, "items": [{"tier": 1, "quantity": 1}]})),
            )
            .await;
        assert_eq!(st, 201, "order: {order}");
        let oid = order["id"].as_str().expect("order id").to_string();
        let paid = self
            .expect(
                reqwest::Method::PUT,
                &format!("/orders/{oid}/status"),
                json!({"status": "paid"}),
                200,
            )
            .await;
        let tid = paid["ticket_ids"][0]
            .as_str()
            .expect("a ticket")
            .to_string();
        (oid, tid)
    }

    /// The QR text of a ticket, as its holder sees it.
    pub async fn credential(&self, holder: &str, ticket: &str) -> String {
        let (st, t) = self
            .call_as(
                holder,
                reqwest::Method::GET,
                &format!("/tickets/{ticket}"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{t}");
        t["credential"].as_str().expect("credential").to_string()
    }

    /// Transfers `ticket` from its holder to another user.
    pub async fn transfer(&self, holder: &str, ticket: &str, to_user: &str) {
        let (st, v) = self
            .call_as(
                holder,
                reqwest::Method::POST,
                &format!("/tickets/{ticket}/transfer"),
                Some(json!({"to_user_id": to_user})),
            )
            .await;
        assert!(st == 200 || st == 201, "transfer: {st} {v}");
    }

    /// Refunds a paid order (the organizer, manual method).
    pub async fn refund_order(&self, order: &str) {
        self.expect(
            reqwest::Method::PUT,
            &format!("/orders/{order}/status"),
            json!({"status": "refunded"}),
            200,
        )
        .await;
    }

    /// Refunds a ticket (revokes its credential in the next delta).
    pub async fn refund(&self, ticket: &str) {
        self.expect(
            reqwest::Method::PATCH,
            &format!("/tickets/{ticket}/status"),
            json!({"status": "refunded"}),
            200,
        )
        .await;
    }

    /// Revokes a device (its node id) as the organizer.
    pub async fn revoke_device(&self, node: &str) {
        let (st, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/devices/{node}/revoke"),
                None,
            )
            .await;
        assert_eq!(st, 200, "revoke {node}: {v}");
    }

    /// `(node id, name)` of the event's devices.
    pub async fn devices(&self, event: &str) -> Vec<(String, String)> {
        let (st, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/devices?event_id={event}"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let rows = v
            .as_array()
            .or_else(|| v["items"].as_array())
            .cloned()
            .unwrap_or_default();
        rows.iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap_or_default().to_string(),
                    d["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The ticket's QR code as the cloud serves it (`GET /tickets/{id}/qr`,
    /// a PNG), read with the organizer's token.
    pub async fn qr_png(&self, ticket: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(self.url(&format!("/tickets/{ticket}/qr")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("cloud request");
        assert_eq!(resp.status().as_u16(), 200, "GET /tickets/{ticket}/qr");
        assert_eq!(
            resp.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("image/png")
        );
        resp.bytes().await.expect("the QR image").to_vec()
    }

    /// Every scan the cloud holds for the event (all pages), in HLC order.
    pub async fn scans(&self, event: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/checkin/event/{event}/check-ins?limit=100&cursor={c}"),
                None => format!("/checkin/event/{event}/check-ins?limit=100"),
            };
            let (st, v) = self.call(reqwest::Method::GET, &path, None).await;
            assert_eq!(st, 200, "{v}");
            out.extend(v["items"].as_array().cloned().unwrap_or_default());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// The event's check-in stats.
    pub async fn stats(&self, event: &str) -> Value {
        let (st, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/checkin/event/{event}/stats"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("cloud.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last cloud log lines ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
