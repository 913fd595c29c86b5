//! Configuration: defaults, then a TOML file, then `GATE_` environment
//! variables (nested keys with `__`, e.g. `GATE_SYNC__ANTI_ENTROPY_MS=500`).
//! No secrets live here: keys and tokens are in the store.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where `gate.db` lives.
    pub data_dir: PathBuf,
    /// Local API address (`/status`, `/peer/sync`, `/metrics`, ...).
    pub listen: SocketAddr,
    /// Peer gates' local API base URLs, e.g. `http://10.0.0.12:7300`.
    pub peers: Vec<String>,
    /// Cloud base URL (overrides the one stored at enrollment).
    pub cloud_url: Option<String>,
    /// Advertise and discover peers over mDNS (`_gatehouse._tcp.local.`).
    pub mdns: bool,
    /// Serve `POST /scan` (text in, decision out) for desktops and tests.
    pub scan_endpoint: bool,
    /// Repeat reads of one code within this many milliseconds are one scan.
    pub debounce_ms: u64,
    /// Trust the system clock (set when it is NTP-disciplined).
    pub trust_system_clock: bool,
    /// Operator name recorded with each scan (handheld scanners).
    pub operator: String,
    /// Sync timings.
    pub sync: SyncConfig,
    /// Where scans come from.
    pub source: SourceConfig,
    /// GPIO pins; deserialized by the actuator module into its own type.
    pub gpio: Option<serde_json::Value>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/gatehouse"),
            listen: SocketAddr::from(([0, 0, 0, 0], 7300)),
            peers: Vec::new(),
            cloud_url: None,
            mdns: true,
            scan_endpoint: false,
            debounce_ms: 2_000,
            trust_system_clock: false,
            operator: String::new(),
            sync: SyncConfig::default(),
            source: SourceConfig::default(),
            gpio: None,
        }
    }
}

/// Sync timings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncConfig {
    /// Timeout of one request to a peer.
    pub peer_timeout_ms: u64,
    /// Period of anti-entropy rounds with every peer.
    pub anti_entropy_ms: u64,
    /// Period of cloud sync when the cloud is reachable.
    pub cloud_interval_ms: u64,
    /// Longest backoff while the cloud is unreachable.
    pub cloud_backoff_max_ms: u64,
    /// Most records per sync message (at most 10,000).
    pub batch: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            peer_timeout_ms: 1_000,
            anti_entropy_ms: 5_000,
            cloud_interval_ms: 5_000,
            cloud_backoff_max_ms: 60_000,
            batch: 10_000,
        }
    }
}

/// Which scan source the daemon reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// None: scans arrive through `POST /scan` only.
    #[default]
    None,
    /// A V4L2 camera.
    Camera,
    /// Image files in a directory.
    Images,
    /// Text lines on standard input.
    Stdin,
    /// A serial barcode scanner.
    Serial,
}

/// Scan source selection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceConfig {
    /// Which source.
    pub kind: SourceKind,
    /// Device path (camera or serial port).
    pub device: Option<String>,
    /// Directory of frames.
    pub path: Option<PathBuf>,
}

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, the TOML file at `path` (if given, it must exist),
    /// then `GATE_` variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::figment(path)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The layered sources, for `--print-config` style inspection.
    pub fn figment(path: Option<&Path>) -> Figment {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            f = f.merge(Toml::file_exact(p));
        }
        f.merge(Env::prefixed("GATE_").split("__"))
    }

    /// Checks values no type can express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for p in &self.peers {
            if !(p.starts_with("http://") || p.starts_with("https://")) {
                return Err(ConfigError(format!("peer {p:?} is not an http(s) URL")));
            }
        }
        if self.sync.batch == 0 || self.sync.batch > sync_protocol::sync::MAX_RECORDS_PER_MESSAGE {
            return Err(ConfigError("sync.batch must be 1..=10000".into()));
        }
        if self.sync.anti_entropy_ms == 0 || self.sync.cloud_interval_ms == 0 {
            return Err(ConfigError("sync periods must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
// figment::Jail's closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_env_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gate.toml",
                r#"
                data_dir = "/tmp/g"
                listen = "127.0.0.1:7400"
                peers = ["http://127.0.0.1:7401"]
                mdns = false
                [sync]
                anti_entropy_ms = 250
                [source]
                kind = "images"
                path = "/frames"
                [gpio]
                relay = 17
                "#,
            )?;
            jail.set_env("GATE_DEBOUNCE_MS", "900");
            jail.set_env("GATE_SYNC__BATCH", "500");
            let c = Config::load(Some(Path::new("gate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 7400);
            assert_eq!(c.peers, vec!["http://127.0.0.1:7401".to_string()]);
            assert_eq!((c.sync.anti_entropy_ms, c.sync.batch), (250, 500));
            assert_eq!(c.debounce_ms, 900);
            assert_eq!(c.source.kind, SourceKind::Images);
            assert_eq!(c.gpio.unwrap()["relay"], 17);
            assert_eq!(c.sync.peer_timeout_ms, 1_000, "unset keys keep defaults");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_clear_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "listen = 'not an address'")?;
            let err = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(err.to_string().contains("listen"), "{err}");
            let c = Config {
                peers: vec!["10.0.0.1:7300".into()],
                ..Config::default()
            };
            assert!(c.validate().is_err());
            Ok(())
        });
    }
}
