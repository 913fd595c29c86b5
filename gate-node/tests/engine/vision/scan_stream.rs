//! A replayed frame sequence through the real pipeline, in process: the
//! directory source, the default decoder, the engine's debounce, decision,
//! durable record and the recording actuator.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use gate_node::actuator::RecordingActuator;
use gate_node::corpus::{self, Distortion};
use gate_node::decode::default_decoder;
use gate_node::engine::Engine;
use gate_node::fixture::EventFixture;
use gate_node::frames::DirectorySource;
use gate_node::source::{Input, ScanSource};
use gate_node::store::Store;
use gate_node::time::{FakeClock, TimeSource};
use sync_protocol::{Hlc, Outcome, Reason};

use super::write_frame;

#[test]
fn a_ticket_held_up_for_many_frames_then_the_next_ticket_are_two_scans() {
    let f = EventFixture::new(61, 10);
    let data = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open_in(data.path()).expect("store"));
    gate_node::provision::import(&store, &f.bundle(1, "North"), [1; 32]).expect("provision");
    let (first, second) = (f.credential(f.ticket(1)), f.credential(f.ticket(2)));
    let forged = f.credential_with(&sync_protocol::SecretKey::from_seed([9; 32]), f.ticket(3));
    let shown = [
        (Some(&first), Distortion::Clean),
        (Some(&first), Distortion::Rotation),
        (Some(&first), Distortion::Glare),
        (Some(&first), Distortion::Clean),
        (None, Distortion::Clean),
        (Some(&second), Distortion::Clean),
        (Some(&second), Distortion::Moire),
        (Some(&forged), Distortion::Clean),
        (Some(&forged), Distortion::Clean),
    ];
    let frames = tempfile::tempdir().expect("temp dir");
    for (n, (text, class)) in shown.into_iter().enumerate() {
        let image = match text {
            Some(text) => corpus::render(class, n as u64, 640, 480, text).expect("fits"),
            None => corpus::empty_frame(n as u64, 640, 480),
        };
        write_frame(frames.path(), &format!("f{n}.png"), &image);
    }

    // The clock stands still: every frame is inside the debounce window.
    let clock = Arc::new(FakeClock::new(1_750_000_000_000));
    let time = Arc::new(TimeSource::new(clock, true, Hlc::default()));
    let recorder = RecordingActuator::new();
    let engine = Engine::new(
        store.clone(),
        time,
        Some(Box::new(recorder.clone())),
        2_000,
        "",
    )
    .expect("engine");
    let source = DirectorySource::open(frames.path()).expect("listable");
    ScanSource::new("frames", Input::Frames(Box::new(source), default_decoder()))
        .run(&engine, &AtomicBool::new(false));

    assert_eq!(
        recorder.outcomes(),
        [
            Outcome::Admit,
            Outcome::Admit,
            Outcome::Reject(Reason::UnknownKey)
        ],
        "one signal per ticket shown, in order, however many frames showed it"
    );
    let c = engine.counters();
    assert_eq!(c.frames, 9, "every frame was decoded");
    assert_eq!(
        (c.scans, c.repeats),
        (3, 5),
        "the decoder read 8 codes; 5 were repeats"
    );
    assert_eq!(
        store.record_count().expect("count"),
        2,
        "two records: the forgery is refused unrecorded"
    );
}
