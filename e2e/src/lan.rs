//! A lossy venue LAN for the gate-to-gate bench (issue 14 part 4).
//!
//! The kernel here has no `netem` qdisc (`tc qdisc add dev lo root netem
//! loss 5%` answers "Specified qdisc kind is unknown"), so a link is made
//! of two real parts:
//! - **loss** is real packet loss: nftables drops a share of the TCP
//!   segments to and from the gates' proxy ports at random (`numgen
//!   random`), in both directions, and the kernel's TCP retransmits them
//!   as it would on a radio link (the minimum retransmission timeout is
//!   200 ms; a lost SYN waits 1 s);
//! - **delay** is held in each gate's [`crate::proxy::Proxy`]
//!   ([`crate::proxy::Proxy::set_delay`]);
//! - a **flap** is the link going dark: every segment to and from those
//!   ports dropped until it comes back (not a reset: connections time out
//!   as they would when a switch loses power).
//!
//! The rules live in a private network namespace the bench re-executes
//! itself in ([`enter_private_network`]), so nothing outside it is touched
//! and the rules vanish with the process.

use std::io::Write;
use std::process::{Command, Stdio};

const MARK: &str = "GATEHOUSE_PRIVATE_NETNS";
const TABLE: &str = "gatehouse_lan";

/// Re-runs this program in a new network namespace of its own (`unshare
/// --net`, with its loopback up) and exits with its status; returns in
/// the child. Needs root (CI and this machine run as root) and `nft`.
pub fn enter_private_network() {
    if std::env::var_os(MARK).is_some() {
        run("ip", &["link", "set", "lo", "up"]);
        return;
    }
    let exe = std::env::current_exe().expect("this program's path");
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .status()
        .expect("run `unshare --net` (util-linux)");
    std::process::exit(status.code().unwrap_or(1));
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e} (scripts/setup installs it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft (Debian's nftables; scripts/setup installs it)");
    child
        .stdin
        .take()
        .expect("nft stdin")
        .write_all(script.as_bytes())
        .expect("write nft rules");
    let out = child.wait_with_output().expect("nft exits");
    assert!(
        out.status.success(),
        "nft refused the rules: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The links to some TCP ports (the gates' proxies), in this namespace.
#[derive(Debug)]
pub struct Link {
    ports: String,
}

impl Link {
    /// Drops `loss_permille` of the segments to and from `ports`, each
    /// direction on its own draw.
    pub fn lossy(ports: &[u16], loss_permille: u32) -> Link {
        assert!(
            std::env::var_os(MARK).is_some(),
            "loss rules only inside enter_private_network()"
        );
        let ports = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        nft(&format!(
            "table inet {TABLE} {{\n\
               chain loss {{\n\
                 type filter hook input priority 0; policy accept;\n\
                 tcp dport {{ {ports} }} numgen random mod 1000 < {loss_permille} drop\n\
                 tcp sport {{ {ports} }} numgen random mod 1000 < {loss_permille} drop\n\
               }}\n\
               chain flap {{\n\
                 type filter hook input priority 1; policy accept;\n\
               }}\n\
             }}\n"
        ));
        Link { ports }
    }

    /// The link goes dark: every segment dropped, both ways.
    pub fn down(&self) {
        let ports = &self.ports;
        nft(&format!(
            "add rule inet {TABLE} flap tcp dport {{ {ports} }} drop\n\
             add rule inet {TABLE} flap tcp sport {{ {ports} }} drop\n"
        ));
    }

    /// The link is back (still lossy).
    pub fn up(&self) {
        nft(&format!("flush chain inet {TABLE} flap\n"));
    }
}
