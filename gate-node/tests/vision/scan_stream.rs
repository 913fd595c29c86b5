//! Frames through decoder and debouncer, as the scan loop drives them.

use std::time::{Duration, Instant};

use gate_node::corpus::{self, Distortion};
use gate_node::decode::{Debouncer, default_decoder};
use gate_node::frames::{DirectorySource, FrameSource};

use crate::write_frame;

#[test]
fn a_ticket_held_up_for_many_frames_then_the_next_ticket_are_two_scans() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = corpus::Rng::new(5);
    let (first, second) = (corpus::qr_payload(&mut rng), corpus::qr_payload(&mut rng));
    let shown = [
        (Some(&first), Distortion::Clean),
        (Some(&first), Distortion::Rotation),
        (Some(&first), Distortion::Glare),
        (Some(&first), Distortion::Clean),
        (None, Distortion::Clean),
        (Some(&second), Distortion::Clean),
        (Some(&second), Distortion::Moire),
    ];
    for (n, (text, class)) in shown.into_iter().enumerate() {
        let image = match text {
            Some(text) => corpus::render(class, n as u64, 640, 480, text).expect("fits"),
            None => corpus::empty_frame(n as u64, 640, 480),
        };
        write_frame(dir.path(), &format!("f{n}.png"), &image);
    }

    let decoder = default_decoder();
    let mut debouncer = Debouncer::new(Duration::from_millis(1500));
    let mut source = DirectorySource::open(dir.path()).expect("listable");
    let t0 = Instant::now();
    let mut scans = Vec::new();
    let mut frame_no = 0u64;
    while let Some(frame) = source.next_frame().expect("frames readable") {
        let at = t0 + Duration::from_millis(33 * frame_no);
        frame_no += 1;
        for text in decoder.decode(&frame.image) {
            if debouncer.accept(&text, at) {
                scans.push(text);
            }
        }
    }
    assert_eq!(
        scans,
        [first, second],
        "one scan per ticket shown, in order"
    );
}
