//! What the gate does with a decision: pulse the turnstile relay, light green
//! or red, sound the buzzer. One trait, a GPIO implementation for the
//! Raspberry Pi and a recording one for tests and desktops.
//!
//! Both implementations share [`plan`], a pure function from an outcome and
//! a [`GpioConfig`] to timed line changes, so what a test records is what a
//! Pi would drive. The GPIO actuator runs the plan on a worker thread: the
//! scan loop never waits for a light to go out, and a new decision cuts the
//! previous one's lights and buzzer short; a turnstile release pulse under
//! way always completes.

mod gpio;

pub use gpio::{GpioActuator, GpioError};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_protocol::{Decision, Outcome, TicketId};

/// Drives the gate hardware for one decision.
pub trait Actuator: Send {
    /// Signals the decision (blocking only as long as the hardware needs to
    /// latch the signal; pulses finish in the background).
    fn signal(&mut self, decision: &Decision) -> Result<(), ActuatorError>;
}

/// The hardware could not be driven.
#[derive(Debug, thiserror::Error)]
#[error("actuator: {0}")]
pub struct ActuatorError(pub String);

/// The gate's actuator as configured: none without a `[gpio]` table (a
/// desktop or kiosk; decisions are logged and returned), a
/// [`GpioActuator`] with one. A machine without GPIO hardware runs without
/// one, with a warning, unless `require` (the `require_gpio` key) says a
/// gate without its relay must not start; a pin that cannot be claimed is
/// always an error.
pub fn from_config(
    gpio: Option<&GpioConfig>,
    require: bool,
) -> Result<Option<Box<dyn Actuator>>, GpioError> {
    let Some(config) = gpio else {
        return Ok(None);
    };
    match GpioActuator::new(config.clone()) {
        Ok(actuator) => {
            tracing::info!(?config, "GPIO actuator ready");
            Ok(Some(Box::new(actuator)))
        }
        Err(GpioError::NoHardware(why)) if !require => {
            tracing::warn!(
                %why,
                "no GPIO hardware: running without relay, lights and buzzer (decisions are only logged); set require_gpio = true to refuse to start instead"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Pins (BCM numbers) and timings (the `[gpio]` table of the node's config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpioConfig {
    /// Turnstile release relay.
    pub relay_pin: u8,
    /// Many relay boards switch on a low level.
    pub relay_active_low: bool,
    /// Green light.
    pub green_pin: u8,
    /// Red light.
    pub red_pin: u8,
    /// Buzzer, if fitted (`buzzer_pin = "none"` in TOML, which has no null).
    #[serde(deserialize_with = "pin_or_none")]
    pub buzzer_pin: Option<u8>,
    /// How long the relay is held to release the turnstile.
    pub relay_pulse_ms: u64,
    /// How long the green or red light stays on.
    pub light_ms: u64,
    /// Buzzer on a reject: alternating on and off durations, starting on.
    pub buzzer_pattern_ms: Vec<u64>,
}

impl Default for GpioConfig {
    /// A common Pi gate wiring: relay on BCM 17, green 27, red 22, buzzer 23;
    /// a 500 ms release pulse, lights for 1.5 s, two short beeps on reject.
    fn default() -> Self {
        Self {
            relay_pin: 17,
            relay_active_low: false,
            green_pin: 27,
            red_pin: 22,
            buzzer_pin: Some(23),
            relay_pulse_ms: 500,
            light_ms: 1500,
            buzzer_pattern_ms: vec![150, 100, 150],
        }
    }
}

/// A BCM pin number, or `"none"`.
fn pin_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum PinOrNone {
        Pin(u8),
        Word(String),
    }
    match Option::<PinOrNone>::deserialize(d)? {
        None => Ok(None),
        Some(PinOrNone::Pin(p)) => Ok(Some(p)),
        Some(PinOrNone::Word(w)) if w == "none" => Ok(None),
        Some(PinOrNone::Word(w)) => Err(serde::de::Error::custom(format!(
            "buzzer_pin {w:?}: expected a BCM pin number or \"none\""
        ))),
    }
}

/// Longest duration accepted for any one step, so a typo cannot hold the
/// turnstile open for an hour.
pub const MAX_STEP_MS: u64 = 10_000;
/// Longest buzzer pattern accepted.
pub const MAX_BUZZER_STEPS: usize = 16;

impl GpioConfig {
    /// Checks pins are distinct BCM GPIOs and timings are sane.
    pub fn validate(&self) -> Result<(), String> {
        let mut pins = vec![self.relay_pin, self.green_pin, self.red_pin];
        pins.extend(self.buzzer_pin);
        if let Some(p) = pins.iter().find(|&&p| p > 27) {
            return Err(format!("pin {p} is not a BCM GPIO (0 to 27)"));
        }
        let mut sorted = pins.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != pins.len() {
            return Err(format!("pins must be distinct: {pins:?}"));
        }
        let steps = [self.relay_pulse_ms, self.light_ms]
            .into_iter()
            .chain(self.buzzer_pattern_ms.iter().copied());
        if steps.clone().any(|ms| ms > MAX_STEP_MS) {
            return Err(format!("durations must be at most {MAX_STEP_MS} ms"));
        }
        if self.buzzer_pattern_ms.len() > MAX_BUZZER_STEPS {
            return Err(format!(
                "buzzer pattern longer than {MAX_BUZZER_STEPS} steps"
            ));
        }
        Ok(())
    }
}

/// An output the gate drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Line {
    /// Turnstile release relay.
    Relay,
    /// Green light.
    Green,
    /// Red light.
    Red,
    /// Buzzer.
    Buzzer,
}

/// One line change, `at` after the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Offset from the start of the signal.
    pub at: Duration,
    /// The line.
    pub line: Line,
    /// On (active) or off.
    pub on: bool,
}

/// The line changes for `outcome`, ordered by time; every line switched on
/// is switched off again by the end.
///
/// Admit: relay pulse and green light from t = 0. Reject: red light from
/// t = 0 and the buzzer pattern (when a buzzer is fitted); the relay is
/// never touched.
pub fn plan(outcome: Outcome, config: &GpioConfig) -> Vec<Step> {
    let ms = Duration::from_millis;
    let step = |at, line, on| Step { at, line, on };
    let mut steps = Vec::new();
    if outcome.is_admit() {
        steps.push(step(ms(0), Line::Relay, true));
        steps.push(step(ms(0), Line::Green, true));
        steps.push(step(ms(config.relay_pulse_ms), Line::Relay, false));
        steps.push(step(ms(config.light_ms), Line::Green, false));
    } else {
        steps.push(step(ms(0), Line::Red, true));
        steps.push(step(ms(config.light_ms), Line::Red, false));
        if config.buzzer_pin.is_some() {
            let mut t = 0;
            for (i, d) in config.buzzer_pattern_ms.iter().enumerate() {
                steps.push(step(ms(t), Line::Buzzer, i % 2 == 0));
                t += d;
            }
            if !config.buzzer_pattern_ms.is_empty() {
                steps.push(step(ms(t), Line::Buzzer, false));
            }
        }
    }
    steps.sort_by_key(|s| s.at);
    steps
}

/// One signalled decision, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// Admit or reject (with the reason).
    pub outcome: Outcome,
    /// The ticket, if the credential parsed.
    pub ticket_id: Option<TicketId>,
    /// What a GPIO actuator with the same config would have driven.
    pub steps: Vec<Step>,
}

#[derive(Debug, Default)]
struct Recording {
    signals: Vec<Signal>,
    fail_next: Option<String>,
}

/// Called with each decision at the moment it is signalled.
type Probe = Arc<dyn Fn(&Decision) + Send + Sync>;

/// Records every signal instead of driving hardware. Clones share one
/// record, so a test keeps a clone while the engine owns the actuator.
#[derive(Clone, Default)]
pub struct RecordingActuator {
    config: Arc<GpioConfig>,
    recording: Arc<Mutex<Recording>>,
    probe: Option<Probe>,
}

impl std::fmt::Debug for RecordingActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingActuator")
            .field("config", &self.config)
            .field("recording", &self.recording)
            .field("probe", &self.probe.is_some())
            .finish()
    }
}

impl RecordingActuator {
    /// A recorder planning with the default [`GpioConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder planning with `config`.
    pub fn with_config(config: GpioConfig) -> Self {
        Self {
            config: Arc::new(config),
            ..Self::default()
        }
    }

    /// Also calls `probe` with each decision at the moment it is signalled:
    /// what a test checks about the world when the light would change (the
    /// record is already durable) or when a benchmark stops its clock.
    pub fn with_probe(mut self, probe: impl Fn(&Decision) + Send + Sync + 'static) -> Self {
        self.probe = Some(Arc::new(probe));
        self
    }

    /// Every signal so far, oldest first.
    pub fn signals(&self) -> Vec<Signal> {
        self.lock().signals.clone()
    }

    /// The outcomes so far, oldest first.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.lock().signals.iter().map(|s| s.outcome).collect()
    }

    /// Makes the next [`Actuator::signal`] fail with `message` (a relay
    /// that did not latch) without recording it.
    pub fn fail_next(&self, message: impl Into<String>) {
        self.lock().fail_next = Some(message.into());
    }

    /// Forgets the signals recorded so far.
    pub fn clear(&self) {
        self.lock().signals.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        // A panicking test thread must not hide what was recorded.
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Actuator for RecordingActuator {
    fn signal(&mut self, decision: &Decision) -> Result<(), ActuatorError> {
        let mut rec = self.lock();
        if let Some(message) = rec.fail_next.take() {
            return Err(ActuatorError(message));
        }
        rec.signals.push(Signal {
            outcome: decision.outcome,
            ticket_id: decision.ticket_id,
            steps: plan(decision.outcome, &self.config),
        });
        drop(rec);
        if let Some(probe) = &self.probe {
            probe(decision);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_protocol::Reason;

    fn on_lines(steps: &[Step]) -> Vec<Line> {
        steps.iter().filter(|s| s.on).map(|s| s.line).collect()
    }

    fn ends_all_off(steps: &[Step]) -> bool {
        [Line::Relay, Line::Green, Line::Red, Line::Buzzer]
            .iter()
            .all(|l| {
                steps
                    .iter()
                    .rev()
                    .find(|s| s.line == *l)
                    .is_none_or(|s| !s.on)
            })
    }

    #[test]
    fn admit_pulses_the_relay_and_lights_green() {
        let c = GpioConfig::default();
        let p = plan(Outcome::Admit, &c);
        assert_eq!(on_lines(&p), [Line::Relay, Line::Green]);
        let relay_off = p
            .iter()
            .find(|s| s.line == Line::Relay && !s.on)
            .map(|s| s.at);
        assert_eq!(relay_off, Some(Duration::from_millis(c.relay_pulse_ms)));
        assert!(
            ends_all_off(&p),
            "nothing may stay on after an admit: {p:?}"
        );
    }

    #[test]
    fn reject_lights_red_and_beeps_but_never_touches_the_relay() {
        let p = plan(
            Outcome::Reject(Reason::AlreadyInside),
            &GpioConfig::default(),
        );
        assert!(
            p.iter().all(|s| s.line != Line::Relay),
            "a reject must not open the gate"
        );
        assert_eq!(on_lines(&p), [Line::Red, Line::Buzzer, Line::Buzzer]);
        assert!(ends_all_off(&p), "{p:?}");
        assert!(
            p.windows(2).all(|w| w[0].at <= w[1].at),
            "steps are time-ordered"
        );
    }

    #[test]
    fn no_buzzer_fitted_means_no_buzzer_steps() {
        let c = GpioConfig {
            buzzer_pin: None,
            ..GpioConfig::default()
        };
        let p = plan(Outcome::Reject(Reason::Malformed), &c);
        assert!(p.iter().all(|s| s.line != Line::Buzzer));
    }

    #[test]
    fn without_a_gpio_table_there_is_no_actuator_and_no_error() {
        let built = from_config(None, true).expect("nothing to build");
        assert!(built.is_none());
    }

    #[test]
    fn off_a_pi_gpio_falls_back_to_none_unless_required() {
        if std::path::Path::new("/dev/gpiomem").exists() {
            return; // a real Pi: the hardware is there
        }
        let config = GpioConfig::default();
        let built = from_config(Some(&config), false).expect("falls back");
        assert!(built.is_none(), "no hardware, not required: no actuator");
        let err = from_config(Some(&config), true)
            .err()
            .expect("required hardware that is missing is an error");
        assert!(matches!(err, GpioError::NoHardware(_)), "{err:?}");
    }

    #[test]
    fn config_validation_rejects_shared_pins_and_long_pulses() {
        assert!(GpioConfig::default().validate().is_ok());
        let shared = GpioConfig {
            green_pin: 17,
            ..GpioConfig::default()
        };
        assert!(shared.validate().is_err(), "relay and green on one pin");
        let long = GpioConfig {
            relay_pulse_ms: 3_600_000,
            ..GpioConfig::default()
        };
        assert!(long.validate().is_err(), "an hour-long pulse is a typo");
        let bad_pin = GpioConfig {
            red_pin: 40,
            ..GpioConfig::default()
        };
        assert!(
            bad_pin.validate().is_err(),
            "40 is a header pin number, not BCM"
        );
    }
}
