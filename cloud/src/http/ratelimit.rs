//! Per-client rate limits (GCRA via tower_governor): a bucket of N requests
//! per minute per client address, refilled evenly. Over the limit: 429 in
//! the API's error shape with `Retry-After`.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::{KeyExtractor, PeerIpKeyExtractor, SmartIpKeyExtractor};

/// Keys requests by client address: the TCP peer, or (behind a trusted
/// load balancer) the forwarded-for address.
#[derive(Debug, Clone, Copy)]
pub struct ClientKey {
    /// Use `X-Forwarded-For`/`Forwarded` headers.
    pub trust_forwarded: bool,
}

impl KeyExtractor for ClientKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        if self.trust_forwarded {
            SmartIpKeyExtractor.extract(req)
        } else {
            PeerIpKeyExtractor.extract(req)
        }
    }
}

/// A limiter's shared config (kept to purge idle clients).
pub type Limiter = Arc<GovernorConfig<ClientKey, NoOpMiddleware>>;

/// A limiter of `per_minute` requests per client.
pub fn limiter(per_minute: u32, key: ClientKey) -> Limiter {
    let per_minute = per_minute.max(1);
    let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(per_minute)
        .key_extractor(key)
        .finish()
        .unwrap_or_else(|| unreachable!("period and burst are positive"));
    Arc::new(config)
}

/// The tower layer for a limiter.
pub fn layer(limiter: &Limiter) -> GovernorLayer<ClientKey, NoOpMiddleware, Body> {
    GovernorLayer::new(limiter.clone()).error_handler(|e| match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            ApiError::TooManyRequests(wait_time.max(1)).into_response()
        }
        GovernorError::UnableToExtractKey => {
            ApiError::Internal("cannot determine the client address".into()).into_response()
        }
        GovernorError::Other { msg, .. } => {
            ApiError::Internal(msg.unwrap_or_default()).into_response()
        }
    })
}
