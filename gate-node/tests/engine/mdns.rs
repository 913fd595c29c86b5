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
    let dir = root.join(format!("gate-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    provision(&dir, f, n, &[]);
    let cfg = std::fs::read_to_string(config_path(&dir)).unwrap();
    let cfg = cfg
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:7300\"")
        .replace("mdns = false", "mdns = true");
    assert!(cfg.contains("mdns = true") && cfg.contains("0.0.0.0:7300"));
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
