//! The CLI on a provisioned store: `decode`, `scan --image/--text --json`,
//! `status`.

use crate::harness::{cli, provision};
use gate_node::fixture::EventFixture;

fn qr_png(text: &str, path: &std::path::Path) {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let width = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (6u32, 4u32);
    let side = (width as u32 + 2 * quiet) * scale;
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = (x / scale, y / scale);
        let dark = mx >= quiet
            && my >= quiet
            && mx < quiet + width as u32
            && my < quiet + width as u32
            && colors[((my - quiet) as usize) * width + (mx - quiet) as usize]
                == qrcode::Color::Dark;
        image::Luma([if dark { 0 } else { 255 }])
    });
    img.save(path).unwrap();
}

#[test]
fn decode_prints_the_qr_text_and_fails_clearly_without_one() {
    let f = EventFixture::new(51, 3);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let text = f.credential(f.ticket(1));
    let png = dir.path().join("ticket.png");
    qr_png(&text, &png);
    let out = cli(dir.path(), &["decode", "--image", png.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), text);

    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(64, 64, image::Luma([255]))
        .save(&blank)
        .unwrap();
    let out = cli(dir.path(), &["decode", "--image", blank.to_str().unwrap()]);
    assert!(!out.status.success(), "no QR code is a non-zero exit");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no QR code"));
}

#[test]
fn scan_prints_one_json_decision_and_records_only_when_asked() {
    let f = EventFixture::new(52, 3);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), &f, 1, &[]);
    let text = f.credential(f.ticket(2));
    let png = dir.path().join("ticket.png");
    qr_png(&text, &png);
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = json(cli(
        dir.path(),
        &["scan", "--image", png.to_str().unwrap(), "--json"],
    ));
    assert_eq!(v["decision"], "admit");
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["ticket_id"], f.ticket(2).to_string());
    let v = json(cli(
        dir.path(),
        &["scan", "--text", &text, "--json", "--record"],
    ));
    assert_eq!(
        v["decision"], "admit",
        "a dry run recorded nothing, so this admits"
    );
    let v = json(cli(dir.path(), &["scan", "--text", &text, "--json"]));
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("reject"), Some("already_inside"))
    );
    let v = json(cli(dir.path(), &["scan", "--text", "nonsense", "--json"]));
    assert_eq!(v["reason"], "malformed");
    let status = json(cli(dir.path(), &["status"]));
    assert_eq!(status["records"], 1);
    assert_eq!(
        status["pending"]["pending"], 1,
        "not yet acknowledged by any cloud"
    );
}
