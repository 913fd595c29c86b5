//! The TypeScript declarations of every value crossing the Tauri bridge,
//! generated from the Rust types with ts-rs. `ui/bindings.d.ts` is this
//! output checked in; the test below fails when it is stale (regenerate with
//! `SCANNER_BLESS=1 cargo nextest run -p scanner-core bindings`).

use crate::view::*;
use ts_rs::TS;

/// The declarations, one `export type` per value type.
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
