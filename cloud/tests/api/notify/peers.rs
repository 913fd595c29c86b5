//! Real peers for the notification tests: an SMTP server (`aiosmtpd` from
//! PyPI, writing each message to a Maildir we read back), a Twilio-like
//! Messages receiver, and webhook receivers that answer 2xx, 5xx with
//! `Retry-After`, 410, 3xx, hang past the timeout, or close the connection.
//! aiosmtpd is required: the tests fail when it cannot start
//! (`scripts/setup` installs it).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mail_parser::{MessageParser, MimeHeaders};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A real SMTP server on loopback.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
    _tmp: tempfile::TempDir,
}

/// A message as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: Vec<u8>,
}

/// A MIME part that is not a text body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: Option<String>,
    pub content_type: String,
    pub content_id: Option<String>,
    pub bytes: Vec<u8>,
}

impl Mail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .expect("a parseable message")
    }
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }
    pub fn to(&self) -> String {
        let m = self.parsed();
        m.to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string()
    }
    /// Envelope recipients, as the server saw them (aiosmtpd's X-RcptTo).
    pub fn rcpt_to(&self) -> String {
        let m = self.parsed();
        m.header("X-RcptTo")
            .and_then(|h| h.as_text())
            .unwrap_or_default()
            .to_string()
    }
    pub fn message_id(&self) -> String {
        self.parsed().message_id().unwrap_or_default().to_string()
    }
    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|c| c.to_string())
            .unwrap_or_default()
    }
    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|c| c.to_string())
            .unwrap_or_default()
    }
    pub fn parts(&self) -> Vec<Part> {
        let m = self.parsed();
        m.attachments()
            .map(|p| Part {
                name: p.attachment_name().map(str::to_string),
                content_type: p
                    .content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                    .unwrap_or_default(),
                content_id: p.content_id().map(str::to_string),
                bytes: p.contents().to_vec(),
            })
            .collect()
    }
}

/// Decodes the one QR code in a PNG (rqrr).
pub fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("a decodable QR code").1
}

impl SmtpSink {
    pub async fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("maildir");
        for _ in 0..5 {
            let port = free_port();
            let mut child = tokio::process::Command::new("python3")
                .args([
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    &format!("127.0.0.1:{port}"),
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                ])
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("python3 with aiosmtpd is required (scripts/setup installs it): {e}")
                });
            for _ in 0..200 {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("aiosmtpd exited ({status}); is it installed? run scripts/setup");
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Self {
                        port,
                        dir,
                        _child: child,
                        _tmp: tmp,
                    };
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let _ = child.kill().await;
        }
        panic!("aiosmtpd did not start");
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Mail> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|raw| Mail { raw })
            .collect()
    }

    /// Waits (up to 30 s) for a message matching `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Mail) -> bool) -> Mail {
        for _ in 0..600 {
            if let Some(m) = self.messages().into_iter().find(|m| pred(m)) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let subjects: Vec<String> = self
            .messages()
            .iter()
            .map(|m| format!("{} -> {}", m.subject(), m.to()))
            .collect();
        panic!("no email {what} arrived in 30 s; received: {subjects:?}");
    }
}

/// A request a receiver recorded.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    pub at: std::time::Instant,
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Received>>>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    delay_ms: Arc<Mutex<u64>>,
}

/// Webhook receivers on one loopback port, one behaviour per path:
/// `/ok`, `/flaky` (503 + `Retry-After: 1` twice, then 200), `/gone`
/// (410), `/redirect` (302), `/slow` (answers after 5 s), `/error` (500).
/// `close_addr` is a listener that accepts and closes at once.
pub struct WebhookSink {
    pub addr: SocketAddr,
    pub close_addr: SocketAddr,
    rec: Recorder,
    _server: tokio::task::JoinHandle<()>,
    _closer: tokio::task::JoinHandle<()>,
}

async fn hook(
    State(r): State<Recorder>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let n = {
        let mut c = r.counts.lock().unwrap();
        let n = c.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    r.seen.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
        at: std::time::Instant::now(),
    });
    let delay = *r.delay_ms.lock().unwrap();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match path.as_str() {
        "flaky" if n <= 2 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "busy",
        )
            .into_response(),
        "gone" => (StatusCode::GONE, "no longer here").into_response(),
        "redirect" => (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:9/elsewhere")],
        )
            .into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        "error" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

impl WebhookSink {
    pub async fn start() -> Self {
        let rec = Recorder::default();
        let app = axum::Router::new()
            .route("/{path}", post(hook))
            .with_state(rec.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        let cl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let close_addr = cl.local_addr().unwrap();
        let closer = tokio::spawn(async move {
            while let Ok((s, _)) = cl.accept().await {
                drop(s);
            }
        });
        Self {
            addr,
            close_addr,
            rec,
            _server: server,
            _closer: closer,
        }
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
    /// Every answer waits this long first (kill-mid-delivery tests).
    pub fn set_delay(&self, ms: u64) {
        *self.rec.delay_ms.lock().unwrap() = ms;
    }
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.rec
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        for _ in 0..600 {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{path}: expected {n} deliveries in 30 s, got {}",
            self.received(path).len()
        );
    }
}

/// What a Twilio-like receiver saw.
#[derive(Debug, Clone)]
pub struct SmsSeen {
    pub to: String,
    pub from: String,
    pub body: String,
}

#[derive(Clone)]
struct Twilio {
    sid: String,
    token: String,
    seen: Arc<Mutex<Vec<SmsSeen>>>,
    calls: Arc<Mutex<u32>>,
}

fn e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn messages(
    State(t): State<Twilio>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    use base64::Engine as _;
    let calls = {
        let mut c = t.calls.lock().unwrap();
        *c += 1;
        *c
    };
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", t.sid, t.token))
    );
    if sid != t.sid
        || headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"code": 20003, "message": "Authenticate"})),
        )
            .into_response();
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        return (StatusCode::BAD_REQUEST, "form expected").into_response();
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let (Some(to), Some(from), Some(text)) = (form.get("To"), form.get("From"), form.get("Body"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                serde_json::json!({"code": 21604, "message": "To, From and Body are required"}),
            ),
        )
            .into_response();
    };
    if !e164(to) || !e164(from) || text.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"code": 21211, "message": "invalid number"})),
        )
            .into_response();
    }
    // Twilio throttles: the first accepted request of the run is told to wait.
    if calls == 1 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response();
    }
    t.seen.lock().unwrap().push(SmsSeen {
        to: to.clone(),
        from: from.clone(),
        body: text.clone(),
    });
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"sid": format!("SM{calls:032}"), "status": "queued"})),
    )
        .into_response()
}

/// A Twilio Messages API look-alike that checks requests as Twilio does.
pub struct TwilioSink {
    pub base: String,
    seen: Arc<Mutex<Vec<SmsSeen>>>,
    _server: tokio::task::JoinHandle<()>,
}

pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "twilio-test-token";
pub const TWILIO_FROM: &str = "+14155550100";

impl TwilioSink {
    pub async fn start() -> Self {
        let t = Twilio {
            sid: TWILIO_SID.into(),
            token: TWILIO_TOKEN.into(),
            seen: Default::default(),
            calls: Default::default(),
        };
        let seen = t.seen.clone();
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(messages))
            .with_state(t);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        Self {
            base,
            seen,
            _server: server,
        }
    }
    pub fn seen(&self) -> Vec<SmsSeen> {
        self.seen.lock().unwrap().clone()
    }
    pub async fn wait_for(&self, n: usize) -> Vec<SmsSeen> {
        for _ in 0..600 {
            let s = self.seen();
            if s.len() >= n {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} SMS in 30 s, got {:?}", self.seen());
    }
}
