//! Slows password guessing without locking out a venue: failed logins are
//! counted per client address and per account, and only failures count, so
//! a box office whose staff share one NAT address logs in freely while a
//! guesser gets a few tries a minute per address and per account.
//!
//! Each counter is a GCRA bucket (the same algorithm as the request
//! limiters), kept here rather than in governor because a login must be
//! able to ask "is this blocked?" without spending a try: only a wrong
//! password spends one.
//!
//! With a shared rate-limit store (`rate_limit.store = "redis"`) the same
//! buckets live in Redis ([`LoginGuard::check`] and the two `record_`
//! functions), so N replicas allow a guesser the configured tries, not N
//! times them; the in-process maps are then unused. Redis down fails closed
//! like the request limiters: the login answers 503 before any password is
//! checked.

use crate::config::RateLimitConfig;
use crate::http::shared_limit::{self, Refused, SharedStore};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failure buckets for one kind of key.
#[derive(Debug)]
struct Buckets<K> {
    /// One token comes back every `period`.
    period: Duration,
    /// Tokens in a full bucket.
    burst: u32,
    /// Theoretical arrival time of the next failure per key (GCRA).
    tat: Mutex<HashMap<K, Instant>>,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            period: Duration::from_nanos(60_000_000_000 / u64::from(per_minute)),
            burst: per_minute,
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must wait before its next try, if it must.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let map = self.tat.lock().ok()?;
        let tat = *map.get(key)?;
        // The bucket is empty when the next failure would push the TAT past
        // `now + burst * period`; it has room again at `tat - (burst-1)*period`.
        let opens = tat.checked_sub(self.period * (self.burst - 1))?;
        (opens > now).then(|| opens - now)
    }

    fn record(&self, key: K, now: Instant) {
        if let Ok(mut map) = self.tat.lock() {
            let tat = map.entry(key).or_insert(now);
            *tat = (*tat).max(now) + self.period;
        }
    }

    fn clear(&self, key: &K) {
        if let Ok(mut map) = self.tat.lock() {
            map.remove(key);
        }
    }

    fn purge(&self, now: Instant) {
        if let Ok(mut map) = self.tat.lock() {
            map.retain(|_, tat| *tat > now);
        }
    }
}

/// Counts failed logins per address and per account.
#[derive(Debug)]
pub struct LoginGuard {
    enabled: bool,
    per_address: Buckets<IpAddr>,
    per_account: Buckets<String>,
}

impl LoginGuard {
    /// From the rate-limit configuration.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            enabled: config.enabled,
            per_address: Buckets::new(config.login_failures_per_address_per_minute),
            per_account: Buckets::new(config.login_failures_per_account_per_minute),
        }
    }

    /// How long a login for `account` from `ip` must wait, if it must.
    pub fn blocked(&self, ip: Option<IpAddr>, account: &str, now: Instant) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let by_address = ip.and_then(|ip| self.per_address.blocked(&ip, now));
        let by_account = self.per_account.blocked(&account.to_owned(), now);
        by_address.max(by_account)
    }

    /// A wrong password for `account` from `ip`.
    pub fn failed(&self, ip: Option<IpAddr>, account: &str, now: Instant) {
        if let Some(ip) = ip {
            self.per_address.record(ip, now);
        }
        self.per_account.record(account.to_owned(), now);
    }

    /// A successful login: the account's failures are forgiven (the
    /// address's are not: it may be guessing other accounts).
    pub fn succeeded(&self, account: &str) {
        self.per_account.clear(&account.to_owned());
    }

    /// [`Self::blocked`], asking the shared store when there is one.
    pub async fn check(
        &self,
        shared: Option<&SharedStore>,
        ip: Option<IpAddr>,
        account: &str,
        now: Instant,
    ) -> Result<Option<Duration>, Refused> {
        let Some(store) = shared.filter(|_| self.enabled) else {
            return Ok(self.blocked(ip, account, now));
        };
        let by_address = match ip {
            Some(ip) => {
                let b = &self.per_address;
                store
                    .blocked(&shared_limit::key("login-address", ip), b.period, b.burst)
                    .await?
            }
            None => None,
        };
        let b = &self.per_account;
        let by_account = store
            .blocked(&shared_limit::account_key(account), b.period, b.burst)
            .await?;
        Ok(by_address.max(by_account))
    }

    /// [`Self::failed`], in the shared store when there is one.
    pub async fn record_failure(
        &self,
        shared: Option<&SharedStore>,
        ip: Option<IpAddr>,
        account: &str,
        now: Instant,
    ) -> Result<(), Refused> {
        let Some(store) = shared.filter(|_| self.enabled) else {
            self.failed(ip, account, now);
            return Ok(());
        };
        if let Some(ip) = ip {
            store
                .record(
                    &shared_limit::key("login-address", ip),
                    self.per_address.period,
                )
                .await?;
        }
        store
            .record(&shared_limit::account_key(account), self.per_account.period)
            .await
    }

    /// [`Self::succeeded`], in the shared store when there is one.
    pub async fn record_success(
        &self,
        shared: Option<&SharedStore>,
        account: &str,
    ) -> Result<(), Refused> {
        match shared.filter(|_| self.enabled) {
            Some(store) => store.clear(&shared_limit::account_key(account)).await,
            None => {
                self.succeeded(account);
                Ok(())
            }
        }
    }

    /// Forgets keys whose buckets are full again.
    pub fn purge(&self, now: Instant) {
        self.per_address.purge(now);
        self.per_account.purge(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_address: u32, per_account: u32) -> LoginGuard {
        LoginGuard::new(&RateLimitConfig {
            login_failures_per_address_per_minute: per_address,
            login_failures_per_account_per_minute: per_account,
            ..RateLimitConfig::default()
        })
    }

    #[test]
    fn an_account_is_slowed_after_its_burst_of_failures_from_any_address() {
        let g = guard(100, 3);
        let t0 = Instant::now();
        for i in 0..3u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            assert_eq!(g.blocked(Some(ip), "a@x.test", t0), None, "try {i}");
            g.failed(Some(ip), "a@x.test", t0);
        }
        let wait = g
            .blocked(Some(IpAddr::from([10, 0, 0, 9])), "a@x.test", t0)
            .expect("a fourth guess within the minute waits, whatever the address");
        assert_eq!(wait, Duration::from_secs(20), "one try back every 20 s");
        assert_eq!(
            g.blocked(None, "b@x.test", t0),
            None,
            "other accounts are free"
        );
        assert_eq!(
            g.blocked(None, "a@x.test", t0 + Duration::from_secs(20)),
            None,
            "after the wait one more try is allowed"
        );
    }

    #[test]
    fn an_address_is_slowed_across_accounts_but_successes_do_not_count() {
        let g = guard(2, 100);
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        let t0 = Instant::now();
        for _ in 0..50 {
            g.succeeded("staff@venue.test");
        }
        assert_eq!(g.blocked(ip, "x@x.test", t0), None, "successes are free");
        g.failed(ip, "x@x.test", t0);
        g.failed(ip, "y@x.test", t0);
        assert!(
            g.blocked(ip, "z@x.test", t0).is_some(),
            "guessing many accounts"
        );
        assert_eq!(
            g.blocked(Some(IpAddr::from([192, 0, 2, 2])), "z@x.test", t0),
            None,
            "another address is not slowed"
        );
    }

    #[test]
    fn a_success_forgives_the_account() {
        let g = guard(100, 1);
        let t0 = Instant::now();
        g.failed(None, "a@x.test", t0);
        assert!(g.blocked(None, "a@x.test", t0).is_some());
        g.succeeded("a@x.test");
        assert_eq!(g.blocked(None, "a@x.test", t0), None);
    }
}
