//! A TCP proxy whose target can change (a restarted process gets a new
//! port) and which can be cut: `cut` drops every open connection and
//! resets new ones until `heal`; `block` does the same to the connections
//! of one kind of request only (the cloud's push stream).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One proxy on a loopback port.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    up: watch::Sender<bool>,
    blocked: watch::Sender<Option<String>>,
}

/// Whether a connection whose first line is `head` is blocked by `pattern`.
fn matches(pattern: &Option<String>, head: &str) -> bool {
    pattern.as_deref().is_some_and(|p| head.contains(p))
}

impl Proxy {
    /// Starts a proxy with no target yet (connections are dropped).
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (up, up_rx) = watch::channel(true);
        let (blocked, blocked_rx) = watch::channel(None::<String>);
        let t = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *t.lock().unwrap_or_else(|p| p.into_inner());
                let mut up_rx = up_rx.clone();
                let mut blocked_rx = blocked_rx.clone();
                if !*up_rx.borrow() {
                    continue;
                }
                let Some(to) = to else { continue };
                tokio::spawn(async move {
                    // HTTP clients speak first: the first line of the first
                    // request decides whether the connection is blocked.
                    let mut first = vec![0u8; 8192];
                    let n = match inbound.read(&mut first).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    first.truncate(n);
                    let head = String::from_utf8_lossy(&first)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    if matches(&blocked_rx.borrow(), &head) {
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    if outbound.write_all(&first).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up_rx.wait_for(|up| !*up) => {}
                        _ = blocked_rx.wait_for(|b| matches(b, &head)) => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            target,
            up,
            blocked,
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Forwards to `to` from now on.
    pub fn point_at(&self, to: SocketAddr) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(to);
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.up.send_replace(true);
    }

    /// Drops the connections whose first request line contains `pattern`
    /// (e.g. `"/push"`) and refuses new ones, until [`Proxy::unblock`];
    /// other connections are forwarded as before.
    pub fn block(&self, pattern: &str) {
        self.blocked.send_replace(Some(pattern.to_owned()));
    }

    /// Forwards every connection again.
    pub fn unblock(&self) {
        self.blocked.send_replace(None);
    }
}
