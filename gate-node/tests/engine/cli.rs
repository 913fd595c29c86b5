//! The CLI on a provisioned store: `decode`, `check` and `scan`
//! (`--image/--text --json`), `status`, and their exit codes (0 admit,
//! 1 error, 3 no QR code, 4 rejected).

use crate::harness::{cli, provision};
use gate_node::fixture::EventFixture;
use std::path::{Path, PathBuf};

/// A photo-like frame (textured background, sensor noise) showing `text`.
fn ticket_png(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    gate_node::corpus::code_frame(text, 640, 480)
        .expect("a credential fits a QR code")
        .save(&path)
        .expect("test frames can be written");
    path
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn decode_prints_the_qr_text_and_fails_clearly_without_one() {
    let f = EventFixture::new(51, 3);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let text = f.credential(f.ticket(1));
    let png = ticket_png(dir.path(), "ticket.png", &text);
    let out = cli(dir.path(), &["decode", "--image", png.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), text);

    let blank = dir.path().join("blank.png");
    gate_node::corpus::empty_frame(1, 320, 240)
        .save(&blank)
        .unwrap();
    let out = cli(dir.path(), &["decode", "--image", blank.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "no QR code is exit 3: {out:?}");
    assert!(stderr(&out).contains("no QR code"), "{out:?}");
}

#[test]
fn decode_refuses_unreadable_images_with_a_clear_error() {
    let f = EventFixture::new(53, 1);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"not an image at all").unwrap();
    let truncated = ticket_png(dir.path(), "cut.png", &f.credential(f.ticket(0)));
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let wide = dir.path().join("wide.png");
    image::GrayImage::new(9000, 2).save(&wide).unwrap();
    for (path, says) in [
        (garbage, "unreadable"),
        (truncated, "unreadable"),
        (wide, "too large"),
        (dir.path().join("missing.png"), "missing.png"),
    ] {
        for cmd in ["decode", "check", "scan"] {
            let out = cli(dir.path(), &[cmd, "--image", path.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{cmd} {path:?}: an error, not a crash: {out:?}"
            );
            assert!(stderr(&out).contains(says), "{cmd} {path:?}: {out:?}");
        }
    }
}

#[test]
fn check_decides_only_and_scan_records() {
    let f = EventFixture::new(52, 3);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let text = f.credential(f.ticket(2));
    let png = ticket_png(dir.path(), "ticket.png", &text);
    let json = |out: std::process::Output, code: i32| -> serde_json::Value {
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = json(
        cli(
            dir.path(),
            &["check", "--image", png.to_str().unwrap(), "--json"],
        ),
        0,
    );
    assert_eq!(v["decision"], "admit");
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["ticket_id"], f.ticket(2).to_string());
    assert_eq!(
        v["scan_id"],
        serde_json::Value::Null,
        "check records nothing"
    );
    let v = json(cli(dir.path(), &["check", "--text", &text, "--json"]), 0);
    assert_eq!(v["decision"], "admit", "checking twice still admits");
    let v = json(cli(dir.path(), &["scan", "--text", &text, "--json"]), 0);
    assert_eq!(
        v["decision"], "admit",
        "a check recorded nothing, so the real scan admits"
    );
    assert!(v["scan_id"].is_string(), "scan records: {v}");
    let v = json(cli(dir.path(), &["scan", "--text", &text, "--json"]), 4);
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("reject"), Some("already_inside")),
        "a rejection is exit 4 with the reason in the JSON"
    );
    let v = json(
        cli(dir.path(), &["check", "--text", "nonsense", "--json"]),
        4,
    );
    assert_eq!(v["reason"], "malformed");
    assert_eq!(v["ticket_id"], serde_json::Value::Null);
    let out = cli(dir.path(), &["check", "--image", png.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "REJECT already_inside"
    );
    let status = json(cli(dir.path(), &["status"]), 0);
    assert_eq!(
        status["records"], 2,
        "the two scans (admit, then already_inside) are recorded; the checks are not"
    );
    assert_eq!(
        status["pending"]["pending"], 2,
        "not yet acknowledged by any cloud"
    );
}

#[test]
fn status_and_check_without_a_store_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("not-there");
    for args in [
        &["status"][..],
        &["check", "--text", "TK1:x"],
        &["scan", "--text", "TK1:x"],
    ] {
        let out = std::process::Command::new(crate::harness::BIN)
            .args(args)
            .env("GATE_DATA_DIR", &data)
            .env("GATE_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(err.contains("not enrolled"), "{args:?}: {err}");
        assert!(
            err.contains(&data.join("gate.db").display().to_string()),
            "{err}"
        );
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
}

#[test]
fn enroll_without_a_scheme_says_the_url_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["enroll", "--cloud", "127.0.0.1:3902", "--code", "ABCD-EFGH"])
        .env("GATE_DATA_DIR", &data)
        .env("GATE_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("needs a scheme") && err.contains("http://127.0.0.1:3902"),
        "{err}"
    );
    assert!(!err.contains("builder error"), "{err}");
    assert!(!data.exists(), "a refused URL creates no store");
}

#[test]
fn a_wrong_zone_refusal_and_status_name_the_gates_zone() {
    let f = EventFixture::new(57, 1);
    let dir = tempfile::tempdir().unwrap();
    crate::harness::write_config(dir.path(), &[], "");
    let mut bundle = f.bundle(1, "Stairs");
    bundle.policy.zone = Some(2);
    bundle.zone_name = Some("Balcony".into());
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let out = cli(
        dir.path(),
        &["provision", "--bundle", path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");

    // The fixture's tickets admit to zone 0 only.
    let out = cli(dir.path(), &["check", "--text", &f.credential(f.ticket(0))]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("REJECT wrong_zone") && said.contains("\"Balcony\""),
        "{said}"
    );
    let out = cli(dir.path(), &["status"]);
    assert!(out.status.success(), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["zone_name"], "Balcony", "{status}");
    assert_eq!(status["policy"]["zone"], 2, "{status}");
}
