//! The TypeScript declarations of every value crossing the Tauri bridge,
//! generated from the Rust types with ts-rs. `ui/bindings.d.ts` is this
//! output checked in; the test below fails when it is stale (regenerate with
//! `SCANNER_BLESS=1 cargo nextest run -p scanner-core bindings`).

use crate::view::*;
use ts_rs::TS;

/// Every command of the shell: name, arguments (TypeScript, camelCase as the
/// window passes them) and answer type. The shell's tests check this list
/// against `build.rs` and `capabilities/main.json`.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("status", "{}", "AppStatus"),
    (
        "sign_in",
        "{ cloudUrl: string, email: string, password: string }",
        "SignedIn",
    ),
    ("enroll_for", "{ choice: GateChoice }", "AppStatus"),
    (
        "enroll_with_code",
        "{ cloudUrl: string, code: string, operator: string, pin: string }",
        "AppStatus",
    ),
    ("scan", "{ text: string }", "ScanView"),
    ("search", "{ query: string }", "SearchResults"),
    (
        "check_in_manually",
        "{ ticketId: string, reason: string }",
        "ScanView",
    ),
    (
        "set_direction",
        "{ direction: \"entry\" | \"exit\" }",
        "AppStatus",
    ),
    ("counts", "{}", "Counts"),
    ("sync_state", "{}", "SyncView"),
    ("lock", "{}", "AppStatus"),
    ("unlock", "{ pin: string }", "AppStatus"),
    ("set_pin", "{ pin: string }", "AppStatus"),
    ("camera_start", "{}", "boolean"),
    ("camera_stop", "{}", "boolean"),
];

/// Events the shell emits: name and payload type.
pub const EVENTS: &[(&str, &str)] = &[
    ("camera-scan", "ScanView | CommandError"),
    ("camera-preview", "string"),
];

/// The declarations, one `export type` per value type, then the command and
/// event maps (every command rejects with a `CommandError`).
pub fn typescript() -> String {
    let cfg = ts_rs::Config::default();
    let decls = [
        Verdict::decl(&cfg),
        ScanView::decl(&cfg),
        AttendeeView::decl(&cfg),
        SearchResults::decl(&cfg),
        GateCount::decl(&cfg),
        Counts::decl(&cfg),
        PeerView::decl(&cfg),
        SyncView::decl(&cfg),
        Role::decl(&cfg),
        Phase::decl(&cfg),
        AppStatus::decl(&cfg),
        EventChoice::decl(&cfg),
        SignedIn::decl(&cfg),
        GateChoice::decl(&cfg),
        CommandError::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from scanner-app/core/src/view.rs by scanner_core::bindings; do not edit.\n\n",
    );
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.push_str("/** Every command: its arguments and its answer. */\nexport type Commands = {\n");
    for (name, args, answer) in COMMANDS {
        out.push_str(&format!(
            "  {name}: {{ args: {args}, answer: {answer} }},\n"
        ));
    }
    out.push_str("};\n\n/** Every event: its payload. */\nexport type Events = {\n");
    for (name, payload) in EVENTS {
        out.push_str(&format!("  \"{name}\": {payload},\n"));
    }
    out.push_str("};\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_bindings_match_the_rust_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/bindings.d.ts");
        let fresh = typescript();
        if std::env::var_os("SCANNER_BLESS").is_some() {
            std::fs::write(&path, &fresh).expect("write bindings");
        }
        let held = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            held == fresh,
            "scanner-app/ui/bindings.d.ts is stale: regenerate it with \
             `SCANNER_BLESS=1 cargo nextest run -p scanner-core bindings` and commit it"
        );
    }
}
