//! `cloud healthcheck`: the container's health check. A base-less image
//! has no curl, so the binary asks itself: one HTTP/1.0 GET over loopback,
//! healthy on a 200 answer within the timeout.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The loopback address to probe for a server bound to `bind` (a wildcard
/// bind is probed on 127.0.0.1, same port).
pub fn probe_addr(bind: &str) -> Result<SocketAddr> {
    let addr = bind
        .to_socket_addrs()
        .with_context(|| format!("server.bind {bind:?} is not an address"))?
        .next()
        .with_context(|| format!("server.bind {bind:?} resolves to nothing"))?;
    Ok(if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    })
}

/// GETs `path` at `addr`; Ok when the answer's status is 200.
pub fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("nothing answers at {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("{addr}{path} did not answer in time"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{addr}{path} answered {status:?}");
    }
    Ok(())
}
