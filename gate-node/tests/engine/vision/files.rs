//! Image files as outside input: good ones decode, bad ones are a clear
//! `FrameError`, and directories replay in natural order.

use gate_node::corpus;
use gate_node::decode::default_decoder;
use gate_node::frames::{
    DirectorySource, FrameError, FrameSource, ImageFileSource, ImageLimits, decode_image_file,
    load_gray_file,
};

use super::write_frame;

fn payload() -> String {
    corpus::qr_payload(&mut corpus::Rng::new(11))
}

#[test]
fn a_png_and_a_jpeg_of_a_ticket_decode_to_its_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = payload();
    let frame = corpus::code_frame(&text, 640, 480).expect("credential fits a code");
    for name in ["ticket.png", "ticket.jpg"] {
        let path = write_frame(dir.path(), name, &frame);
        let found = decode_image_file(&path, default_decoder().as_ref()).expect("readable");
        assert_eq!(found, std::slice::from_ref(&text), "{name}");
    }
}

#[test]
fn an_image_without_a_code_decodes_to_an_empty_list() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_frame(dir.path(), "empty.png", &corpus::empty_frame(1, 320, 240));
    let found = decode_image_file(&path, default_decoder().as_ref()).expect("readable");
    assert!(
        found.is_empty(),
        "the CLI reports 'no code' on an empty list"
    );
}

#[test]
fn garbage_bytes_named_png_are_unreadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.png");
    std::fs::write(&path, b"this is not an image at all, just text").expect("write");
    let err = decode_image_file(&path, default_decoder().as_ref()).expect_err("garbage");
    assert!(matches!(err, FrameError::Unreadable(_)), "{err:?}");
}

#[test]
fn truncated_png_and_jpeg_files_are_unreadable_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let frame = corpus::code_frame(&payload(), 640, 480).expect("fits");
    for name in ["cut.png", "cut.jpg"] {
        let path = write_frame(dir.path(), name, &frame);
        let bytes = std::fs::read(&path).expect("read back");
        for keep in [8, 33, bytes.len() / 2] {
            std::fs::write(&path, &bytes[..keep]).expect("truncate");
            let result = load_gray_file(&path, ImageLimits::default());
            assert!(
                matches!(result, Err(FrameError::Unreadable(_))),
                "{name} cut to {keep} bytes must be unreadable, got {:?}",
                result.map(|i| i.dimensions())
            );
        }
        // Cut inside the end marker: decoders may accept it; it must not panic.
        std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
        let _ = load_gray_file(&path, ImageLimits::default());
    }
}

#[test]
fn an_image_wider_than_the_limit_is_too_large() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_frame(dir.path(), "wide.png", &image::GrayImage::new(9000, 2));
    let err = load_gray_file(&path, ImageLimits::default()).expect_err("9000 px > 8192");
    assert!(matches!(err, FrameError::TooLarge(_)), "{err:?}");
}

#[test]
fn a_small_file_that_decodes_huge_is_stopped_by_the_allocation_cap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_frame(dir.path(), "bomb.png", &image::GrayImage::new(4000, 4000));
    let size = std::fs::metadata(&path).expect("stat").len();
    assert!(
        size < 100_000,
        "a flat 16 MP frame compresses to {size} bytes"
    );
    let limits = ImageLimits {
        max_alloc: 1 << 20,
        ..ImageLimits::default()
    };
    let err = load_gray_file(&path, limits).expect_err("16 MB of pixels > 1 MiB cap");
    assert!(matches!(err, FrameError::TooLarge(_)), "{err:?}");
}

#[test]
fn a_file_over_the_byte_cap_is_refused_before_decoding() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_frame(dir.path(), "big.png", &corpus::noise_frame(1, 200, 200));
    let limits = ImageLimits {
        max_bytes: 1000,
        ..ImageLimits::default()
    };
    let err = load_gray_file(&path, limits).expect_err("over the byte cap");
    assert!(matches!(err, FrameError::TooLarge(_)), "{err:?}");
}

#[test]
fn a_missing_file_is_an_io_error() {
    let err = decode_image_file("/nonexistent/frame.png", default_decoder().as_ref())
        .expect_err("missing");
    assert!(matches!(err, FrameError::Io(_)), "{err:?}");
}

#[test]
fn an_image_file_source_yields_its_frame_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_frame(dir.path(), "one.png", &corpus::empty_frame(2, 64, 48));
    let mut src = ImageFileSource::new(&path);
    let frame = src.next_frame().expect("readable").expect("one frame");
    assert_eq!(frame.image.dimensions(), (64, 48));
    assert!(
        src.next_frame().expect("end").is_none(),
        "then the stream ends"
    );
}

#[test]
fn a_directory_replays_frames_in_natural_order_and_skips_other_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, width) in [("frame10.png", 30), ("frame2.png", 20), ("frame1.jpg", 10)] {
        write_frame(dir.path(), name, &image::GrayImage::new(width, 8));
    }
    std::fs::write(dir.path().join("notes.txt"), "not a frame").expect("write");
    std::fs::create_dir(dir.path().join("sub.png")).expect("a directory named like a frame");
    let mut src = DirectorySource::open(dir.path()).expect("listable");
    let mut widths = Vec::new();
    while let Some(frame) = src.next_frame().expect("all frames readable") {
        widths.push(frame.image.width());
    }
    assert_eq!(
        widths,
        [10, 20, 30],
        "frame1, frame2, frame10: numbers by value"
    );
}

#[test]
fn a_bad_frame_in_a_directory_is_reported_and_the_replay_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_frame(dir.path(), "a1.png", &image::GrayImage::new(10, 10));
    std::fs::write(dir.path().join("a2.png"), b"broken").expect("write");
    write_frame(dir.path(), "a3.png", &image::GrayImage::new(30, 10));
    let mut src = DirectorySource::open(dir.path()).expect("listable");
    assert!(src.next_frame().expect("a1 reads").is_some());
    assert!(
        matches!(src.next_frame(), Err(FrameError::Unreadable(_))),
        "a2 is reported"
    );
    let a3 = src
        .next_frame()
        .expect("a3 reads")
        .expect("a3 is still there");
    assert_eq!(a3.image.width(), 30);
    assert!(src.next_frame().expect("end").is_none());
}

mod hostile_bytes {
    use gate_node::frames::{ImageLimits, LineSource, MAX_LINE_BYTES, TextSource, load_gray};
    use proptest::prelude::*;

    fn small_png() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        gate_node::corpus::noise_frame(3, 24, 16)
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn bytes_behind_an_image_signature_never_panic(
            jpeg: bool,
            tail in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut bytes = if jpeg {
                vec![0xFF, 0xD8, 0xFF, 0xE0]
            } else {
                b"\x89PNG\r\n\x1a\n".to_vec()
            };
            bytes.extend(tail);
            let _ = load_gray(&bytes, ImageLimits::default());
        }

        #[test]
        fn a_png_with_flipped_bytes_loads_or_fails_cleanly(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = small_png();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= value;
            }
            if let Ok(image) = load_gray(&bytes, ImageLimits::default()) {
                prop_assert!(image.width() <= 8192 && image.height() <= 8192);
            }
        }

        #[test]
        fn scanner_lines_are_bounded_and_never_panic(
            input in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut src = LineSource::from_reader("fuzz", std::io::Cursor::new(input));
            for _ in 0..4096 {
                match src.next_line() {
                    Ok(None) => break,
                    Ok(Some(line)) => {
                        prop_assert!(!line.is_empty() && line.len() <= MAX_LINE_BYTES);
                        prop_assert!(!line.contains(['\r', '\n']));
                    }
                    Err(_) => {}
                }
            }
        }
    }
}
