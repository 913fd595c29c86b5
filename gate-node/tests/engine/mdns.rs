//! Peer discovery for real: two gates in their own network namespaces, joined
//! by a veth pair (a two-host venue LAN with multicast), with NO configured
//! peers. Each finds the other by mDNS (`_gatehouse._tcp.local.`), and an
//! admission recorded at A becomes `already_inside` at B.
//!
//! Needs root and iproute2 (`ip netns`), as CI has; without them the test
//! fails with the reason rather than skipping.

use crate::harness::{BIN, cli, config_path, provision};
use gate_node::fixture::EventFixture;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two namespaces and the veth pair between them, removed on drop.
struct Lan {
    names: [String; 2],
    veth: [String; 2],
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 `ip` runs (apt package iproute2)");
    assert!(
        out.status.success(),
        "`ip {}` failed (this test needs root for network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    fn new() -> Lan {
        let tag = std::process::id() % 100_000;
        let names = [format!("gha{tag}"), format!("ghb{tag}")];
        let veth = [format!("gva{tag}"), format!("gvb{tag}")];
        let lan = Lan {
            names: names.clone(),
            veth: veth.clone(),
        };
        for n in &names {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ]);
        for (i, (n, v)) in names.iter().zip(&veth).enumerate() {
            ip(&["link", "set", v, "netns", n]);
            ip(&[
                "-n",
                n,
                "addr",
                "add",
                &format!("10.93.0.{}/24", i + 1),
                "dev",
                v,
            ]);
            ip(&["-n", n, "link", "set", v, "multicast", "on", "up"]);
        }
        lan
    }

    /// Adds a second address (`cidr`) to host `i`'s LAN interface.
    fn add_address(&self, i: usize, cidr: &str) {
        ip(&[
            "-n",
            &self.names[i],
            "addr",
            "add",
            cidr,
            "dev",
            &self.veth[i],
        ]);
    }

    /// `GET path` from the local API of the node in namespace `i`
    /// (`0.0.0.0:7300`), read from inside that namespace.
    fn get(&self, i: usize, path: &str) -> serde_json::Value {
        let script = "import sys, urllib.request; \
                      sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())";
        let out = Command::new("ip")
            .args(["netns", "exec", &self.names[i], "python3", "-c", script])
            .arg(format!("http://127.0.0.1:7300{path}"))
            .output()
            .expect("ip netns exec python3");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "GET {path} in {} answers JSON ({e}): {}",
                self.names[i],
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// `gate-node run` for the node in `dir`, inside namespace `i`.
    fn run(&self, i: usize, dir: &Path) -> Daemon {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.names[i], BIN, "--config"])
            .arg(config_path(dir))
            .arg("run")
            .env("GATE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("ip netns exec gate-node run");
        Daemon(child)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Provisions a node with no peers, mDNS on, listening on every address of
/// its namespace.
fn gate(root: &Path, f: &EventFixture, n: u8) -> std::path::PathBuf {
    gate_on(root, f, n, "0.0.0.0:7300")
}

/// As [`gate`], listening on `listen`.
fn gate_on(root: &Path, f: &EventFixture, n: u8, listen: &str) -> std::path::PathBuf {
    let dir = root.join(format!("gate-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    provision(&dir, f, n, &[]);
    let cfg = std::fs::read_to_string(config_path(&dir)).unwrap();
    let cfg = cfg
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = {listen:?}"))
        .replace("mdns = false", "mdns = true");
    assert!(cfg.contains("mdns = true") && cfg.contains(listen));
    std::fs::write(config_path(&dir), cfg).unwrap();
    dir
}

fn decision(dir: &Path, text: &str, record: bool) -> serde_json::Value {
    let command = if record { "scan" } else { "check" };
    let out = cli(dir, &[command, "--text", text, "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{command} --json prints JSON ({e}): {out:?}"))
}

#[test]
fn gates_on_a_lan_find_each_other_by_mdns_and_share_admissions() {
    let lan = Lan::new();
    let f = EventFixture::new(61, 10);
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (gate(root.path(), &f, 1), gate(root.path(), &f, 2));
    let _da = lan.run(0, &a);
    let _db = lan.run(1, &b);

    let text = f.credential(f.ticket(3));
    let at_a = decision(&a, &text, true);
    assert_eq!(at_a["decision"], "admit", "recorded at A: {at_a}");

    // B has no configured peer: only mDNS can bring A's admission over.
    let start = Instant::now();
    loop {
        let at_b = decision(&b, &text, false);
        if at_b["reason"] == "already_inside" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "B never learned of A's admission through mDNS discovery: {at_b}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gate_listening_on_one_address_is_advertised_at_that_address_only() {
    let lan = Lan::new();
    // A has two addresses and listens on the higher one: advertising both
    // would make B pick 10.93.0.1, where nothing listens.
    lan.add_address(0, "10.93.0.21/24");
    let f = EventFixture::new(62, 10);
    let root = tempfile::tempdir().unwrap();
    let a = gate_on(root.path(), &f, 1, "10.93.0.21:7300");
    let b = gate(root.path(), &f, 2);
    let _da = lan.run(0, &a);
    let _db = lan.run(1, &b);

    let start = Instant::now();
    let peer = loop {
        let status = lan.get(1, "/status");
        let found = status["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["source"] == "mdns" && !p["last_ok_ms"].is_null())
            .cloned();
        if let Some(peer) = found {
            break peer;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "B never reached A at an address A advertised: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(peer["url"], "http://10.93.0.21:7300", "{peer}");
    // And B goes on using that address: no other address of A shows up.
    std::thread::sleep(Duration::from_secs(2));
    let peers = lan.get(1, "/status")["peers"].clone();
    let urls: Vec<_> = peers
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["url"].clone())
        .collect();
    assert_eq!(urls, ["http://10.93.0.21:7300"], "{peers}");
}
