//! `gate-node run` under systemd's notify protocol (`Type=notify`,
//! `WatchdogSec=`): the test plays the service manager on a datagram
//! socket, as systemd does through `NOTIFY_SOCKET`.

use crate::harness::{Node, provision};
use gate_node::fixture::EventFixture;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn messages_for(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let end = Instant::now() + window;
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn the_daemon_says_ready_pings_the_watchdog_while_healthy_and_says_stopping() {
    let f = EventFixture::new(61, 2);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    // WatchdogSec=0.4s: systemd expects a ping at least every 400 ms and
    // the node pings every 200 ms.
    let (node, _) = Node::start_with(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
        Stdio::null(),
    );
    let first = messages_for(&socket, Duration::from_millis(1500));
    assert!(
        first
            .first()
            .is_some_and(|m| m.lines().any(|l| l == "READY=1")),
        "the first message says ready: {first:?}"
    );
    let pings = first.iter().filter(|m| m.trim() == "WATCHDOG=1").count();
    assert!(
        pings >= 4,
        "a healthy node pings the watchdog every half WatchdogSec (got {pings} in 1.5 s): {first:?}"
    );
    let status = node.terminate();
    assert!(status.success(), "{status:?}");
    let last = messages_for(&socket, Duration::from_millis(200));
    assert!(
        last.iter().any(|m| m.trim() == "STOPPING=1"),
        "a node stopping on SIGTERM tells systemd: {last:?}"
    );
}

#[test]
fn without_a_watchdog_the_daemon_only_says_ready() {
    let f = EventFixture::new(62, 2);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let (node, _) = Node::start_with(
        dir.path(),
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
        Stdio::null(),
    );
    let got = messages_for(&socket, Duration::from_millis(800));
    assert_eq!(got.len(), 1, "only the ready message: {got:?}");
    assert!(
        got[0].contains("READY=1") && got[0].contains("STATUS=admitting for event"),
        "{got:?}"
    );
    drop(node);
}
