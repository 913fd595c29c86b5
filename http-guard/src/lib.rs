//! Serves an axum [`Router`] on a network nobody vouches for.
//!
//! `axum::serve` waits for a request head forever and accepts every
//! connection it is offered, so a few hundred half-sent requests exhaust a
//! small box's file descriptors and stop everything it serves. [`Server`]
//! serves HTTP/1.1 with:
//!
//! - a **header-read timeout** that also bounds how long an idle keep-alive
//!   connection is kept (hyper starts it whenever it waits for a head);
//! - a **request deadline**: from the head to the answer, body included
//!   (a streamed answer's body is not cut);
//! - a **connection limit** with a **reserve** only trusted addresses (the
//!   caller says which: loopback, known peers) may use once the limit is
//!   reached, so a flood from strangers cannot lock out a gate's peers or a
//!   local status probe;
//! - an optional **per-address cap**, so one stranger cannot take the whole
//!   pool (off behind a load balancer, where every connection has its
//!   address);
//! - accept errors (out of descriptors) survived with a pause, never fatal;
//! - graceful shutdown: open requests finish, for at most
//!   [`Limits::drain`].
//!
//! A refused connection gets a one-line `503` in the platform's error shape
//! (`{"error":{"code":"busy",...}}`) when the socket can take it, then is
//! closed; [`Stats`] counts what was refused.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The limits a [`Server`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive whole within this; an idle keep-alive
    /// connection is closed after it too.
    pub header_read_timeout: Duration,
    /// From a complete head to the answer's head (reading the body and
    /// handling it); past it the caller gets `408 request_timeout`.
    pub request_timeout: Duration,
    /// Connections open at once, from anyone.
    pub max_connections: usize,
    /// Further connections, for trusted addresses only, once
    /// `max_connections` are open.
    pub reserve: usize,
    /// Connections open at once from one untrusted address; `None`: no cap.
    pub per_address: Option<usize>,
    /// How long shutdown waits for open requests before it lets go.
    pub drain: Duration,
}

impl Limits {
    /// Every connection ever admitted at once: the file descriptors the
    /// server may hold (plus the listener).
    pub fn ceiling(&self) -> usize {
        self.max_connections.saturating_add(self.reserve)
    }
}

/// Which addresses may use the reserve (and are not capped per address).
pub type Trusted = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// This host itself: `127.0.0.1` or `::1` (a local status probe, the
/// scanner UI, an operator on the box). Other `127.x` addresses are not
/// trusted: nothing on the box uses them.
pub fn this_host(ip: IpAddr) -> bool {
    ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
}

/// What the server has admitted and refused, for status pages and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    open: AtomicUsize,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

impl Stats {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
    /// Connections refused (limit, reserve or per-address cap) since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// Requests answered `408` because they passed the request deadline.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// Open connections per untrusted address.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// An HTTP/1.1 server with [`Limits`].
pub struct Server {
    limits: Limits,
    trusted: Trusted,
    stats: Arc<Stats>,
    per_address: PerAddress,
    last_warning: Option<Instant>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("limits", &self.limits)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Full,
    PerAddress,
}

impl Server {
    /// A server with `limits` that trusts no address (see [`Self::trusting`]).
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            trusted: Arc::new(|_| false),
            stats: Arc::default(),
            per_address: Arc::default(),
            last_warning: None,
        }
    }

    /// Trusts the addresses `trusted` says yes to: they may use the
    /// reserve and are not capped per address.
    pub fn trusting(mut self, trusted: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> Self {
        self.trusted = Arc::new(trusted);
        self
    }

    /// The live counters of this server.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Serves `router` on `listener` until `shutdown` resolves, then lets
    /// open requests finish for at most [`Limits::drain`]. Handlers can
    /// extract `ConnectInfo<SocketAddr>`.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer, &router, &graceful),
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or memory: wait for
                    // connections to close instead of spinning or dying.
                    tracing::warn!(error = %e, "cannot accept connections; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(self.limits.drain) => {
                tracing::warn!(open = self.stats.open(), "shutting down with requests still open");
            }
        }
        Ok(())
    }

    fn admit(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        router: &Router,
        graceful: &GracefulShutdown,
    ) {
        let ip = peer.ip().to_canonical();
        let trusted = (self.trusted)(ip);
        if let Err(why) = self.check(ip, trusted) {
            self.refuse(&stream, peer, why);
            return;
        }
        let slot = Slot::take(&self.stats, &self.per_address, ip, !trusted);
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let limits = self.limits;
        let stats = self.stats.clone();
        let service = hyper::service::service_fn(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            let stats = stats.clone();
            async move {
                match tokio::time::timeout(limits.request_timeout, router.oneshot(req)).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        Ok(timeout_answer(limits.request_timeout))
                    }
                }
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    fn check(&self, ip: IpAddr, trusted: bool) -> Result<(), Refusal> {
        let open = self.stats.open();
        let cap = if trusted {
            self.limits.ceiling()
        } else {
            self.limits.max_connections
        };
        if open >= cap {
            return Err(Refusal::Full);
        }
        if let (false, Some(most)) = (trusted, self.limits.per_address) {
            let held = lock(&self.per_address).get(&ip).copied().unwrap_or(0);
            if held >= most {
                return Err(Refusal::PerAddress);
            }
        }
        Ok(())
    }

    fn refuse(&mut self, stream: &TcpStream, peer: SocketAddr, why: Refusal) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        // Best effort, never waits: the socket is closed when `stream` drops.
        let _ = stream.try_write(busy_answer(why).as_bytes());
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            self.last_warning = Some(now);
            tracing::warn!(
                %peer,
                reason = ?why,
                open = self.stats.open(),
                refused_total = self.stats.refused(),
                "connection refused: too many open connections (a flood, or limits too low)"
            );
        }
    }
}

/// One admitted connection, given back when dropped.
struct Slot {
    stats: Arc<Stats>,
    per_address: Option<(PerAddress, IpAddr)>,
}

impl Slot {
    fn take(stats: &Arc<Stats>, per_address: &PerAddress, ip: IpAddr, counted: bool) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        let per_address = counted.then(|| {
            *lock(per_address).entry(ip).or_insert(0) += 1;
            (per_address.clone(), ip)
        });
        Self {
            stats: stats.clone(),
            per_address,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        if let Some((map, ip)) = &self.per_address {
            let mut map = lock(map);
            if let Some(n) = map.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(ip);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map holds plain counters: a panic elsewhere cannot leave it
    // half-updated, so a poisoned lock is still good.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Errors that end one connection attempt, not the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

fn busy_answer(why: Refusal) -> String {
    let message = match why {
        Refusal::Full => "too many open connections; try again in a few seconds",
        Refusal::PerAddress => {
            "too many open connections from your address; close some and try again"
        }
    };
    let body = format!(r#"{{"error":{{"code":"busy","message":"{message}"}}}}"#);
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn timeout_answer(limit: Duration) -> Response<axum::body::Body> {
    let body = format!(
        r#"{{"error":{{"code":"request_timeout","message":"the request was not received and answered within {} s; send it again"}}}}"#,
        limit.as_secs_f64()
    );
    let mut answer = Response::new(axum::body::Body::from(body));
    *answer.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_a_complete_http_response_in_the_error_shape() {
        for why in [Refusal::Full, Refusal::PerAddress] {
            let text = busy_answer(why);
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 503 "));
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, body.len());
            assert!(body.starts_with(r#"{"error":{"code":"busy","message":""#));
        }
    }
}
