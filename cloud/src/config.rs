//! Configuration: defaults, then a TOML file, then `CLOUD_` environment
//! variables (`CLOUD_SERVER__BIND`, `CLOUD_DATABASE__URL`, ... with `__`
//! between levels). One struct per subsystem. Secrets are [`Secret`]s: they
//! print as `<redacted>` in `Debug` and in the `cloud config` output.
//!
//! A variable's value is taken as written: a string setting (a secret made
//! of digits, `0042`, `true`, `+15551234567`) gets exactly that text, and a
//! number or bool setting reads its number or bool from it. Only the list
//! settings ([`LISTS`]) are parsed, as `[a, b]`.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A value that must never appear in logs or printed configuration.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Secret {
    /// What printed configuration shows: `unset` when empty (so an
    /// operator sees what is missing), `<redacted>` otherwise.
    pub fn shown(&self) -> &'static str {
        if self.0.is_empty() {
            "unset"
        } else {
            "<redacted>"
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

/// Prints an optional secret as `unset` when absent (TOML would otherwise
/// leave the key out, and the operator could not tell it is missing).
fn shown_option<S: serde::Serializer>(v: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_ref().map_or("unset", Secret::shown))
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where generated secrets (when none are configured) and the default
    /// SQLite database live.
    pub data_dir: PathBuf,
    /// HTTP server.
    pub server: ServerConfig,
    /// Database.
    pub database: DatabaseConfig,
    /// Identity: tokens and password hashing.
    pub auth: AuthConfig,
    /// Encryption at rest of organizer and event signing keys.
    pub keys: KeysConfig,
    /// Per-client rate limits.
    pub rate_limit: RateLimitConfig,
    /// Log format and filter.
    pub log: LogConfig,
    /// Online sales: holds, purchase limits, resale.
    pub commerce: crate::orders::config::CommerceConfig,
    /// Payment providers (Stripe) and their webhook.
    pub payments: crate::payments::config::PaymentsConfig,
    /// The EVM chain: node, minter key, confirmations (empty: no chain).
    pub chain: crate::chain::config::ChainConfig,
    /// Email, SMS, organizer webhooks and their outbox.
    pub notifications: crate::notifications::config::NotificationsConfig,
    /// The web console: Stripe.js for the shop, the fleet's offline threshold.
    pub console: crate::console::config::ConsoleConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            keys: KeysConfig::default(),
            rate_limit: RateLimitConfig::default(),
            log: LogConfig::default(),
            commerce: Default::default(),
            payments: Default::default(),
            chain: Default::default(),
            notifications: Default::default(),
            console: Default::default(),
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: String,
    /// Requests taking longer are answered 408.
    pub request_timeout_ms: u64,
    /// Largest accepted request body, bytes.
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS (exact match, e.g. `https://app.example.com`).
    pub cors_allowed_origins: Vec<String>,
    /// Take the client address from `X-Forwarded-For`/`Forwarded` (only
    /// behind a trusted load balancer).
    pub trust_forwarded_for: bool,
    /// How often buffered event-page views are written to the database.
    pub view_flush_ms: u64,
    /// A request head must arrive whole within this; idle keep-alive
    /// connections are closed after it too.
    pub header_timeout_ms: u64,
    /// Connections open at once (keep it under the process's file limit,
    /// `LimitNOFILE`, minus the database pool).
    pub max_connections: usize,
    /// Connections open at once from one client address; unset (the
    /// default) behind a load balancer, where every connection comes from
    /// its address.
    pub per_address: Option<usize>,
    /// How many replicas serve this database together (1: a single node).
    /// Above 1, start-up refuses generated secrets: every replica must
    /// sign and seal with the same configured keys.
    pub replicas: u32,
}

impl ServerConfig {
    /// The connection limits these settings give; 64 connections beyond
    /// `max_connections` stay reserved for this host (a local health probe).
    pub fn limits(&self) -> http_guard::Limits {
        http_guard::Limits {
            header_read_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            // The router's own timeout answers first (in its error shape);
            // this one only bounds a request the router never sees whole.
            request_timeout: std::time::Duration::from_millis(
                self.request_timeout_ms.saturating_add(1_000),
            ),
            max_connections: self.max_connections,
            reserve: 64,
            per_address: self.per_address,
            drain: std::time::Duration::from_secs(10),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:3000".into(),
            request_timeout_ms: 10_000,
            body_limit_bytes: 64 * 1024,
            cors_allowed_origins: Vec::new(),
            trust_forwarded_for: false,
            view_flush_ms: 1_000,
            header_timeout_ms: 10_000,
            max_connections: 4_096,
            per_address: None,
            replicas: 1,
        }
    }
}

/// Database settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://...` or `sqlite://...`; empty means SQLite in `data_dir`.
    pub url: Secret,
    /// Pool size.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            max_connections: 16,
        }
    }
}

/// Identity settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 key for access tokens (at least 32 bytes). Empty: a random key
    /// is generated once and kept in `data_dir/jwt.key` (single node only).
    pub jwt_secret: Secret,
    /// Access-token lifetime.
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime.
    pub refresh_ttl_secs: u64,
    /// Created at start-up as an admin if no account has this email.
    pub bootstrap_admin_email: Option<String>,
    /// Password of the bootstrap admin.
    #[serde(serialize_with = "shown_option")]
    pub bootstrap_admin_password: Option<Secret>,
    /// Most argon2 hashes computed at once (each takes 19 MiB).
    pub max_concurrent_hashes: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: Secret::default(),
            access_ttl_secs: 3_600,
            refresh_ttl_secs: 7 * 24 * 3_600,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            max_concurrent_hashes: 4,
        }
    }
}

/// Key-encryption settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// 64 hex digits: the ChaCha20-Poly1305 key that seals signing keys.
    /// Empty: generated once into `data_dir/master.key` (single node only).
    pub master_key: Secret,
}

/// Rate limits, requests per minute per client address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off switch (benchmarks, or a gateway in front that already limits).
    pub enabled: bool,
    /// Every request.
    pub global_per_minute: u32,
    /// `POST /auth/register`.
    pub auth_per_minute: u32,
    /// `POST /auth/refresh` and `POST /auth/logout` (a separate bucket from
    /// registration and login: they carry a token, not a guess).
    pub refresh_per_minute: u32,
    /// Failed logins per client address (successful logins do not count,
    /// so staff behind one NAT address are not locked out).
    pub login_failures_per_address_per_minute: u32,
    /// Failed logins per account, from any address.
    pub login_failures_per_account_per_minute: u32,
    /// `/tickets*`, `/orders*`, `/market*` (payments and orders).
    pub tickets_per_minute: u32,
    /// Where the request buckets live: `memory` (this process, the
    /// default) or `redis` (shared by every replica: set it when several
    /// replicas serve behind one balancer).
    pub store: LimiterStore,
    /// `redis://host:port/db` when `store = "redis"`.
    pub redis_url: Secret,
    /// How long a Redis round trip may take; slower, or Redis down, and the
    /// limited routes answer 503 `rate_limiter_unavailable` (fail closed).
    pub redis_timeout_ms: u64,
}

/// Where rate-limit buckets are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimiterStore {
    /// In the process: each replica counts alone.
    #[default]
    Memory,
    /// In Redis: every replica spends from the same buckets.
    Redis,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            global_per_minute: 100,
            auth_per_minute: 5,
            refresh_per_minute: 60,
            login_failures_per_address_per_minute: 20,
            login_failures_per_account_per_minute: 5,
            tickets_per_minute: 30,
            store: LimiterStore::Memory,
            redis_url: Secret::default(),
            redis_timeout_ms: 250,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` or `pretty`.
    pub format: String,
    /// `tracing` env-filter directives; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "pretty".into(),
            filter: "info,sqlx=warn".into(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Could not be read or parsed.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of range.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Top-level keys, as `CLOUD_<KEY>` or `CLOUD_<KEY>__<FIELD>` variables.
const SECTIONS: &[&str] = &[
    "data_dir",
    "server",
    "database",
    "auth",
    "keys",
    "rate_limit",
    "log",
    "commerce",
    "payments",
    "chain",
    "notifications",
    "console",
];

/// Settings that are lists: their `CLOUD_*` value is parsed (`[a, b]`).
/// Every other value stays the string it is.
const LISTS: &[&str] = &[
    "server.cors_allowed_origins",
    "notifications.webhooks.allow_networks",
];

/// The `CLOUD_*` variables with their values as written.
///
/// figment's `Env` parses every value (`0042` becomes the number 42, `true`
/// a bool), so a digits-only secret failed to load as a string and leading
/// zeros were lost. Here a value is a string (a list for [`LISTS`]), and the
/// lossy extraction (`Figment::extract_lossy`) reads numbers and bools from
/// strings where the setting is one.
struct VerbatimEnv(Env);

impl Provider for VerbatimEnv {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut fig = Figment::new();
        for (key, raw) in self.0.iter() {
            let value = if LISTS.contains(&key.as_str()) {
                raw.parse::<Value>().unwrap_or_else(|e| match e {})
            } else {
                Value::from(raw)
            };
            fig = fig.merge(Serialized::default(key.as_str(), value));
        }
        fig.data()
    }
}

impl Config {
    /// Defaults, then `file` (if given), then `CLOUD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // Defaults come from `#[serde(default)]` (a serialized-defaults
        // provider would carry the redacted form of secrets).
        let mut fig = Figment::new();
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        // Only variables naming a known section: other tools also use the
        // CLOUD_ prefix (e.g. CLOUD_SDK_VERSION), and those are not ours.
        fig = fig.merge(VerbatimEnv(
            Env::prefixed("CLOUD_")
                .filter(|key| {
                    let section = key.as_str().split("__").next().unwrap_or_default();
                    SECTIONS.iter().any(|s| section.eq_ignore_ascii_case(s))
                })
                .split("__"),
        ));
        // Lossy: a number or bool setting accepts the string of one (every
        // variable is a string, see `VerbatimEnv`); strings stay as written.
        let config: Config = fig.extract_lossy().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.rate_limit.enabled
            && (self.rate_limit.global_per_minute == 0
                || self.rate_limit.auth_per_minute == 0
                || self.rate_limit.refresh_per_minute == 0
                || self.rate_limit.login_failures_per_address_per_minute == 0
                || self.rate_limit.login_failures_per_account_per_minute == 0
                || self.rate_limit.tickets_per_minute == 0)
        {
            return bad("rate limits must be at least 1 per minute (or set enabled = false)");
        }
        if !self.auth.jwt_secret.expose().is_empty() && self.auth.jwt_secret.expose().len() < 32 {
            return bad("auth.jwt_secret must be at least 32 bytes");
        }
        if self.auth.access_ttl_secs == 0 || self.auth.refresh_ttl_secs == 0 {
            return bad("token lifetimes must be positive");
        }
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes must be at least 1024");
        }
        if self.server.header_timeout_ms < 100 {
            return bad("server.header_timeout_ms must be at least 100");
        }
        if self.server.max_connections == 0 || self.server.per_address == Some(0) {
            return bad("server.max_connections and server.per_address must be at least 1");
        }
        if self.server.replicas == 0 {
            return bad("server.replicas must be at least 1");
        }
        if self.rate_limit.store == LimiterStore::Redis {
            let url = self.rate_limit.redis_url.expose();
            if !["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return bad(
                    "rate_limit.redis_url must be a redis:// URL when rate_limit.store = \"redis\"",
                );
            }
            if self.rate_limit.redis_timeout_ms == 0 {
                return bad("rate_limit.redis_timeout_ms must be positive");
            }
        }
        self.commerce.validate().map_err(ConfigError::Invalid)?;
        self.payments.validate().map_err(ConfigError::Invalid)?;
        self.chain.validate().map_err(ConfigError::Invalid)?;
        self.notifications
            .validate()
            .map_err(ConfigError::Invalid)?;
        self.console.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// Whether this process is configured as one of several replicas (a
    /// replica count above 1, or rate limits shared through Redis): then
    /// no key may be generated per process.
    pub fn is_replicated(&self) -> bool {
        self.server.replicas > 1 || self.rate_limit.store == LimiterStore::Redis
    }

    /// The database URL, defaulting to SQLite in `data_dir`.
    pub fn database_url(&self) -> String {
        let url = self.database.url.expose();
        if url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("cloud.db").display()
            )
        } else {
            url.to_string()
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_output() {
        let mut c = Config::default();
        c.auth.jwt_secret = Secret::new("super-secret-value-that-is-long-enough");
        c.database.url = Secret::new("postgres://u:pw@h/db");
        c.payments.stripe_secret_key = Secret::new("sk_test_do_not_print");
        c.payments.webhook_secret = Secret::new("whsec_do_not_print");
        c.notifications.email.password = Secret::new("smtp_do_not_print");
        c.notifications.sms.auth_token = Secret::new("twilio_do_not_print");
        let printed = format!("{c:?}{}", c.to_redacted_toml());
        assert!(!printed.contains("super-secret"), "{printed}");
        assert!(!printed.contains("pw@h"), "{printed}");
        assert!(!printed.contains("do_not_print"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn printed_secrets_say_unset_or_redacted() {
        let mut c = Config::default();
        c.payments.stripe_secret_key = Secret::new("sk_test_do_not_print");
        let printed = c.to_redacted_toml();
        let line = |key: &str| {
            printed
                .lines()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap_or_else(|| panic!("{key} is printed: {printed}"))
                .to_string()
        };
        assert_eq!(
            line("stripe_secret_key"),
            "stripe_secret_key = \"<redacted>\""
        );
        assert_eq!(
            line("webhook_secret"),
            "webhook_secret = \"unset\"",
            "empty is not redacted"
        );
        assert_eq!(line("jwt_secret"), "jwt_secret = \"unset\"");
        assert_eq!(
            line("bootstrap_admin_password"),
            "bootstrap_admin_password = \"unset\""
        );
        c.auth.bootstrap_admin_password = Some(Secret::new("admin-password-1"));
        assert!(
            c.to_redacted_toml()
                .contains("bootstrap_admin_password = \"<redacted>\"")
        );
        assert_eq!(format!("{:?}", Secret::default()), "unset");
    }

    #[test]
    fn every_section_can_be_set_from_the_environment() {
        let doc: toml::Table = Config::default().to_redacted_toml().parse().unwrap();
        for key in doc.keys() {
            assert!(
                SECTIONS.contains(&key.as_str()),
                "CLOUD_{}* variables would be ignored: add {key:?} to SECTIONS",
                key.to_uppercase()
            );
        }
    }

    /// `Config::load(None)` with exactly these `CLOUD_*` variables added
    /// (figment's `Jail` sets them and restores the environment after).
    #[allow(
        clippy::result_large_err,
        reason = "Jail's closure type returns figment's own Result"
    )]
    fn load_with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(Config::load(None));
            Ok(())
        });
        out.expect("the jail ran")
    }

    #[test]
    fn a_digits_only_secret_from_the_environment_is_its_digits() {
        let jwt = "12345678901234567890123456789012345";
        let master = "0123456789".repeat(6) + "0123";
        let c = load_with(&[
            ("CLOUD_AUTH__JWT_SECRET", jwt),
            ("CLOUD_KEYS__MASTER_KEY", &master),
            ("CLOUD_PAYMENTS__WEBHOOK_SECRET", "4242"),
            ("CLOUD_NOTIFICATIONS__SMS__AUTH_TOKEN", "-17"),
        ])
        .expect("digits are a valid secret");
        assert_eq!(c.auth.jwt_secret.expose(), jwt);
        assert_eq!(c.keys.master_key.expose(), master);
        assert_eq!(c.payments.webhook_secret.expose(), "4242");
        assert_eq!(c.notifications.sms.auth_token.expose(), "-17");
    }

    #[test]
    fn true_and_other_literals_stay_strings() {
        let c = load_with(&[
            ("CLOUD_NOTIFICATIONS__EMAIL__USERNAME", "true"),
            ("CLOUD_NOTIFICATIONS__EMAIL__PASSWORD", "false"),
            ("CLOUD_NOTIFICATIONS__EMAIL__FROM", "1.50"),
            ("CLOUD_NOTIFICATIONS__SMS__FROM", "[not a list]"),
            ("CLOUD_LOG__FILTER", "\"quoted\""),
        ])
        .expect("loads");
        assert_eq!(c.notifications.email.username, "true");
        assert_eq!(c.notifications.email.password.expose(), "false");
        assert_eq!(c.notifications.email.from, "1.50");
        assert_eq!(c.notifications.sms.from, "[not a list]");
        assert_eq!(c.log.filter, "\"quoted\"", "quotes are part of the value");
    }

    #[test]
    fn leading_zeros_and_signs_are_kept() {
        let jwt = "00000000001234567890123456789012345";
        let c = load_with(&[
            ("CLOUD_AUTH__JWT_SECRET", jwt),
            ("CLOUD_AUTH__BOOTSTRAP_ADMIN_PASSWORD", "000123"),
            ("CLOUD_NOTIFICATIONS__SMS__FROM", "+0015551234567"),
        ])
        .expect("loads");
        assert_eq!(c.auth.jwt_secret.expose(), jwt);
        assert_eq!(
            c.auth.bootstrap_admin_password.as_ref().map(Secret::expose),
            Some("000123")
        );
        assert_eq!(c.notifications.sms.from, "+0015551234567");
    }

    #[test]
    fn numbers_bools_and_lists_still_parse_from_the_environment() {
        let c = load_with(&[
            ("CLOUD_SERVER__REQUEST_TIMEOUT_MS", "5000"),
            ("CLOUD_SERVER__PER_ADDRESS", "8"),
            ("CLOUD_RATE_LIMIT__ENABLED", "false"),
            ("CLOUD_CHAIN__CHAIN_ID", "1337"),
            (
                "CLOUD_SERVER__CORS_ALLOWED_ORIGINS",
                "[\"https://a.test\", \"https://b.test\"]",
            ),
            (
                "CLOUD_NOTIFICATIONS__WEBHOOKS__ALLOW_NETWORKS",
                "[127.0.0.0/8]",
            ),
        ])
        .expect("loads");
        assert_eq!(c.server.request_timeout_ms, 5000);
        assert_eq!(c.server.per_address, Some(8));
        assert!(!c.rate_limit.enabled);
        assert_eq!(c.chain.chain_id, 1337);
        assert_eq!(
            c.server.cors_allowed_origins,
            ["https://a.test", "https://b.test"]
        );
        assert_eq!(
            c.notifications.webhooks.allow_networks,
            ["127.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
        );
        let bad = load_with(&[("CLOUD_SERVER__REQUEST_TIMEOUT_MS", "soon")]);
        assert!(bad.is_err(), "a number setting still refuses a word");
    }

    #[test]
    fn every_list_setting_is_parsed_from_the_environment() {
        fn lists(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = format!("{prefix}{k}");
                match v {
                    toml::Value::Array(_) => out.push(path),
                    toml::Value::Table(t) => lists(&format!("{path}."), t, out),
                    _ => {}
                }
            }
        }
        let doc: toml::Table = Config::default().to_redacted_toml().parse().unwrap();
        let mut found = Vec::new();
        lists("", &doc, &mut found);
        for path in &found {
            assert!(
                LISTS.contains(&path.as_str()),
                "{path} is a list: add it to LISTS, or its variable is read as one string"
            );
        }
        assert_eq!(
            found.len(),
            LISTS.len(),
            "LISTS names only lists: {found:?}"
        );
    }

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cloud.toml");
        std::fs::write(&file, "[server]\nbind = \"0.0.0.0:8080\"\n").unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:8080");
        assert_eq!(c.rate_limit.auth_per_minute, 5);
        std::fs::write(&file, "[server]\nbindd = 1\n").unwrap();
        assert!(
            Config::load(Some(&file)).is_err(),
            "unknown keys are refused"
        );
    }
}
