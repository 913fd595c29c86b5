//! The real window: an Xvfb display, `tauri-driver` in front of Debian's
//! `WebKitWebDriver`, and a fantoccini session that launches the real
//! `scanner-app` binary. Every peer is required: a missing one fails the
//! suite with the command that installs it (`scripts/setup`), never skips.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(home)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn require(name: &str, install: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!("`{name}` is required for the window tests and is missing: {install} (scripts/setup does it)")
    })
}

/// A child process killed on drop; `Proc::group` kills its whole process
/// group (tauri-driver's WebKitWebDriver and the app it launched).
#[derive(Debug)]
struct Proc(Child, bool);

impl Proc {
    fn one(c: Child) -> Self {
        Self(c, false)
    }
    fn group(c: Child) -> Self {
        Self(c, true)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.1 {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0.id())])
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The X server, tauri-driver and the WebDriver session.
pub struct Window {
    pub client: Client,
    _driver: Proc,
    _xvfb: Proc,
}

fn start_xvfb() -> (Proc, String) {
    let xvfb = require("Xvfb", "apt-get install xvfb xauth");
    for n in 90..140 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            continue;
        }
        let child = Command::new(&xvfb)
            .args([
                format!(":{n}"),
                "-screen".into(),
                "0".into(),
                "1366x768x24".into(),
            ])
            .args(["-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut proc = Proc::one(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                return (proc, format!(":{n}"));
            }
            if let Ok(Some(_)) = proc.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = proc.0.kill();
    }
    panic!("Xvfb did not start on any display :90 to :139");
}

impl Window {
    /// Opens the app with `args` in a fresh window.
    pub async fn open(app: &Path, args: &[String]) -> Window {
        let driver = require("tauri-driver", "cargo install tauri-driver --locked");
        let native = require("WebKitWebDriver", "apt-get install webkit2gtk-driver");
        let (xvfb, display) = start_xvfb();
        let (port, native_port) = (free_port(), free_port());
        let child = Command::new(driver)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .arg("--native-driver")
            .arg(native)
            .env("DISPLAY", &display)
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("SCANNER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start tauri-driver");
        let driver = Proc::group(child);
        let url = format!("http://127.0.0.1:{port}");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("wry"));
        caps.insert(
            "tauri:options".into(),
            json!({"application": app, "args": args}),
        );
        let start = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if start.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session with the app through tauri-driver: {e}"),
            }
        };
        let w = Window {
            client,
            _driver: driver,
            _xvfb: xvfb,
        };
        w.wait("the app's script to run", || async {
            w.js("return document.getElementById('gate-label') !== null && window.__TAURI__ !== undefined", vec![])
                .await
                .as_bool()
                .unwrap_or(false)
        })
        .await;
        w
    }

    /// Ends the session (the app quits), then the driver and X server.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Runs `script` in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script {script:?} failed: {e}"))
    }

    /// `dataset[key]` of the element `id`.
    pub async fn data(&self, id: &str, key: &str) -> String {
        self.js(
            "const e = document.getElementById(arguments[0]); return e ? (e.dataset[arguments[1]] || '') : '';",
            vec![json!(id), json!(key)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The visible text of element `id` ("" when hidden).
    pub async fn text(&self, id: &str) -> String {
        self.js(
            "const e = document.getElementById(arguments[0]); return e && e.closest('[hidden]') === null ? e.innerText : '';",
            vec![json!(id)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Whether element `id` is shown.
    pub async fn shown(&self, id: &str) -> bool {
        match self.client.find(Locator::Id(id)).await {
            Ok(e) => e.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Types `text` into `id` (cleared first); `\u{E007}` is Enter.
    pub async fn type_into(&self, id: &str, text: &str) {
        let e = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|err| panic!("#{id} exists: {err}"));
        e.clear()
            .await
            .unwrap_or_else(|err| panic!("clear #{id}: {err}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("type into #{id}: {err}"));
    }

    /// Sends keys to whatever has the focus (a keyboard-wedge scanner).
    pub async fn keys_to_focus(&self, text: &str) {
        let e = self
            .client
            .active_element()
            .await
            .expect("a focused element");
        e.send_keys(text).await.expect("send keys");
    }

    /// Empties the input `id` and clicks into it (WebDriver's clear takes
    /// the focus away).
    pub async fn clear(&self, id: &str) {
        let e = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|err| panic!("#{id} exists: {err}"));
        e.clear()
            .await
            .unwrap_or_else(|err| panic!("clear #{id}: {err}"));
        e.click()
            .await
            .unwrap_or_else(|err| panic!("click #{id}: {err}"));
    }

    /// Types `text` into whatever has the focus one key at a time, `gap`
    /// apart: a person at the keyboard.
    pub async fn type_like_a_person(&self, text: &str, gap: Duration) {
        for ch in text.chars() {
            self.keys_to_focus(&ch.to_string()).await;
            tokio::time::sleep(gap).await;
        }
    }

    /// Clicks element `id`.
    pub async fn click(&self, id: &str) {
        let r = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|err| panic!("#{id} exists: {err}"))
            .click()
            .await;
        if let Err(err) = r {
            let png = self.client.screenshot().await.unwrap_or_default();
            let _ = std::fs::write("/tmp/scanner-click-failed.png", png);
            let html = self.js("const r = document.getElementById(arguments[0]).getBoundingClientRect(); const e = document.elementFromPoint(r.x + r.width/2, r.y + r.height/2); return [JSON.stringify(r), e ? e.outerHTML.slice(0, 300) : 'none']", vec![json!(id)]).await;
            panic!("click #{id}: {err:?}; at its centre: {html}");
        }
    }

    /// Clicks the first element matching a CSS selector.
    pub async fn click_css(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("{css} exists: {err}"))
            .click()
            .await
            .unwrap_or_else(|err| panic!("click {css}: {err}"));
    }

    /// Polls `check` until it holds (15 s), naming `what` on failure.
    pub async fn wait<F, Fut>(&self, what: &str, mut check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if check().await {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Saves a screenshot to `docs/images/<name>.png` (after the page had a
    /// moment to paint: WebDriver screenshots lag the page).
    pub async fn screenshot(&self, name: &str) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
        std::fs::create_dir_all(&dir).expect("docs/images");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}
