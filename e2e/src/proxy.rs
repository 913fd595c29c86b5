//! A TCP proxy whose target can change (a restarted process gets a new
//! port) and which can be cut: `cut` drops every open connection and
//! resets new ones until `heal`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One proxy on a loopback port.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    up: watch::Sender<bool>,
}

impl Proxy {
    /// Starts a proxy with no target yet (connections are dropped).
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (up, up_rx) = watch::channel(true);
        let t = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = *t.lock().unwrap_or_else(|p| p.into_inner());
                let mut up_rx = up_rx.clone();
                if !*up_rx.borrow() {
                    continue;
                }
                let Some(to) = to else { continue };
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up_rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, target, up }
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
}
