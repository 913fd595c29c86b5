//! Per-client rate limits (GCRA via governor): a bucket of N requests per
//! minute per client address, refilled evenly. Over the limit: 429 in the
//! API's error shape with `Retry-After`, in whole seconds rounded up (a
//! client that waits exactly that long is let in).
//!
//! [`client_ip`] runs on every request and records the client address
//! ([`ClientIp`]); the limiters and the login guard key on it.
//!
//! A limiter keeps its buckets in this process (the embedded default) or in
//! the shared store (`rate_limit.store = "redis"`, see [`super::shared_limit`]),
//! where every replica spends from the same bucket.

use super::shared_limit::{Refused, SharedStore};
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{Request as HttpRequest, StatusCode};
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
    buckets: Buckets,
}

#[derive(Debug, Clone)]
enum Buckets {
    /// In this process.
    Memory(Arc<DefaultKeyedRateLimiter<IpAddr>>),
    /// In the shared store, under the limiter's name.
    Shared {
        store: Box<SharedStore>,
        name: &'static str,
        per_minute: u32,
    },
}

impl Limiter {
    /// A bucket of `per_minute` requests, refilled evenly over a minute,
    /// kept in this process.
    pub fn new(per_minute: u32) -> Self {
        let burst = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period(per_minute))
            .unwrap_or_else(|| unreachable!("the period is positive"))
            .allow_burst(burst);
        Self {
            buckets: Buckets::Memory(Arc::new(DefaultKeyedRateLimiter::keyed(quota))),
        }
    }

    /// The same bucket, kept in `store` under `name` (one name per
    /// limiter: every replica's `name` limiter spends from one bucket).
    pub fn shared(store: SharedStore, name: &'static str, per_minute: u32) -> Self {
        Self {
            buckets: Buckets::Shared {
                store: Box::new(store),
                name,
                per_minute: per_minute.max(1),
            },
        }
    }

    /// Takes one request from `ip`'s bucket, or says why not.
    pub async fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        match &self.buckets {
            Buckets::Memory(inner) => inner.check_key(&ip).map_err(|not_until| {
                Refused::Wait(not_until.wait_time_from(DefaultClock::default().now()))
            }),
            Buckets::Shared {
                store,
                name,
                per_minute,
            } => {
                store
                    .take(
                        &super::shared_limit::key(name, ip),
                        period(*per_minute),
                        *per_minute,
                    )
                    .await
            }
        }
    }

    /// Forgets clients whose buckets are full again (the shared store's
    /// keys expire by themselves).
    pub fn retain_recent(&self) {
        if let Buckets::Memory(inner) = &self.buckets {
            inner.retain_recent();
        }
    }
}

/// Middleware: 429 when the client's bucket of `limiter` is empty; 503
/// `rate_limiter_unavailable` when the shared store cannot be asked (fail
/// closed: see [`super::shared_limit`]).
pub async fn limit(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
    let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>().copied() else {
        return ApiError::Internal("cannot determine the client address".into()).into_response();
    };
    match limiter.check(ip).await {
        Ok(()) => next.run(req).await,
        Err(Refused::Wait(wait)) => {
            ApiError::TooManyRequests(retry_after_secs(wait)).into_response()
        }
        Err(e) => store_down(&e).into_response(),
    }
}

/// The answer when the shared store cannot be asked: 503
/// `rate_limiter_unavailable`, `Retry-After: 1` (logged at WARN).
pub fn store_down(why: &Refused) -> ApiError {
    tracing::warn!(error = %why, "rate-limit store unavailable: request refused");
    ApiError::coded(
        StatusCode::SERVICE_UNAVAILABLE,
        RATE_LIMITER_UNAVAILABLE,
        "the rate-limit store is unavailable; retry in a moment",
    )
}

/// The error code of [`store_down`].
pub const RATE_LIMITER_UNAVAILABLE: &str = "rate_limiter_unavailable";

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

    #[tokio::test]
    async fn a_limiter_refuses_past_its_burst_and_says_how_long() {
        let l = Limiter::new(3);
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..3 {
            assert!(l.check(ip).await.is_ok());
        }
        let Err(Refused::Wait(wait)) = l.check(ip).await else {
            panic!("the fourth in a minute is refused");
        };
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "one request every 20 s: {wait:?}"
        );
        assert_eq!(retry_after_secs(wait), 20, "19.99 s is announced as 20");
        assert!(
            l.check(IpAddr::from([127, 0, 0, 2])).await.is_ok(),
            "other clients keep their own bucket"
        );
    }
}
