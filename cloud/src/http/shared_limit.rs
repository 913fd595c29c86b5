//! Rate-limit buckets kept in Redis, shared by every replica
//! (`rate_limit.store = "redis"`): three replicas behind one balancer
//! together allow the configured limit, not three times it.
//!
//! The algorithm is the in-process one (GCRA: a bucket of N requests,
//! refilled evenly over a minute), run as one Lua script per request so the
//! read-modify-write is atomic in Redis, timed by Redis's own clock (replica
//! clocks may disagree; Redis's is the one all of them share). A bucket is
//! one key holding its theoretical arrival time in microseconds, expiring
//! when the bucket is full again, so Redis keeps only active clients.
//!
//! The failed-login counters (`auth::guard`) use the same buckets, read
//! without spending ([`SharedStore::blocked`]) and spent only by a wrong
//! password ([`SharedStore::record`]).
//!
//! When Redis cannot be reached or answers too slowly, the limited routes
//! fail closed: [`Refused::StoreDown`] (the middleware answers `503
//! rate_limiter_unavailable` with `Retry-After`). Routes that are not
//! limited (health, the payment webhook, device sync) do not ask Redis and
//! keep working. After a failure the connection is dropped and the next
//! attempt waits [`RECONNECT_AFTER`], so a Redis outage costs no connect
//! storm; the first request after Redis is back reconnects.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long after a failure the next connection attempt waits.
pub const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Every key this module writes starts with this.
pub const KEY_PREFIX: &str = "gatehouse:rl:";

/// GCRA in one step. KEYS[1]: the bucket; ARGV[1]: emission interval in
/// µs; ARGV[2]: burst. Returns 0 when the request is let in (and spends a
/// token), else the wait in µs.
const GCRA: &str = r"
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local opens = tat - (burst - 1) * period
if now < opens then return opens - now end
local next = tat + period
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1)
return 0
";

/// How long a failure bucket must wait before its next try, without
/// spending one (0: not blocked). KEYS[1]: the bucket; ARGV as [`GCRA`].
const PEEK: &str = r"
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local opens = tat - (burst - 1) * period
if now < opens then return opens - now end
return 0
";

/// Spends one token of a failure bucket, blocked or not (a failure that
/// happened is counted). KEYS[1]: the bucket; ARGV[1]: period in µs.
const RECORD: &str = r"
local period = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + period
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1)
return 0
";

/// Why a shared bucket did not let a request in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The bucket is empty: retry after this long.
    #[error("rate limit exceeded")]
    Wait(Duration),
    /// The shared store cannot be asked (down, unreachable, too slow).
    #[error("the rate-limit store is unavailable: {0}")]
    StoreDown(String),
}

/// A connection to the shared store, reconnected on demand.
#[derive(Clone)]
pub struct SharedStore {
    client: redis::Client,
    timeout: Duration,
    scripts: Arc<Scripts>,
    conn: Arc<Mutex<Conn>>,
}

struct Scripts {
    take: redis::Script,
    peek: redis::Script,
    record: redis::Script,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not printed.
        f.debug_struct("SharedStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Conn {
    live: Option<redis::aio::MultiplexedConnection>,
    failed_at: Option<Instant>,
}

impl SharedStore {
    /// A store at `url` (`redis://host:port/db`); connects on first use.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("rate_limit.redis_url is not a Redis URL: {e}"))?;
        Ok(Self {
            client,
            timeout,
            scripts: Arc::new(Scripts {
                take: redis::Script::new(GCRA),
                peek: redis::Script::new(PEEK),
                record: redis::Script::new(RECORD),
            }),
            conn: Arc::new(Mutex::new(Conn::default())),
        })
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, Refused> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = &conn.live {
            return Ok(c.clone());
        }
        if conn
            .failed_at
            .is_some_and(|at| at.elapsed() < RECONNECT_AFTER)
        {
            return Err(Refused::StoreDown("reconnecting".into()));
        }
        let made =
            tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
                .await;
        match made {
            Ok(Ok(c)) => {
                conn.live = Some(c.clone());
                conn.failed_at = None;
                Ok(c)
            }
            Ok(Err(e)) => {
                conn.failed_at = Some(Instant::now());
                Err(Refused::StoreDown(e.to_string()))
            }
            Err(_) => {
                conn.failed_at = Some(Instant::now());
                Err(Refused::StoreDown("connect timed out".into()))
            }
        }
    }

    /// Forgets a connection that failed, so the next call reconnects.
    async fn broken(&self) {
        let mut conn = self.conn.lock().await;
        conn.live = None;
        conn.failed_at = Some(Instant::now());
    }

    /// Runs `script` on `key` with `args`: its integer answer.
    async fn run(&self, script: &redis::Script, key: &str, args: &[u64]) -> Result<i64, Refused> {
        let mut conn = self.connection().await?;
        let mut call = script.key(key);
        for a in args {
            call.arg(*a);
        }
        let answer: Result<redis::RedisResult<i64>, _> =
            tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await;
        match answer {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => {
                self.broken().await;
                Err(Refused::StoreDown(e.to_string()))
            }
            Err(_) => {
                self.broken().await;
                Err(Refused::StoreDown("no answer in time".into()))
            }
        }
    }

    /// Takes one request from `key`'s bucket of `burst` requests refilled
    /// one per `period`.
    pub async fn take(&self, key: &str, period: Duration, burst: u32) -> Result<(), Refused> {
        match self
            .run(
                &self.scripts.take,
                key,
                &[micros(period), u64::from(burst.max(1))],
            )
            .await?
        {
            0 => Ok(()),
            wait => Err(Refused::Wait(Duration::from_micros(wait.max(1) as u64))),
        }
    }

    /// How long `key`'s failure bucket must wait, if it must, without
    /// spending from it.
    pub async fn blocked(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
    ) -> Result<Option<Duration>, Refused> {
        let wait = self
            .run(
                &self.scripts.peek,
                key,
                &[micros(period), u64::from(burst.max(1))],
            )
            .await?;
        Ok((wait > 0).then(|| Duration::from_micros(wait as u64)))
    }

    /// Counts one failure in `key`'s bucket.
    pub async fn record(&self, key: &str, period: Duration) -> Result<(), Refused> {
        self.run(&self.scripts.record, key, &[micros(period)])
            .await
            .map(drop)
    }

    /// Empties `key`'s bucket (a success forgives the failures).
    pub async fn clear(&self, key: &str) -> Result<(), Refused> {
        let mut conn = self.connection().await?;
        let answer: Result<redis::RedisResult<i64>, _> = tokio::time::timeout(
            self.timeout,
            redis::cmd("DEL").arg(key).query_async(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.broken().await;
                Err(Refused::StoreDown(e.to_string()))
            }
            Err(_) => {
                self.broken().await;
                Err(Refused::StoreDown("no answer in time".into()))
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The key of `ip`'s bucket of the limiter named `bucket`.
pub fn key(bucket: &str, ip: IpAddr) -> String {
    format!("{KEY_PREFIX}{bucket}:{ip}")
}

/// The key of an account's failed-login bucket (the email is hashed: no
/// address is stored in Redis).
pub fn account_key(email: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(email.as_bytes());
    format!("{KEY_PREFIX}login-account:{}", hex::encode(&digest[..16]))
}
