//! Per-client rate limits (GCRA via governor): a bucket of N requests per
//! minute per client address, refilled evenly. Over the limit: 429 in the
//! API's error shape with `Retry-After`, in whole seconds rounded up (a
//! client that waits exactly that long is let in).
//!
//! [`client_ip`] runs on every request and records the client address
//! ([`ClientIp`]); the limiters and the login guard key on it.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::Request as HttpRequest;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tower_governor::key_extractor::{KeyExtractor, PeerIpKeyExtractor, SmartIpKeyExtractor};

/// The client's address, as the limiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// Keys requests by client address: the TCP peer, or (behind a trusted
/// load balancer) the forwarded-for address.
#[derive(Debug, Clone, Copy)]
pub struct ClientKey {
    /// Use `X-Forwarded-For`/`Forwarded` headers.
    pub trust_forwarded: bool,
}

impl ClientKey {
    /// The client address of `req`, if it can be told.
    pub fn of<T>(&self, req: &HttpRequest<T>) -> Option<IpAddr> {
        if self.trust_forwarded {
            SmartIpKeyExtractor.extract(req).ok()
        } else {
            PeerIpKeyExtractor.extract(req).ok()
        }
    }
}

/// Middleware: records [`ClientIp`] in the request's extensions (the
/// limiters refuse a request whose address cannot be told).
pub async fn client_ip(State(key): State<ClientKey>, mut req: Request, next: Next) -> Response {
    if let Some(ip) = key.of(&req) {
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The emission interval of `per_minute` requests per minute.
fn period(per_minute: u32) -> Duration {
    Duration::from_nanos(60_000_000_000 / u64::from(per_minute.max(1)))
}

/// A keyed limiter of `per_minute` requests per client address.
#[derive(Debug, Clone)]
pub struct Limiter {
    inner: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Limiter {
    /// A bucket of `per_minute` requests, refilled evenly over a minute.
    pub fn new(per_minute: u32) -> Self {
        let burst = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period(per_minute))
            .unwrap_or_else(|| unreachable!("the period is positive"))
            .allow_burst(burst);
        Self {
            inner: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
        }
    }

    /// Takes one request from `ip`'s bucket, or says how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.inner
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose buckets are full again.
    pub fn retain_recent(&self) {
        self.inner.retain_recent();
    }
}

/// Middleware: 429 when the client's bucket of `limiter` is empty.
pub async fn limit(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
    let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>().copied() else {
        return ApiError::Internal("cannot determine the client address".into()).into_response();
    };
    match limiter.check(ip) {
        Ok(()) => next.run(req).await,
        Err(wait) => ApiError::TooManyRequests(retry_after_secs(wait)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(11_700)), 12);
        assert_eq!(retry_after_secs(Duration::from_millis(11_001)), 12);
        assert_eq!(retry_after_secs(Duration::from_secs(12)), 12);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(
            retry_after_secs(Duration::ZERO),
            1,
            "never 0: that means now"
        );
    }

    #[test]
    fn a_limiter_refuses_past_its_burst_and_says_how_long() {
        let l = Limiter::new(3);
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..3 {
            assert!(l.check(ip).is_ok());
        }
        let wait = l.check(ip).expect_err("the fourth in a minute is refused");
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "one request every 20 s: {wait:?}"
        );
        assert_eq!(retry_after_secs(wait), 20, "19.99 s is announced as 20");
        assert!(
            l.check(IpAddr::from([127, 0, 0, 2])).is_ok(),
            "other clients keep their own bucket"
        );
    }
}
