use super::*;
use crate::actuator::RecordingActuator;
use crate::fixture::EventFixture;
use crate::time::FakeClock;
use sync_protocol::TicketState;

const T: u64 = 1_750_000_000_000;

struct Rig {
    _dir: tempfile::TempDir,
    engine: Engine,
    clock: Arc<FakeClock>,
    recorder: RecordingActuator,
    /// For each signal: whether the store already held the admitted ticket
    /// as inside at that moment.
    durable_at_signal: Arc<Mutex<Vec<bool>>>,
    f: EventFixture,
}

fn rig(debounce_ms: u64) -> Rig {
    let f = EventFixture::new(11, 20);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_in(dir.path()).unwrap());
    crate::provision::import(&store, &f.bundle(1, "East"), [3; 32]).unwrap();
    let clock = Arc::new(FakeClock::new(T));
    let time = Arc::new(TimeSource::new(clock.clone(), true, Hlc::default()));
    let durable_at_signal = Arc::new(Mutex::new(Vec::new()));
    let (probe_store, seen) = (store.clone(), durable_at_signal.clone());
    let recorder = RecordingActuator::new().with_probe(move |d: &Decision| {
        let inside = d.ticket_id.is_some_and(|t| {
            matches!(
                probe_store.ticket_fold(&t).map(|f| f.state),
                Ok(TicketState::Inside { .. })
            )
        });
        seen.lock().unwrap().push(inside);
    });
    let engine = Engine::new(
        store,
        time,
        Some(Box::new(recorder.clone())),
        debounce_ms,
        "",
    )
    .unwrap();
    Rig {
        _dir: dir,
        engine,
        clock,
        recorder,
        durable_at_signal,
        f,
    }
}

#[test]
fn the_light_turns_green_only_after_the_scan_is_durable() {
    let r = rig(0);
    let report = r.engine.scan_text(&r.f.credential(r.f.ticket(1))).unwrap();
    assert!(report.admitted());
    assert_eq!(r.recorder.outcomes(), [Outcome::Admit]);
    assert_eq!(
        *r.durable_at_signal.lock().unwrap(),
        [true],
        "the record was committed before the light was signalled"
    );
}

#[test]
fn admissions_are_pushed_and_malformed_texts_only_counted() {
    let r = rig(0);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    r.engine.set_push(tx);
    let text = r.f.credential(r.f.ticket(2));
    assert!(r.engine.scan_text(&text).unwrap().admitted());
    let again = r.engine.scan_text(&format!("{text}\r\n")).unwrap();
    assert_eq!(again.reason, Some(Reason::AlreadyInside));
    let junk = r
        .engine
        .scan_text("https://example.invalid/not-a-ticket")
        .unwrap();
    assert_eq!((junk.reason, junk.scan_id), (Some(Reason::Malformed), None));
    let pushed = rx.try_recv().unwrap();
    assert_eq!(pushed.ticket_id, r.f.ticket(2));
    assert!(rx.try_recv().is_err(), "only admissions are pushed at once");
    let c = r.engine.counters();
    assert_eq!((c.scans, c.admitted, c.rejected, c.malformed), (3, 1, 1, 1));
    assert_eq!(r.engine.store().record_count().unwrap(), 2);
}

#[test]
fn repeat_reads_inside_the_window_are_one_scan() {
    let r = rig(1_500);
    let text = r.f.credential(r.f.ticket(3));
    let first = r.engine.scan_text(&text).unwrap();
    r.clock.advance(500);
    let repeat = r.engine.scan_text(&text).unwrap();
    assert!(
        repeat.repeat && repeat.admitted(),
        "the same read is the same admission"
    );
    assert_eq!(repeat.scan_id, first.scan_id);
    r.clock.advance(1_500);
    let later = r.engine.scan_text(&text).unwrap();
    assert_eq!(
        later.reason,
        Some(Reason::AlreadyInside),
        "outside the window it is a new scan"
    );
    assert_eq!(
        r.recorder.outcomes(),
        [Outcome::Admit, Outcome::Reject(Reason::AlreadyInside)],
        "a repeat signals nothing"
    );
}

#[test]
fn a_code_held_in_view_for_seconds_is_one_scan_and_one_light() {
    let r = rig(1_500);
    let text = r.f.credential(r.f.ticket(5));
    assert!(r.engine.scan_text(&text).unwrap().admitted());
    for i in 0..20 {
        r.clock.advance(250);
        let again = r.engine.scan_text(&text).unwrap();
        assert!(
            again.repeat && again.admitted(),
            "read {i}, {} ms after the first, is the same admission",
            250 * (i + 1)
        );
    }
    assert_eq!(
        r.recorder.outcomes(),
        [Outcome::Admit],
        "one green light and no red already_inside after it"
    );
    assert_eq!(r.engine.store().record_count().unwrap(), 1);
    assert_eq!(r.engine.counters().repeats, 20);
}

#[test]
fn forged_credentials_are_rejected_and_never_recorded() {
    let r = rig(0);
    let rogue = sync_protocol::SecretKey::from_seed([99; 32]);
    let forged = r.f.credential_with(&rogue, r.f.ticket(4));
    let report = r.engine.scan_text(&forged).unwrap();
    assert_eq!(report.reason, Some(Reason::UnknownKey));
    assert!(
        report.scan_id.is_none(),
        "nothing an unverified credential claims is believed, so nothing is recorded (issue #17)"
    );
    assert_eq!(r.engine.store().record_count().unwrap(), 0);
    let genuine = r.engine.scan_text(&r.f.credential(r.f.ticket(4))).unwrap();
    assert!(
        genuine.admitted(),
        "a rejected forgery does not block the real ticket"
    );
}

#[test]
fn window_checks_on_an_untrusted_clock_say_so() {
    let r = rig(0);
    let untrusted = Arc::new(TimeSource::new(r.clock.clone(), false, Hlc::default()));
    let engine = Engine::new(r.engine.store().clone(), untrusted, None, 0, "").unwrap();
    let claims = sync_protocol::Claims {
        event_id: r.f.event_id,
        ticket_id: r.f.ticket(9),
        generation: 0,
        tier: 1,
        zones: 1,
        window: Some(sync_protocol::ValidityWindow {
            not_before: T / 1000 - 3600,
            not_after: T / 1000 + 3600,
        }),
        holder_key: None,
    };
    let text = sync_protocol::Credential::issue(&r.f.event_key, claims)
        .unwrap()
        .to_qr_text();
    let report = engine.scan_text(&text).unwrap();
    assert!(report.admitted());
    assert!(
        report.time_uncertain,
        "the decision says its time check is uncertain"
    );
    r.clock.set_system(5_000);
    let other = engine.scan_text(&r.f.credential(r.f.ticket(10))).unwrap();
    assert!(
        other.admitted() && !other.time_uncertain,
        "no window, nothing uncertain"
    );
    let hlcs: Vec<_> = [report.hlc, other.hlc].into_iter().flatten().collect();
    assert!(
        hlcs[0] < hlcs[1],
        "a clock that jumped to 1970 still orders the later scan after"
    );
}
