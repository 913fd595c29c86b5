//! Tauri's build step, with the app's commands declared so each one gets an
//! `allow-<command>` permission and `capabilities/main.json` can grant
//! exactly the ones the window uses (undeclared commands are refused).

/// Every command the shell registers (`src/commands.rs`).
const COMMANDS: &[&str] = &[
    "status",
    "sign_in",
    "enroll_for",
    "enroll_with_code",
    "scan",
    "search",
    "check_in_manually",
    "set_direction",
    "counts",
    "sync_state",
    "lock",
    "unlock",
    "set_pin",
    "camera_start",
    "camera_stop",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build step");
}
