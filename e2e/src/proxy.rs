//! A TCP proxy whose target can change (a restarted process gets a new
//! port) and which can be cut: `cut` drops every open connection and
//! resets new ones until `heal`; `block` does the same to the connections
//! of one kind of request only (the cloud's push stream); `set_delay`
//! holds every chunk of data for a while in each direction, as a slow link
//! does (the kernel here has no `netem`, see [`crate::lan`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// One proxy on a loopback port.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    up: watch::Sender<bool>,
    blocked: watch::Sender<Option<String>>,
    delay: Arc<Mutex<Duration>>,
}

/// Whether a connection whose first line is `head` is blocked by `pattern`.
fn matches(pattern: &Option<String>, head: &str) -> bool {
    pattern.as_deref().is_some_and(|p| head.contains(p))
}

/// Copies `from` to `to`, each chunk written `delay` after it was read, in
/// order (a link's one-way delay: the bytes in flight are not a window).
async fn delayed_copy<R, W>(mut from: R, mut to: W, delay: Duration)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

impl Proxy {
    /// Starts a proxy with no target yet (connections are dropped).
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (up, up_rx) = watch::channel(true);
        let (blocked, blocked_rx) = watch::channel(None::<String>);
        let (t, d) = (target.clone(), delay.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *t.lock().unwrap_or_else(|p| p.into_inner());
                let delay = *d.lock().unwrap_or_else(|p| p.into_inner());
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
                    // On a slow link a new connection costs a round trip
                    // (the handshake) before its first request arrives.
                    tokio::time::sleep(delay * 3).await;
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    if outbound.write_all(&first).await.is_err() {
                        return;
                    }
                    let relay = async {
                        if delay.is_zero() {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        } else {
                            let (ir, iw) = inbound.split();
                            let (or, ow) = outbound.split();
                            tokio::join!(delayed_copy(ir, ow, delay), delayed_copy(or, iw, delay));
                        }
                    };
                    tokio::select! {
                        _ = relay => {}
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
            delay,
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

    /// Holds every chunk `one_way` in each direction on connections opened
    /// from now on (and a new connection's first request one round trip
    /// more, as its handshake would).
    pub fn set_delay(&self, one_way: Duration) {
        *self.delay.lock().unwrap_or_else(|p| p.into_inner()) = one_way;
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
