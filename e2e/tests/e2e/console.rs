//! The web console in a real browser: Debian's chromium driven by
//! playwright-core (`cloud/web/e2e/console.mjs`, commanded line by line from
//! here) against the real `cloud` binary on PostgreSQL and real `gate-node`
//! daemons. An admin grants the organizer role on the admin page; the
//! organizer creates an event and enrolls two gates from the devices page;
//! buyers on a phone-sized screen buy a free ticket and a card ticket
//! (Stripe.js from localstripe) and pay one manually (confirmed on the orders
//! page); the QR on "my tickets" is screenshotted, read by `gate-node scan
//! --image` and admitted; the doors page shows the scan within 2 s; a
//! killed gate shows offline; a refund on the orders page revokes the ticket
//! at the gate. Screenshots of the main pages go to `docs/images/`, and every
//! page passes axe-core with no serious or critical violation.
//!
//! Needs `node`, the npm packages of `cloud/web` (scripts/setup), Debian's
//! chromium, PostgreSQL and localstripe; it fails, never skips, without them.

use e2e::cloud::Cloud;
use e2e::node::{Node, Timings};
use e2e::proxy::Proxy;
use e2e::wait_until;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PASSWORD: &str = "correct horse battery";
const ADMIN_EMAIL: &str = "admin@gatehouse.test";
const ADMIN_PASSWORD: &str = "admin-password-1";
const STRIPE_KEY: &str = "sk_test_gatehouse";
const WEBHOOK_SECRET: &str = "whsec_gatehouse_console";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The browser driver process.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    async fn start(base: &str, work: &Path) -> Browser {
        let web = repo().join("cloud/web");
        assert!(
            web.join("node_modules/playwright-core").is_dir(),
            "the console's npm packages are missing in {}: run scripts/setup",
            web.display()
        );
        let shots = repo().join("docs/images");
        std::fs::create_dir_all(&shots).expect("docs/images");
        let mut child = Command::new("node")
            .arg(web.join("e2e/console.mjs"))
            .env("BASE_URL", base)
            .env("SHOTS_DIR", &shots)
            .env("WORK_DIR", work)
            .env("FAIL_DIR", std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node is required for the browser test (apt install nodejs; scripts/setup)");
        let stdin = child.stdin.take().expect("driver stdin");
        let lines = BufReader::new(child.stdout.take().expect("driver stdout")).lines();
        Browser {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command; its answer (fails the test on a driver error).
    async fn call(&mut self, cmd: Value) -> Value {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the browser driver");
        let answer = tokio::time::timeout(Duration::from_secs(120), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser driver did not answer {cmd} within 120 s"))
            .expect("read the browser driver")
            .unwrap_or_else(|| {
                panic!("the browser driver exited during {cmd} (is chromium installed?)")
            });
        let v: Value = serde_json::from_str(&answer).expect("a JSON answer");
        assert_eq!(
            v["ok"],
            true,
            "browser command {cmd} failed: {}\nscreenshot: {}",
            v["error"].as_str().unwrap_or(""),
            v["screenshot"]
        );
        v
    }

    async fn axe(&mut self, who: &str, hash: &str, phone: bool) {
        self.call(json!({"cmd": "goto", "who": who, "hash": hash, "phone": phone}))
            .await;
        let r = self.call(json!({"cmd": "axe", "who": who})).await;
        assert_eq!(
            r["serious"],
            json!([]),
            "axe-core finds no serious or critical accessibility violation on {hash}"
        );
    }
}

/// A throwaway PostgreSQL database, dropped at the end.
struct PgDatabase {
    name: String,
}

fn psql(sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql is required for the PostgreSQL browser test")
}

impl PgDatabase {
    fn create() -> PgDatabase {
        let name = format!(
            "gh_console_{}_{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        );
        let out = psql(&format!("CREATE DATABASE \"{name}\""));
        assert!(
            out.status.success(),
            "PostgreSQL must be reachable on 127.0.0.1:5432: {out:?}"
        );
        PgDatabase { name }
    }
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// localstripe on a free port, killed on drop.
struct LocalStripe {
    port: u16,
    _child: Child,
}

impl LocalStripe {
    async fn start() -> LocalStripe {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("localstripe")
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("localstripe is required (scripts/setup installs it)");
        let http = reqwest::Client::new();
        wait_until(Duration::from_secs(30), "localstripe answering", || async {
            http.get(format!("http://127.0.0.1:{port}/js.stripe.com/v3/"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        LocalStripe {
            port,
            _child: child,
        }
    }
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    async fn register_webhook(&self, url: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/_config/webhooks/gatehouse", self.base()))
            .bearer_auth(STRIPE_KEY)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("url={}&secret={WEBHOOK_SECRET}", form_escape(url)))
            .send()
            .await
            .expect("configure the localstripe webhook");
        assert!(
            r.status().is_success(),
            "localstripe webhook: {}",
            r.status()
        );
    }
}

fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `gate-node check --image` (decide only) and `decode --image`; the
/// decision JSON and the QR text.
fn gate_reads(node: &Node, png: &str) -> (Value, String) {
    let out = node.cli(&["check", "--image", png, "--json"]);
    let decision: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("gate-node check --image answers JSON: {out:?}"));
    let out = node.cli(&["decode", "--image", png]);
    assert!(
        out.status.success(),
        "the gate decodes the screenshot's QR: {out:?}"
    );
    let text = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    (decision, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_runs_the_doors_and_buyers_buy_and_show_tickets_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDatabase::create();
    let stripe = LocalStripe::start().await;
    let cloud_dir = dir.path().join("cloud");
    std::fs::create_dir_all(&cloud_dir).expect("cloud dir");
    let env = vec![
        ("CLOUD_DATABASE__URL".to_string(), db.url()),
        (
            "CLOUD_CONSOLE__DEVICE_OFFLINE_AFTER_MS".into(),
            "3000".into(),
        ),
        (
            "CLOUD_CONSOLE__STRIPE_PUBLISHABLE_KEY".into(),
            "pk_test_gatehouse".into(),
        ),
        (
            "CLOUD_CONSOLE__STRIPE_JS_URL".into(),
            format!("{}/js.stripe.com/v3/", stripe.base()),
        ),
        (
            "CLOUD_PAYMENTS__STRIPE_API_BASE".into(),
            format!("{}/", stripe.base()),
        ),
        (
            "CLOUD_PAYMENTS__STRIPE_SECRET_KEY".into(),
            STRIPE_KEY.into(),
        ),
        (
            "CLOUD_PAYMENTS__WEBHOOK_SECRET".into(),
            WEBHOOK_SECRET.into(),
        ),
    ];
    let cloud = Cloud::start_with(&cloud_dir, env).await;
    stripe
        .register_webhook(&cloud.url("/payments/webhook"))
        .await;
    let base = cloud.url("");
    let mut b = Browser::start(&base, dir.path()).await;

    // The admin grants the organizer role from the admin page.
    b.call(json!({"cmd": "register", "who": "org", "email": "org@venue.test", "password": PASSWORD, "name": "Olga Organizer"})).await;
    b.call(
        json!({"cmd": "login", "who": "admin", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    )
    .await;
    b.call(json!({"cmd": "grant", "who": "admin", "email": "org@venue.test", "role": "organizer"}))
        .await;
    b.call(json!({"cmd": "screenshot", "who": "admin", "name": "admin.png"}))
        .await;
    b.call(json!({"cmd": "login", "who": "org", "email": "org@venue.test", "password": PASSWORD}))
        .await;

    // The organizer creates an event and enrolls two gates from the page.
    let event = b
        .call(json!({"cmd": "create_event", "who": "org", "name": "Harbour Lights"}))
        .await["id"]
        .as_str()
        .expect("event id")
        .to_string();
    b.call(json!({"cmd": "screenshot", "who": "org", "name": "event-admin.png", "full": true}))
        .await;

    // The staff roster page: the admin grants a door account the staff
    // role, the organizer adds it by email and takes it off again, and the
    // API agrees at each step.
    b.call(json!({"cmd": "register", "who": "door", "email": "door@venue.test", "password": PASSWORD, "name": "Dana Door"})).await;
    b.call(json!({"cmd": "grant", "who": "admin", "email": "door@venue.test", "role": "staff"}))
        .await;
    let token = org_token(&cloud).await;
    let added = b
        .call(json!({"cmd": "add_staff", "who": "org", "event": event, "email": "door@venue.test"}))
        .await;
    assert_eq!(
        added["rows"], 1,
        "the page lists the one staff member: {added}"
    );
    assert_eq!(
        roster(&cloud, &token, &event).await,
        vec!["door@venue.test".to_string()],
        "the page put the account on the event's roster"
    );
    b.call(json!({"cmd": "screenshot", "who": "org", "name": "staff.png", "full": true}))
        .await;
    let removed = b
        .call(json!({"cmd": "remove_staff", "who": "org", "event": event, "email": "door@venue.test"}))
        .await;
    assert_eq!(
        removed["rows"], 0,
        "the row is gone from the page: {removed}"
    );
    assert!(
        roster(&cloud, &token, &event).await.is_empty(),
        "the page took the account off the roster"
    );
    let cloud_proxy = Proxy::start().await;
    cloud_proxy.point_at(cloud.addr);
    let mut nodes = Vec::new();
    for gate in ["Gate A", "Gate B"] {
        let code = b
            .call(json!({"cmd": "enrollment_code", "who": "org", "event": event, "gate": gate}))
            .await["code"]
            .as_str()
            .expect("code")
            .to_string();
        let node_dir = dir.path().join(gate.replace(' ', "-"));
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let mut node = Node::enroll(
            &node_dir,
            Proxy::start().await,
            &cloud_proxy.url(),
            &code,
            &[],
            Timings::fast(),
        );
        node.start();
        nodes.push(node);
    }
    b.call(json!({"cmd": "screenshot", "who": "org", "name": "devices.png", "full": true}))
        .await;
    b.call(json!({"cmd": "open_doors", "who": "org", "event": event}))
        .await;

    // A buyer on a phone buys a free ticket; its QR is read by gate A.
    b.call(json!({"cmd": "register", "who": "buyer", "phone": true, "email": "bea@buyer.test", "password": PASSWORD, "name": "Bea Buyer"})).await;
    b.call(json!({"cmd": "goto", "who": "buyer", "hash": "#/"}))
        .await;
    b.call(json!({"cmd": "screenshot", "who": "buyer", "name": "shop-events.png", "full": true}))
        .await;
    let order = b
        .call(json!({"cmd": "reserve", "who": "buyer", "event": event, "tier": "Free entry"}))
        .await;
    assert_eq!(
        order["status"], "paid",
        "a free order is paid at once: {order}"
    );
    let free = b.call(json!({"cmd": "ticket_qr", "who": "buyer", "file": "free.png", "shot": "my-tickets.png"})).await;
    let a = &nodes[0];
    let free_png = free["png"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(30),
        "gate A admitting the QR shown on my tickets (dry run)",
        || async { gate_reads(a, &free_png).0["decision"] == "admit" },
    )
    .await;
    let (_, text) = gate_reads(a, &free_png);
    let report = a.scan(&text).await;
    assert_eq!(report["decision"], "admit", "recorded at gate A: {report}");

    // The doors page shows it within 2 s of the scan reaching the cloud.
    let scan_id = report["scan_id"].as_str().map(str::to_string);
    let org = org_token(&cloud).await;
    wait_until(
        Duration::from_secs(30),
        "the scan reaching the cloud",
        || async {
            let (st, v) = cloud
                .call_as(
                    &org,
                    reqwest::Method::GET,
                    &format!("/checkin/event/{event}/check-ins"),
                    None,
                )
                .await;
            st == 200 && v["items"].as_array().is_some_and(|i| !i.is_empty())
        },
    )
    .await;
    let reached = Instant::now();
    b.call(json!({"cmd": "wait_checked_in", "who": "org", "checked_in": 1}))
        .await;
    let shown = reached.elapsed();
    println!(
        "e2e-measure {{\"doors_scan_to_screen_ms\": {}}}",
        shown.as_millis()
    );
    assert!(
        shown <= Duration::from_secs(2),
        "the doors page shows a scan within 2 s of it reaching the cloud (took {shown:?}; scan {scan_id:?})"
    );

    // Card payment through Stripe.js (localstripe's mock) on the phone.
    b.call(json!({"cmd": "register", "who": "carol", "phone": true, "email": "carol@buyer.test", "password": PASSWORD, "name": "Carol Card"})).await;
    b.call(json!({"cmd": "reserve", "who": "carol", "event": event, "tier": "Standard"}))
        .await;
    b.call(json!({"cmd": "screenshot", "who": "carol", "name": "checkout.png", "full": true}))
        .await;
    b.call(json!({"cmd": "pay_card", "who": "carol", "number": "4242424242424242"}))
        .await;
    let carded = b
        .call(json!({"cmd": "ticket_qr", "who": "carol", "file": "card.png"}))
        .await;
    assert_eq!(carded["count"], 1, "the card payment issued one ticket");

    // Manual payment confirmed on the orders page, admitted, then refunded
    // from the orders page: the gate refuses the same QR.
    b.call(json!({"cmd": "register", "who": "max", "phone": true, "email": "max@buyer.test", "password": PASSWORD, "name": "Max Manual"})).await;
    b.call(json!({"cmd": "reserve", "who": "max", "event": event, "tier": "Standard"}))
        .await;
    b.call(json!({"cmd": "pay_manual", "who": "max"})).await;
    b.call(json!({"cmd": "order_action", "who": "org", "event": event, "email": "max@", "action": "paid"})).await;
    b.call(json!({"cmd": "screenshot", "who": "org", "name": "orders.png", "full": true}))
        .await;
    let manual = b
        .call(json!({"cmd": "ticket_qr", "who": "max", "file": "manual.png"}))
        .await;
    let manual_png = manual["png"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(30),
        "gate A admitting the confirmed manual order's QR",
        || async { gate_reads(a, &manual_png).0["decision"] == "admit" },
    )
    .await;
    let held = a.manifest_version().await;
    b.call(json!({"cmd": "order_action", "who": "org", "event": event, "email": "max@", "action": "refunded"})).await;
    wait_until(
        Duration::from_secs(30),
        "gate A receiving the refund",
        || async { a.manifest_version().await > held },
    )
    .await;
    let (decision, manual_text) = gate_reads(a, &manual_png);
    assert_eq!(
        (decision["decision"].as_str(), decision["reason"].as_str()),
        (Some("reject"), Some("revoked")),
        "a refund from the orders page revokes the ticket at the gate: {decision}"
    );
    // Shown at the door, it is refused and the doors view counts why.
    let refused = a.scan(&manual_text).await;
    assert_eq!(refused["reason"], "revoked", "{refused}");

    // The orders page shows that ticket's audit trail: the transitions the
    // API holds, ending in the refund.
    let trail = b
        .call(json!({"cmd": "audit_trail", "who": "org", "event": event, "email": "max@"}))
        .await;
    let manual_ticket = manual["ticket"].as_str().expect("ticket id");
    let history = ticket_history(&cloud, &org, manual_ticket).await;
    let shown: Vec<String> = trail["rows"]
        .as_array()
        .expect("audit rows")
        .iter()
        .map(|r| r[2].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        shown, history,
        "the page lists the ticket's transitions as the API holds them: {trail}"
    );
    assert!(
        history
            .first()
            .is_some_and(|t| t == "issued" || t.ends_with("→ issued"))
            && history.last().is_some_and(|t| t.ends_with("→ refunded")),
        "issued on the confirmed payment, refunded last: {history:?}"
    );
    assert!(
        trail["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| manual_ticket.starts_with(r[0].as_str().unwrap_or("-"))),
        "every row is the order's one ticket: {trail}"
    );
    wait_until(
        Duration::from_secs(30),
        "the doors view counting the revoked scan and the gates' reports",
        || async {
            let (_, v) = cloud
                .call_as(
                    &org,
                    reqwest::Method::GET,
                    &format!("/events/{event}/doors"),
                    None,
                )
                .await;
            let fleet = v["fleet"].as_array().cloned().unwrap_or_default();
            v["rejected_by_reason"] == json!([{"reason": "revoked", "count": 1}])
                && fleet.len() == 2
                && fleet.iter().all(|d| {
                    d["software"] == env!("CARGO_PKG_VERSION")
                        && d["scans_waiting"].is_i64()
                        && d["clock"].is_string()
                        && d["manifest_version"].is_i64()
                })
        },
    )
    .await;

    // A killed gate shows offline on the doors page.
    b.call(json!({"cmd": "open_doors", "who": "org", "event": event}))
        .await;
    let gate_b = nodes[1].status().await["node_id"]
        .as_str()
        .expect("node id")
        .to_string();
    b.call(json!({"cmd": "wait_device", "who": "org", "device": gate_b, "state": "online"}))
        .await;
    nodes[1].kill9();
    let off = b
        .call(json!({"cmd": "wait_device", "who": "org", "device": gate_b, "state": "offline"}))
        .await;
    println!(
        "e2e-measure {{\"gate_killed_to_offline_ms\": {}}}",
        off["ms"]
    );
    b.call(json!({"cmd": "screenshot", "who": "org", "name": "doors-live.png", "full": true}))
        .await;

    // A comp from the event page admits; a transfer moves the ticket to
    // another account; resale is held to the organizer's cap.
    let comp = b
        .call(json!({"cmd": "comp", "who": "org", "event": event, "name": "Guest Gina"}))
        .await;
    let comp_png = comp["png"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(30),
        "gate A admitting the comp ticket's QR (dry run)",
        || async { gate_reads(&nodes[0], &comp_png).0["decision"] == "admit" },
    )
    .await;
    b.call(json!({"cmd": "transfer", "who": "carol", "to": "max@buyer.test"}))
        .await;
    let moved = b
        .call(json!({"cmd": "ticket_qr", "who": "max", "file": "moved.png"}))
        .await;
    assert_eq!(
        moved["ticket"], carded["ticket"],
        "the transferred ticket shows on the recipient's page"
    );
    let over = b
        .call(json!({"cmd": "resell", "who": "max", "price": "100.00"}))
        .await;
    assert_eq!(
        over["error"], true,
        "above the resale cap is refused: {over}"
    );
    let ok = b
        .call(json!({"cmd": "resell", "who": "max", "price": "20.00"}))
        .await;
    assert_eq!(ok["error"], false, "within the cap it is listed: {ok}");

    // A box-office sale on the event page records a paid order of the
    // tickets sold.
    let sold = b
        .call(json!({"cmd": "box_office", "who": "org", "event": event, "tier": "Standard", "quantity": 2, "holder": "Walk-in Wally", "method": "cash"}))
        .await;
    assert!(
        sold["toast"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Sold 2 ticket(s)"),
        "{sold}"
    );
    let (st, v) = cloud
        .call_as(
            &org,
            reqwest::Method::GET,
            &format!("/events/{event}/orders?limit=100"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let office: Vec<&Value> = v["items"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["channel"] == "box_office")
        .collect();
    assert_eq!(office.len(), 1, "one box-office order: {v}");
    let (st, full) = cloud
        .call_as(
            &org,
            reqwest::Method::GET,
            &format!("/orders/{}", office[0]["id"].as_str().unwrap_or_default()),
            None,
        )
        .await;
    assert_eq!(st, 200, "{full}");
    let office = [&full];
    assert_eq!(
        (
            office[0]["status"].as_str(),
            office[0]["payment_method"].as_str(),
            office[0]["total_minor"].as_i64(),
            office[0]["ticket_ids"].as_array().map(Vec::len)
        ),
        (Some("paid"), Some("cash"), Some(5000), Some(2)),
        "paid in cash, two Standard tickets: {}",
        office[0]
    );

    // Revoking gate A on the devices page: the API lists it revoked and the
    // gate's next sync is refused.
    let gate_a = nodes[0].status().await["node_id"]
        .as_str()
        .expect("node id")
        .to_string();
    b.call(json!({"cmd": "revoke_device", "who": "org", "event": event, "device": gate_a}))
        .await;
    let (st, v) = cloud
        .call_as(
            &org,
            reqwest::Method::GET,
            &format!("/devices?event_id={event}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let listed: Vec<(String, bool)> = v
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap_or_default().to_string(),
                d["revoked"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert!(
        listed.contains(&(gate_a.clone(), true)) && listed.iter().filter(|d| d.1).count() == 1,
        "gate A, and only it, is revoked: {v}"
    );
    wait_until(
        Duration::from_secs(30),
        "gate A's next sync refused as revoked",
        || async {
            nodes[0].status().await["cloud"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("device_revoked"))
        },
    )
    .await;

    // Sales, the shop's event page on a phone, security and accessibility.
    b.call(json!({"cmd": "goto", "who": "org", "hash": format!("#/console/event/{event}/sales")}))
        .await;
    b.call(json!({"cmd": "wait_for", "who": "org", "selector": ".uplot"}))
        .await;
    b.call(json!({"cmd": "screenshot", "who": "org", "name": "sales.png", "full": true}))
        .await;
    for kind in [
        "sales",
        "attendance",
        "revenue",
        "demographic",
        "performance",
    ] {
        let csv = b
            .call(json!({"cmd": "download_report", "who": "org", "type": kind}))
            .await;
        let text = csv["csv"].as_str().unwrap_or_default();
        assert!(
            csv["name"].as_str().unwrap().ends_with(".csv") && text.lines().count() >= 2,
            "the {kind} report downloads as CSV with a header and rows: {csv}"
        );
    }
    b.call(json!({"cmd": "goto", "who": "buyer", "hash": format!("#/event/{event}")}))
        .await;
    b.call(json!({"cmd": "screenshot", "who": "buyer", "name": "shop-event.png", "full": true}))
        .await;
    let keys = b.call(json!({"cmd": "keyboard", "who": "buyer"})).await;
    assert!(
        keys["seen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("BUTTON:Reserve")),
        "the buy button is reachable by keyboard: {keys}"
    );
    for (who, hash, phone) in [
        ("buyer", "#/".to_string(), true),
        ("buyer", format!("#/event/{event}"), true),
        ("buyer", "#/tickets".to_string(), true),
        ("buyer", "#/login".to_string(), true),
        ("org", "#/console".to_string(), false),
        ("org", format!("#/console/event/{event}"), false),
        ("org", format!("#/console/event/{event}/doors"), false),
        ("org", format!("#/console/event/{event}/orders"), false),
        ("org", format!("#/console/event/{event}/devices"), false),
        ("org", format!("#/console/event/{event}/staff"), false),
        ("org", format!("#/console/event/{event}/sales"), false),
        ("admin", "#/admin".to_string(), false),
    ] {
        b.axe(who, &hash, phone).await;
    }
    // Pages authorize as the API does: a buyer opening the organizer's
    // orders page sees the API's refusal, not the orders.
    b.call(
        json!({"cmd": "goto", "who": "buyer", "hash": format!("#/console/event/{event}/orders")}),
    )
    .await;
    let seen = b
        .call(json!({"cmd": "text", "who": "buyer", "selector": "main"}))
        .await;
    assert!(
        seen["text"]
            .as_str()
            .unwrap()
            .contains("only the event's organizer or an admin"),
        "a buyer is refused the orders page: {seen}"
    );
    let problems = b.call(json!({"cmd": "problems"})).await;
    let problems: Vec<&str> = problems["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        // Refusals the test provokes (403 pages, a 422 over the resale cap)
        // are shown as messages; the browser also logs them.
        .filter(|p| !p.contains("the server responded with a status of 4"))
        .collect();
    assert!(
        problems.is_empty(),
        "no script errors and no CSP violations in the pages: {problems:?}"
    );
    // Last, as it makes a CSP violation on purpose: an injected inline
    // script does not run.
    let csp = b
        .call(json!({"cmd": "csp_blocks_inline", "who": "buyer"}))
        .await;
    assert_eq!(csp["ran"], false, "the CSP stops an injected inline script");
    b.call(json!({"cmd": "close"})).await;
    let _ = b.child.wait().await;
}

/// The organizer's access token (signed in through the API, for polling).
async fn org_token(cloud: &Cloud) -> String {
    let (st, v) = cloud
        .call_as(
            "",
            reqwest::Method::POST,
            "/auth/login",
            Some(json!({"email": "org@venue.test", "password": PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["access_token"].as_str().expect("token").to_string()
}

/// A ticket's transitions as the API holds them (`from → to`).
async fn ticket_history(cloud: &Cloud, token: &str, ticket: &str) -> Vec<String> {
    let (st, v) = cloud
        .call_as(
            token,
            reqwest::Method::GET,
            &format!("/tickets/{ticket}/history"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v.as_array()
        .expect("history")
        .iter()
        .map(|a| match a["from_status"].as_str() {
            Some(from) => format!("{from} → {}", a["to_status"].as_str().unwrap_or_default()),
            None => a["to_status"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// The emails on the event's staff roster, as the API lists them.
async fn roster(cloud: &Cloud, token: &str, event: &str) -> Vec<String> {
    let (st, v) = cloud
        .call_as(
            token,
            reqwest::Method::GET,
            &format!("/events/{event}/staff"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"]
        .as_array()
        .expect("roster items")
        .iter()
        .map(|s| s["email"].as_str().unwrap_or_default().to_string())
        .collect()
}
