//! The limits against a real listener and real sockets: what a stranger on
//! the LAN can and cannot do to a server.

use axum::Router;
use axum::routing::{get, post};
use http_guard::{Limits, Server};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        max_connections: 64,
        reserve: 8,
        per_address: None,
        drain: Duration::from_secs(1),
    }
}

fn app() -> Router {
    Router::new()
        .route("/status", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
}

struct Running {
    addr: SocketAddr,
    stats: Arc<http_guard::Stats>,
    _stop: oneshot::Sender<()>,
}

async fn start(server: Server) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, app(), async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stats,
        _stop: stop,
    }
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the peer closes or `wait` passes; `None` if it is still open.
async fn read_to_close(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn get_status(from: Ipv4Addr, to: SocketAddr) -> String {
    let mut s = connect_from(from, to).await;
    s.write_all(b"GET /status HTTP/1.1\r\nhost: gate\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("the server answers and closes within 5 s")
}

#[tokio::test]
async fn a_half_sent_head_is_dropped_after_the_header_timeout() {
    let server = start(Server::new(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..limits()
    }))
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nhost: gate\r\n")
        .await
        .unwrap();
    let closed = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a head still unfinished after the timeout must be dropped, not waited for"
    );
    // A complete request on a fresh connection is served as usual.
    assert!(
        get_status(Ipv4Addr::LOCALHOST, server.addr)
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = start(Server::new(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..limits()
    }))
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nhost: gate\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The connection stays open for keep-alive, but not for ever.
    let closed = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(
        closed.as_deref(),
        Some(""),
        "idle connection closed, nothing more sent"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.stats.open(), 0);
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408() {
    let server = start(Server::new(Limits {
        request_timeout: Duration::from_millis(300),
        ..limits()
    }))
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: gate\r\ncontent-length: 10\r\n\r\nab")
        .await
        .unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert_eq!(server.stats.timed_out(), 1);
}

/// Whether the server kept this half-sent connection (`true`) or turned it
/// away with a 503 (`false`).
async fn half_sent(from: Ipv4Addr, to: SocketAddr) -> (TcpStream, Option<String>) {
    let mut s = connect_from(from, to).await;
    s.write_all(b"GET /status HTTP/1.1\r\nhost: gate\r\n")
        .await
        .unwrap();
    let refused = read_to_close(&mut s, Duration::from_millis(300)).await;
    (s, refused)
}

#[tokio::test]
async fn a_flood_of_strangers_cannot_take_the_reserve_or_more_than_their_share() {
    let trusted = Ipv4Addr::new(127, 0, 0, 1);
    let server = start(
        Server::new(Limits {
            max_connections: 8,
            reserve: 2,
            per_address: Some(3),
            ..limits()
        })
        .trusting(|ip| ip == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
    )
    .await;

    // One stranger gets 3 connections, the 4th is refused naming the cap.
    let mut held = Vec::new();
    for _ in 0..3 {
        let (s, refused) = half_sent(Ipv4Addr::new(127, 0, 0, 2), server.addr).await;
        assert_eq!(refused, None, "within the per-address cap");
        held.push(s);
    }
    let (_, refused) = half_sent(Ipv4Addr::new(127, 0, 0, 2), server.addr).await;
    let refused = refused.expect("the 4th from one address is refused");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("from your address"), "{refused}");

    // More strangers fill the pool (8), then everyone untrusted is refused.
    for last in 3..=4 {
        for _ in 0..3 {
            let (s, refused) = half_sent(Ipv4Addr::new(127, 0, 0, last), server.addr).await;
            if refused.is_none() {
                held.push(s);
            }
        }
    }
    assert_eq!(held.len(), 8, "the pool holds exactly max_connections");
    assert_eq!(server.stats.open(), 8);
    let (_, refused) = half_sent(Ipv4Addr::new(127, 0, 0, 9), server.addr).await;
    let refused = refused.expect("a new stranger is refused while the pool is full");
    assert!(refused.contains(r#""code":"busy""#), "{refused}");

    // The trusted address still gets answers, from the reserve.
    for _ in 0..3 {
        assert!(
            get_status(trusted, server.addr)
                .await
                .starts_with("HTTP/1.1 200")
        );
    }
    // The reserve is bounded too: two trusted connections held, the third is refused.
    let (_a, r1) = half_sent(trusted, server.addr).await;
    let (_b, r2) = half_sent(trusted, server.addr).await;
    let (_c, r3) = half_sent(trusted, server.addr).await;
    assert_eq!((r1, r2), (None, None));
    assert!(r3.expect("past the reserve").starts_with("HTTP/1.1 503"));
    assert!(server.stats.refused() >= 3);

    // When the strangers go, their slots come back.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, refused) = half_sent(Ipv4Addr::new(127, 0, 0, 9), server.addr).await;
    assert_eq!(refused, None, "slots are given back when connections close");
}

#[tokio::test]
async fn handlers_see_the_callers_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/who",
        get(
            |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            },
        ),
    );
    tokio::spawn(Server::new(limits()).serve(listener, app, std::future::pending()));
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 7), addr).await;
    s.write_all(b"GET /who HTTP/1.1\r\nhost: gate\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(answer.ends_with("127.0.0.7"), "{answer}");
}
