//! The real `cloud` binary as an operator starts it: what it logs at
//! start-up, how it prints its configuration, the mode of the files it
//! creates, and that an expected 503 is not logged as an ERROR.

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, event_body};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cloud");

/// A `cloud serve` process on port 0 whose JSON log lines are collected.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    base: String,
}

impl Running {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// [`Self::start`] with more `CLOUD_*` variables (later ones win).
    fn start_with(data_dir: &Path, extra: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CLOUD_DATA_DIR", data_dir)
            .env("CLOUD_SERVER__BIND", "127.0.0.1:0")
            .env("CLOUD_LOG__FORMAT", "json")
            .env("CLOUD_AUTH__BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("CLOUD_AUTH__BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CLOUD_RATE_LIMIT__ENABLED", "false")
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cloud binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                    lines.lock().unwrap().push(v);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                (l["fields"]["message"] == "cloud listening")
                    .then(|| l["fields"]["addr"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(a) = found {
                break a;
            }
            assert!(
                Instant::now() < deadline,
                "no `cloud listening` line: {:?}",
                lines.lock().unwrap()
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("cloud exited with {status}: {:?}", lines.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            lines,
            base: format!("http://{addr}"),
        }
    }

    fn messages(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    fn find(&self, message: &str) -> Option<Value> {
        self.messages().into_iter().find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(message))
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn start_up_says_where_data_lives_which_keys_were_generated_and_what_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cloud = Running::start(&data);
    let storage = cloud.find("storage").expect("a storage line");
    assert_eq!(storage["fields"]["backend"], "sqlite");
    assert_eq!(storage["fields"]["data_dir"], data.display().to_string());
    let generated: Vec<Value> = cloud
        .messages()
        .into_iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("generated a new key file"))
        })
        .collect();
    assert_eq!(generated.len(), 2, "jwt.key and master.key: {generated:?}");
    let backup = cloud
        .find("back up master.key")
        .expect("the operator is told to back up master.key");
    assert_eq!(backup["level"], "WARN");
    let admin = cloud.find("bootstrap admin created").expect("admin line");
    assert_eq!(admin["fields"]["email"], ADMIN_EMAIL);
    let integrations = cloud.find("integrations").expect("integrations line");
    assert!(
        integrations["fields"]["not_configured"]
            .as_str()
            .unwrap()
            .contains("stripe"),
        "{integrations}"
    );
    let printed = cloud
        .messages()
        .iter()
        .map(Value::to_string)
        .collect::<String>();
    assert!(!printed.contains(ADMIN_PASSWORD), "no secret in the log");

    #[cfg(unix)]
    for file in ["cloud.db", "cloud.db-wal", "master.key", "jwt.key"] {
        assert_eq!(
            mode(&data.join(file)),
            0o600,
            "{file} is readable by its owner only"
        );
    }
    drop(cloud);

    let again = Running::start(&data);
    assert!(
        again.find("generated a new key file").is_none(),
        "a restart reads the keys it made"
    );
    assert!(again.find("key read from file").is_some());
    assert!(again.find("bootstrap admin account exists").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_503_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Running::start(dir.path());
    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut r = http.post(format!("{}{path}", cloud.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (_, login) = post(
        "/auth/login",
        None,
        json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    )
    .await;
    let admin = login["access_token"].as_str().unwrap().to_owned();
    let (st, event) = post("/events", Some(&admin), event_body()).await;
    assert_eq!(st, 201, "{event}");
    let event_id = event["id"].as_str().unwrap();
    let status = http
        .patch(format!("{}/events/{event_id}/status", cloud.base))
        .bearer_auth(&admin)
        .json(&json!({"status": "active"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let (_, buyer) = post(
        "/auth/register",
        None,
        json!({"email": "buyer@x.test", "password": "correct horse battery", "display_name": "B"}),
    )
    .await;
    let buyer = buyer["access_token"].as_str().unwrap().to_owned();
    let (st, order) = post(
        "/orders",
        Some(&buyer),
        json!({"event_id": event_id, "items": [{"tier": 1, "quantity": 1}]}),
    )
    .await;
    assert_eq!(st, 201, "{order}");
    let (st, v) = post(
        &format!("/orders/{}/payments", order["id"].as_str().unwrap()),
        Some(&buyer),
        json!({"method": "stripe"}),
    )
    .await;
    assert_eq!(st, 503, "Stripe is not configured: {v}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while cloud.find("service unavailable").is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let errors: Vec<Value> = cloud
        .messages()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .collect();
    assert!(
        errors.is_empty(),
        "an expected 503 logs no ERROR: {errors:?}"
    );
    assert_eq!(
        cloud.find("service unavailable").expect("it is logged")["level"],
        "WARN"
    );
}

/// Values that look like numbers or bools reach string settings as written,
/// in the real binary: `cloud config` prints them, and `cloud serve` signs
/// tokens with a digits-only JWT secret (leading zeros included) and takes a
/// digits-only admin password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digit_and_bool_looking_values_reach_string_settings_as_written() {
    let vars = [
        ("CLOUD_NOTIFICATIONS__EMAIL__USERNAME", "true"),
        ("CLOUD_NOTIFICATIONS__SMS__FROM", "+0015551234567"),
        (
            "CLOUD_AUTH__JWT_SECRET",
            "00000000001234567890123456789012345",
        ),
        ("CLOUD_SERVER__REQUEST_TIMEOUT_MS", "5000"),
    ];
    let out = Command::new(BIN)
        .arg("config")
        .env_clear()
        .envs(vars)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("username = \"true\""), "{text}");
    assert!(text.contains("from = \"+0015551234567\""), "{text}");
    assert!(text.contains("request_timeout_ms = 5000"), "{text}");

    let jwt = "00000000001234567890123456789012345";
    let password = "000123456789";
    let dir = tempfile::tempdir().unwrap();
    let cloud = Running::start_with(
        dir.path(),
        &[
            ("CLOUD_AUTH__JWT_SECRET", jwt),
            ("CLOUD_AUTH__BOOTSTRAP_ADMIN_PASSWORD", password),
        ],
    );
    let login: Value = reqwest::Client::new()
        .post(format!("{}/auth/login", cloud.base))
        .json(&json!({"email": ADMIN_EMAIL, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("the digits-only password signs in: {login}"));
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    check.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(jwt.as_bytes()),
        &check,
    )
    .expect("the token is signed with the secret exactly as written");
}

#[test]
fn cloud_config_prints_unset_apart_from_redacted() {
    let out = Command::new(BIN)
        .arg("config")
        .env("CLOUD_PAYMENTS__STRIPE_SECRET_KEY", "sk_test_do_not_print")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("stripe_secret_key = \"<redacted>\""),
        "{text}"
    );
    assert!(text.contains("webhook_secret = \"unset\""), "{text}");
    assert!(
        text.contains("bootstrap_admin_password = \"unset\""),
        "{text}"
    );
    assert!(!text.contains("do_not_print"));
}

/// `cloud serve` that is expected to refuse: its exit status and stderr.
fn refused(data_dir: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLOUD_DATA_DIR", data_dir)
        .env("CLOUD_SERVER__BIND", "127.0.0.1:0");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command
        .stdin(Stdio::null())
        .output()
        .expect("the cloud binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_replica_refuses_to_generate_its_own_keys_and_names_the_keys_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let (status, err) = refused(dir.path(), &[("CLOUD_SERVER__REPLICAS", "3")]);
    assert!(
        !status.success(),
        "one of three replicas does not start with generated keys: {err}"
    );
    for said in [
        "server.replicas = 3",
        "auth.jwt_secret (CLOUD_AUTH__JWT_SECRET)",
        "keys.master_key (CLOUD_KEYS__MASTER_KEY)",
        "cloud keygen",
    ] {
        assert!(err.contains(said), "the refusal says {said:?}: {err}");
    }
    for file in ["jwt.key", "master.key", "cloud.db"] {
        assert!(
            !dir.path().join(file).exists(),
            "{file} is not created by a refused start"
        );
    }

    // A shared rate-limit store also says "replica"; only the missing key
    // is named.
    let (status, err) = refused(
        dir.path(),
        &[
            ("CLOUD_RATE_LIMIT__STORE", "redis"),
            ("CLOUD_RATE_LIMIT__REDIS_URL", "redis://127.0.0.1:6379/"),
            (
                "CLOUD_AUTH__JWT_SECRET",
                "replica-jwt-secret-0123456789abcdef",
            ),
        ],
    );
    assert!(!status.success(), "{err}");
    assert!(err.contains("rate_limit.store = \"redis\""), "{err}");
    assert!(
        err.contains("keys.master_key (CLOUD_KEYS__MASTER_KEY)"),
        "{err}"
    );
    assert!(
        !err.contains("auth.jwt_secret ("),
        "the configured key is not asked for: {err}"
    );

    // No replica count is a configuration error, said as such.
    let (status, err) = refused(dir.path(), &[("CLOUD_SERVER__REPLICAS", "0")]);
    assert!(!status.success());
    assert!(err.contains("server.replicas must be at least 1"), "{err}");
}
