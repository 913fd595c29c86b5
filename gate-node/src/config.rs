//! Configuration: defaults, then a TOML file, then `GATE_` environment
//! variables (nested keys with `__`, e.g. `GATE_SYNC__ANTI_ENTROPY_MS=500`).
//! No secrets live here: keys and tokens are in the store.
//!
//! [`Config::load`] also validates what no type can express (peer URLs,
//! source paths, decoder names, GPIO pins), so a mistyped config stops every
//! command with a clear message instead of surfacing at the first scan.

use crate::actuator::GpioConfig;
use crate::frames::CameraConfig;
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
    /// Repeat reads of one code less than this many milliseconds apart are
    /// one scan (0: off).
    pub debounce_ms: u64,
    /// Trust the system clock (set when it is NTP-disciplined).
    pub trust_system_clock: bool,
    /// Operator name recorded with each scan (handheld scanners).
    pub operator: String,
    /// Sync timings.
    pub sync: SyncConfig,
    /// Limits of the local API (a venue LAN is hostile).
    pub api: ApiConfig,
    /// Where scans come from.
    pub source: SourceConfig,
    /// Gate hardware (relay, lights, buzzer); without it decisions are only
    /// logged and returned.
    pub gpio: Option<GpioConfig>,
    /// Refuse to start when `[gpio]` is set but there is no GPIO hardware
    /// (instead of running without relay and lights).
    pub require_gpio: bool,
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
            debounce_ms: crate::debounce::DEFAULT_WINDOW_MS,
            trust_system_clock: false,
            operator: String::new(),
            sync: SyncConfig::default(),
            api: ApiConfig::default(),
            source: SourceConfig::default(),
            gpio: None,
            require_gpio: false,
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

/// Limits of the local API: a stranger on the LAN must not be able to stop
/// a gate from answering its peers and its own status probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// A request head must arrive whole within this; an idle keep-alive
    /// connection is closed after it too.
    pub header_timeout_ms: u64,
    /// From a complete head to the answer (body included); past it: 408.
    pub request_timeout_ms: u64,
    /// Connections open at once, from anyone.
    pub max_connections: usize,
    /// Further connections kept for this gate itself (127.0.0.1, ::1) and
    /// its known peers once `max_connections` are open.
    pub reserve: usize,
    /// Connections open at once from one address that is neither.
    pub per_address: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            header_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            max_connections: 256,
            reserve: 64,
            per_address: 32,
        }
    }
}

impl ApiConfig {
    /// The server limits these settings give.
    pub fn limits(&self) -> http_guard::Limits {
        use std::time::Duration;
        http_guard::Limits {
            header_read_timeout: Duration::from_millis(self.header_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_connections: self.max_connections,
            reserve: self.reserve,
            per_address: Some(self.per_address),
            drain: Duration::from_secs(5),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.header_timeout_ms < 100 || self.request_timeout_ms < 100 {
            return Err(ConfigError(
                "api.header_timeout_ms and api.request_timeout_ms must be at least 100".into(),
            ));
        }
        if self.max_connections == 0 || self.per_address == 0 {
            return Err(ConfigError(
                "api.max_connections and api.per_address must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Which scan source the daemon reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// None: scans arrive through `POST /scan` only.
    #[default]
    None,
    /// A V4L2 camera (`source.camera`).
    Camera,
    /// An image file or a directory of frames (`source.path`).
    Images,
    /// Text lines on standard input (a keyboard-wedge scanner, a pipe).
    Stdin,
    /// A serial or HID-POS barcode scanner (`source.device`).
    Serial,
    /// Text lines from a named pipe (`source.path`, made with `mkfifo`):
    /// writers may come and go, the pipe is read until the daemon stops.
    Fifo,
}

/// Scan source selection (the `[source]` table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Which source.
    pub kind: SourceKind,
    /// QR decoder for camera and image frames, by name: `rxing` (default,
    /// measured best), `rqrr`, `rxing+rqrr`, `gate` (rxing, then repairs of
    /// a code-like region: see `decode_attempts`).
    pub decoder: String,
    /// The `gate` decoder's budget: repair attempts per frame after the
    /// cheap pass found nothing (0 to 16; 0 is plain rxing, for weak
    /// hardware). Each costs about one decode of the code's region.
    pub decode_attempts: usize,
    /// Serial scanner device (`kind = "serial"`), e.g. `/dev/ttyACM0`.
    pub device: Option<PathBuf>,
    /// An image file or a directory of frames (`kind = "images"`), or the
    /// FIFO (`kind = "fifo"`).
    pub path: Option<PathBuf>,
    /// `kind = "images"` on a directory: keep watching it and scan each new
    /// frame as it arrives (polled every `watch_poll_ms`) instead of ending
    /// after the frames already there.
    pub watch: bool,
    /// Poll interval of a watched directory, in milliseconds (10 to 10000).
    pub watch_poll_ms: u64,
    /// Camera index, resolution and rate (`kind = "camera"`).
    pub camera: CameraConfig,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceKind::None,
            decoder: crate::decode::DEFAULT_DECODER.to_owned(),
            decode_attempts: crate::decode::DEFAULT_ATTEMPTS,
            device: None,
            path: None,
            watch: false,
            watch_poll_ms: 200,
            camera: CameraConfig::default(),
        }
    }
}

impl SourceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if crate::decode::decoder_by_name(&self.decoder).is_none() {
            return Err(ConfigError(format!(
                "source.decoder {:?} is not one of {:?}",
                self.decoder,
                crate::decode::decoder_names()
            )));
        }
        if self.decode_attempts > crate::decode::MAX_ATTEMPTS {
            return Err(ConfigError(format!(
                "source.decode_attempts {} is more than {}: lower it (each attempt is one more decode of a frame's code region)",
                self.decode_attempts,
                crate::decode::MAX_ATTEMPTS
            )));
        }
        if !(10..=10_000).contains(&self.watch_poll_ms) {
            return Err(ConfigError(format!(
                "source.watch_poll_ms {} is not between 10 and 10000",
                self.watch_poll_ms
            )));
        }
        if self.watch && self.kind != SourceKind::Images {
            return Err(ConfigError(
                "source.watch = true is for source.kind = \"images\" on a directory: \
                 set kind = \"images\" or remove source.watch"
                    .into(),
            ));
        }
        match self.kind {
            SourceKind::Images if self.path.is_none() => Err(ConfigError(
                "source.kind = \"images\" needs source.path (an image file or a directory of frames)"
                    .into(),
            )),
            SourceKind::Fifo if self.path.is_none() => Err(ConfigError(
                "source.kind = \"fifo\" needs source.path (a FIFO made with mkfifo)".into(),
            )),
            SourceKind::Serial if self.device.is_none() => Err(ConfigError(
                "source.kind = \"serial\" needs source.device (e.g. /dev/ttyACM0)".into(),
            )),
            SourceKind::Camera => self
                .camera
                .validate()
                .map_err(|e| ConfigError(format!("source.camera: {e}"))),
            _ => Ok(()),
        }
    }
}

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, the TOML file at `path` (if given, it must exist),
    /// then `GATE_` variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = Self::figment(path)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
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
        self.api.validate()?;
        for p in &self.peers {
            if !(p.starts_with("http://") || p.starts_with("https://")) {
                return Err(ConfigError(format!("peer {p:?} is not an http(s) URL")));
            }
        }
        if let Some(url) = &self.cloud_url {
            crate::cloud::check_base_url(url)
                .map_err(|e| ConfigError(format!("cloud_url: {e}")))?;
        }
        if self.sync.batch == 0 || self.sync.batch > sync_protocol::sync::MAX_RECORDS_PER_MESSAGE {
            return Err(ConfigError("sync.batch must be 1..=10000".into()));
        }
        if self.sync.anti_entropy_ms == 0 || self.sync.cloud_interval_ms == 0 {
            return Err(ConfigError("sync periods must be positive".into()));
        }
        self.source.validate()?;
        match &self.gpio {
            Some(gpio) => gpio
                .validate()
                .map_err(|e| ConfigError(format!("gpio: {e}")))?,
            None if self.require_gpio => {
                return Err(ConfigError(
                    "require_gpio = true needs a [gpio] table with the pin numbers".into(),
                ));
            }
            None => {}
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
                relay_pin = 5
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
            let gpio = c.gpio.expect("a [gpio] table");
            assert_eq!(gpio.relay_pin, 5);
            assert_eq!(
                gpio.green_pin,
                GpioConfig::default().green_pin,
                "unset pins keep the default wiring"
            );
            assert_eq!(c.source.decoder, "rxing", "the measured-best decoder");
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

    #[test]
    fn the_shipped_pi_config_loads() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gate.toml",
                include_str!("../../images/gate-node/gate.toml"),
            )?;
            let c = Config::load(Some(Path::new("gate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.source.kind, SourceKind::Camera);
            assert_eq!(c.source.camera, CameraConfig::default());
            assert_eq!(
                c.gpio,
                Some(GpioConfig::default()),
                "the image's wiring is the documented default"
            );
            assert!(c.require_gpio, "a Pi gate refuses to run without its relay");
            Ok(())
        });
    }

    #[test]
    fn the_shipped_desktop_config_loads_without_pi_hardware() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gate.toml",
                include_str!("../../images/gate-node/gate.desktop.toml"),
            )?;
            let c = Config::load(Some(Path::new("gate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.gpio, None, "no relay on a desktop");
            assert!(!c.require_gpio);
            assert_eq!(c.source.kind, SourceKind::Stdin);
            assert!(c.data_dir.is_relative(), "no /var/lib on a desktop");
            assert!(c.listen.ip().is_loopback());
            Ok(())
        });
    }

    /// Loads `toml` and checks the error message names `key`.
    fn refused(toml: &str, key: &str) {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gate.toml", toml)?;
            let err = Config::load(Some(Path::new("gate.toml")))
                .expect_err("an invalid config is refused at load")
                .to_string();
            assert!(
                err.contains(key),
                "{toml:?}: the message names {key}: {err}"
            );
            Ok(())
        });
    }

    #[test]
    fn source_and_gpio_mistakes_are_refused_at_load() {
        refused("[source]\nkind = \"images\"", "source.path");
        refused("[source]\nkind = \"serial\"", "source.device");
        refused("[source]\nkind = \"webcam\"", "kind");
        refused("[source]\ndecoder = \"zbar\"", "rxing");
        refused("[source]\ndecode_attempts = 17", "source.decode_attempts");
        refused(
            "[source]\nkind = \"camera\"\n[source.camera]\nwidth = 0",
            "source.camera",
        );
        refused("[source]\nfolder = \"/frames\"", "folder");
        refused("[source]\nkind = \"fifo\"", "source.path");
        refused("[source]\nkind = \"stdin\"\nwatch = true", "source.kind");
        refused(
            "[source]\nkind = \"images\"\npath = \"f\"\nwatch = true\nwatch_poll_ms = 0",
            "source.watch_poll_ms",
        );
        refused("[gpio]\nrelay_pin = 27\ngreen_pin = 27", "gpio");
        refused("[gpio]\nrealy_pin = 5", "realy_pin");
        refused("require_gpio = true", "[gpio]");
        refused("cloud_url = \"127.0.0.1:3902\"", "cloud_url");
        refused("[gpio]\nbuzzer_pin = \"off\"", "buzzer_pin");
    }

    #[test]
    fn a_gate_without_a_buzzer_says_none() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gate.toml", "[gpio]\nbuzzer_pin = \"none\"")?;
            let c = Config::load(Some(Path::new("gate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.gpio.map(|g| g.buzzer_pin), Some(None));
            jail.create_file("gate.toml", "[gpio]\nbuzzer_pin = 5")?;
            let c = Config::load(Some(Path::new("gate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.gpio.map(|g| g.buzzer_pin), Some(Some(5)));
            Ok(())
        });
    }
}
