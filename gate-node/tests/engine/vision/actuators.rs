//! Actuator semantics as the engine sees them through the trait.

use gate_node::actuator::{
    Actuator, GpioActuator, GpioConfig, GpioError, Line, RecordingActuator, plan,
};
use sync_protocol::{Decision, Outcome, Reason, TicketId};

fn decision(outcome: Outcome, ticket: u8) -> Decision {
    Decision {
        outcome,
        ticket_id: Some(TicketId::from_bytes([ticket; 16])),
        event_id: None,
        generation: None,
        tier: None,
        display_name: None,
        time_uncertain: false,
        door: None,
        door_news_age_secs: None,
    }
}

#[test]
fn a_clone_kept_by_the_test_sees_what_the_engine_signalled() {
    let recorder = RecordingActuator::new();
    let mut engine_side: Box<dyn Actuator> = Box::new(recorder.clone());
    engine_side
        .signal(&decision(Outcome::Admit, 1))
        .expect("recording never fails");
    engine_side
        .signal(&decision(Outcome::Reject(Reason::AlreadyInside), 1))
        .expect("recording never fails");
    assert_eq!(
        recorder.outcomes(),
        [Outcome::Admit, Outcome::Reject(Reason::AlreadyInside)],
        "admit at first scan, already_inside at the second"
    );
    let signals = recorder.signals();
    assert_eq!(signals[0].ticket_id, Some(TicketId::from_bytes([1; 16])));
    assert!(
        signals[0]
            .steps
            .iter()
            .any(|s| s.line == Line::Relay && s.on),
        "admit opens"
    );
    assert!(
        signals[1].steps.iter().all(|s| s.line != Line::Relay),
        "reject never opens"
    );
}

#[test]
fn an_injected_fault_fails_one_signal_and_records_nothing_for_it() {
    let recorder = RecordingActuator::new();
    let mut actuator = recorder.clone();
    recorder.fail_next("relay did not latch");
    let err = actuator
        .signal(&decision(Outcome::Admit, 2))
        .expect_err("injected");
    assert!(err.to_string().contains("relay did not latch"));
    actuator
        .signal(&decision(Outcome::Admit, 3))
        .expect("only one failure");
    assert_eq!(
        recorder.signals().len(),
        1,
        "the failed signal is not recorded"
    );
    recorder.clear();
    assert!(recorder.signals().is_empty());
}

#[test]
fn recorded_steps_follow_the_configured_timings() {
    let config = GpioConfig {
        relay_pulse_ms: 250,
        ..GpioConfig::default()
    };
    let recorder = RecordingActuator::with_config(config.clone());
    recorder
        .clone()
        .signal(&decision(Outcome::Admit, 4))
        .expect("records");
    assert_eq!(recorder.signals()[0].steps, plan(Outcome::Admit, &config));
}

#[test]
fn gpio_config_deserializes_from_a_partial_table_and_refuses_typos() {
    use serde::Deserialize;
    use serde::de::value::{Error, MapDeserializer};
    let table =
        MapDeserializer::<_, Error>::new([("relay_pin", 5u8), ("green_pin", 6u8)].into_iter());
    let config = GpioConfig::deserialize(table).expect("a partial [gpio] table deserializes");
    assert_eq!((config.relay_pin, config.green_pin), (5, 6));
    assert_eq!(
        config.red_pin,
        GpioConfig::default().red_pin,
        "unset keys keep defaults"
    );
    let typo = MapDeserializer::<_, Error>::new([("realy_pin", 5u8)].into_iter());
    assert!(
        GpioConfig::deserialize(typo).is_err(),
        "a misspelt pin must not be ignored"
    );
}

#[test]
fn off_a_pi_the_gpio_actuator_is_a_clear_no_hardware_error() {
    if std::path::Path::new("/dev/gpiomem").exists() {
        return;
    }
    match GpioActuator::new(GpioConfig::default()) {
        Err(GpioError::NoHardware(_)) => {}
        other => panic!("expected NoHardware off a Pi, got {other:?}"),
    }
}
