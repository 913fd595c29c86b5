//! Gatehouse Scanner: the door-staff desktop app. A thin Tauri 2 shell: the
//! window (`ui/`, static HTML/CSS/JS) calls the commands in [`commands`],
//! which forward to `scanner_core::App`; no logic lives here.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;

use anyhow::Context as _;
use clap::Parser;
use gate_node::frames::CameraConfig;
use gate_node::time::SystemClock;
use scanner_core::camera::{CameraInput, CameraRun};
use scanner_core::{App, SyncConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tauri::Manager;

/// Command-line options (each also an environment variable).
#[derive(Debug, Parser)]
#[command(version, about = "Gatehouse door-staff scanner")]
struct Args {
    /// Data folder (the device's store and settings).
    #[arg(long, env = "SCANNER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Local API address other gates push scans to.
    #[arg(long, env = "SCANNER_LISTEN", default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// A peer gate's local API URL (repeatable, or comma-separated).
    #[arg(long = "peer", env = "SCANNER_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// Cloud sync period, ms.
    #[arg(long, env = "SCANNER_CLOUD_INTERVAL_MS", default_value_t = 5_000)]
    cloud_interval_ms: u64,
    /// Longest wait between cloud attempts while offline, ms.
    #[arg(long, env = "SCANNER_CLOUD_BACKOFF_MAX_MS", default_value_t = 30_000)]
    cloud_backoff_max_ms: u64,
    /// Anti-entropy period with peers, ms.
    #[arg(long, env = "SCANNER_ANTI_ENTROPY_MS", default_value_t = 2_000)]
    anti_entropy_ms: u64,
    /// Repeat reads of one code within this are one scan, ms.
    #[arg(long, env = "SCANNER_DEBOUNCE_MS", default_value_t = 1_500)]
    debounce_ms: u64,
    /// Webcam index (`/dev/videoN`).
    #[arg(long, env = "SCANNER_CAMERA_INDEX", default_value_t = 0)]
    camera_index: u32,
    /// A folder of image files to use instead of the webcam (tests, replays).
    #[arg(long, env = "SCANNER_CAMERA_FRAMES")]
    camera_frames: Option<PathBuf>,
    /// Offset of local time for the screen, e.g. `+01:00` (default: the
    /// system's).
    #[arg(long, env = "SCANNER_UTC_OFFSET")]
    utc_offset: Option<String>,
}

/// What the commands share.
#[derive(Debug)]
pub struct Shared {
    app: App,
    camera: Mutex<Option<CameraRun>>,
    camera_input: CameraInput,
}

fn parse_offset(s: &str) -> Option<time::UtcOffset> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 4 {
        return None;
    }
    let h: i8 = digits[..2].parse().ok()?;
    let m: i8 = digits[2..].parse().ok()?;
    time::UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

/// The system's UTC offset, as `date +%z` tells it (the `time` crate cannot
/// read it safely once threads run).
fn local_offset(arg: Option<&str>) -> time::UtcOffset {
    if let Some(o) = arg.and_then(parse_offset) {
        return o;
    }
    std::process::Command::new("date")
        .arg("+%z")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| parse_offset(&s))
        .unwrap_or(time::UtcOffset::UTC)
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("gatehouse-scanner")
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SCANNER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let offset = local_offset(args.utc_offset.as_deref());
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let sync = SyncConfig {
        listen: args.listen,
        peers: args
            .peers
            .iter()
            .filter(|p| !p.trim().is_empty())
            .cloned()
            .collect(),
        cloud_interval_ms: args.cloud_interval_ms,
        cloud_backoff_max_ms: args.cloud_backoff_max_ms,
        anti_entropy_ms: args.anti_entropy_ms,
        debounce_ms: args.debounce_ms,
    };
    let app = App::open(&data_dir, Arc::new(SystemClock::new()), sync, offset)
        .with_context(|| format!("cannot open the data folder {}", data_dir.display()))?;
    let camera_input = match args.camera_frames {
        Some(dir) => CameraInput::Frames(dir),
        None => CameraInput::Webcam(CameraConfig {
            index: args.camera_index,
            ..CameraConfig::default()
        }),
    };
    tauri::Builder::default()
        .manage(Shared {
            app,
            camera: Mutex::new(None),
            camera_input,
        })
        .setup(|handle| {
            let shared = handle.state::<Shared>();
            if let Err(e) = tauri::async_runtime::block_on(shared.app.resume()) {
                // The window shows the setup screen and the error from there.
                tracing::error!(error = %e, "the enrolled device could not start");
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::sign_in,
            commands::enroll_for,
            commands::enroll_with_code,
            commands::scan,
            commands::search,
            commands::check_in_manually,
            commands::set_direction,
            commands::counts,
            commands::sync_state,
            commands::lock,
            commands::unlock,
            commands::set_pin,
            commands::camera_start,
            commands::camera_stop,
        ])
        .build(tauri::generate_context!())
        .context("cannot start the window")?
        .run(|handle, event| {
            if let tauri::RunEvent::Exit = event {
                handle.state::<Shared>().app.shutdown();
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_offset;
    use scanner_core::bindings::{COMMANDS, EVENTS};
    use std::collections::BTreeSet;

    fn manifest_file(name: &str) -> String {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
            .unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    #[test]
    fn declared_typed_and_granted_commands_are_the_same_list() {
        let typed: BTreeSet<String> = COMMANDS.iter().map(|c| c.0.to_owned()).collect();
        let build = manifest_file("build.rs");
        let declared: BTreeSet<String> = build
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('"') && l.ends_with("\","))
            .map(|l| l.trim_matches(|c| c == '"' || c == ',').to_owned())
            .collect();
        assert_eq!(
            declared, typed,
            "build.rs declares exactly the typed commands"
        );
        let caps: serde_json::Value =
            serde_json::from_str(&manifest_file("capabilities/main.json"))
                .expect("capability JSON");
        let granted: BTreeSet<String> = caps["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .filter_map(|p| {
                p.as_str()?
                    .strip_prefix("allow-")
                    .map(|c| c.replace('-', "_"))
            })
            .collect();
        assert_eq!(
            granted, typed,
            "the window is granted exactly the app's commands"
        );
        let events: BTreeSet<&str> = EVENTS.iter().map(|e| e.0).collect();
        assert_eq!(
            events,
            BTreeSet::from([
                crate::commands::CAMERA_SCAN_EVENT,
                crate::commands::CAMERA_PREVIEW_EVENT
            ]),
            "every emitted event is typed"
        );
    }

    #[test]
    fn offsets_parse_as_date_prints_them() {
        assert_eq!(
            parse_offset("+0100\n"),
            time::UtcOffset::from_hms(1, 0, 0).ok()
        );
        assert_eq!(
            parse_offset("-05:30"),
            time::UtcOffset::from_hms(-5, -30, 0).ok()
        );
        assert_eq!(parse_offset("junk"), None);
    }
}
