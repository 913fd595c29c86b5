//! The Raspberry Pi actuator: rppal output pins driven by a worker thread
//! that plays [`plan`]s.
//!
//! Compiled on every target (rppal builds on x86_64), so CI checks it; off a
//! Pi, [`GpioActuator::new`] fails with [`GpioError::NoHardware`]. The worker
//! is written against [`OutputLine`] so its timing logic is tested with fake
//! lines; only the thin rppal adapter needs a Pi. Built without the `gpio`
//! feature (the scanner app), [`GpioActuator::new`] always answers
//! [`GpioError::NoHardware`].
// Without `gpio` only the worker's tests use the line driver.
#![cfg_attr(not(feature = "gpio"), allow(dead_code, unused_imports))]

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

#[cfg(feature = "gpio")]
use rppal::gpio::{Gpio, OutputPin};
use sync_protocol::Decision;

use super::{Actuator, ActuatorError, GpioConfig, Line, Step, plan};

/// Constructing the GPIO actuator failed.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// Not a Raspberry Pi, or the GPIO device is not accessible.
    #[error("no GPIO hardware: {0}")]
    NoHardware(String),
    /// A pin could not be claimed (in use by another process or driver).
    #[error("GPIO pin {pin}: {message}")]
    Pin {
        /// BCM pin number.
        pin: u8,
        /// What rppal said.
        message: String,
    },
    /// The [`GpioConfig`] is inconsistent.
    #[error("GPIO config: {0}")]
    Config(String),
}

impl From<GpioError> for ActuatorError {
    fn from(e: GpioError) -> Self {
        ActuatorError(e.to_string())
    }
}

/// A digital output, as the worker sees it.
pub(crate) trait OutputLine: Send {
    /// Switches the line on (active) or off.
    fn set(&mut self, on: bool);
}

#[cfg(feature = "gpio")]
struct PinLine {
    pin: OutputPin,
    active_low: bool,
}

#[cfg(feature = "gpio")]
impl OutputLine for PinLine {
    fn set(&mut self, on: bool) {
        if on != self.active_low {
            self.pin.set_high();
        } else {
            self.pin.set_low();
        }
    }
}

/// The four gate outputs; a missing buzzer is `None`.
pub(crate) struct Lines<L> {
    pub(crate) relay: L,
    pub(crate) green: L,
    pub(crate) red: L,
    pub(crate) buzzer: Option<L>,
}

impl<L: OutputLine> Lines<L> {
    fn set(&mut self, line: Line, on: bool) {
        match line {
            Line::Relay => self.relay.set(on),
            Line::Green => self.green.set(on),
            Line::Red => self.red.set(on),
            Line::Buzzer => {
                if let Some(b) = self.buzzer.as_mut() {
                    b.set(on);
                }
            }
        }
    }

    fn all_off(&mut self) {
        self.all_off_but_relay();
        self.set(Line::Relay, false);
    }

    fn all_off_but_relay(&mut self) {
        for line in [Line::Green, Line::Red, Line::Buzzer] {
            self.set(line, false);
        }
    }
}

/// The relay release still pending in a pre-empted plan, re-timed from now.
///
/// A new decision cuts lights and buzzer short, but never a release pulse
/// already under way: the admitted person must still get through the
/// turnstile when the next scan (say, a reject) follows within the pulse.
fn pending_relay_release(pending: &[Step], elapsed: std::time::Duration) -> Option<Step> {
    let already_on = !pending.iter().any(|s| s.line == Line::Relay && s.on);
    pending
        .iter()
        .find(|s| s.line == Line::Relay && !s.on)
        .filter(|_| already_on)
        .map(|s| Step {
            at: s.at.saturating_sub(elapsed),
            ..*s
        })
}

/// Plays plans on `lines` until the sender is dropped; then finishes the
/// current plan, switches everything off and returns. A newer plan replaces
/// the current one at once, except that a relay pulse under way completes.
pub(crate) fn run_worker<L: OutputLine>(mut lines: Lines<L>, rx: Receiver<Vec<Step>>) {
    let mut current: Option<(Instant, std::vec::IntoIter<Step>)> = None;
    let mut open = true;
    loop {
        let next_due = current
            .as_ref()
            .and_then(|(start, steps)| steps.as_slice().first().map(|s| *start + s.at));
        let received = match (next_due, open) {
            (None, false) => break,
            (None, true) => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            (Some(due), true) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
            (Some(due), false) => {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                Err(RecvTimeoutError::Timeout)
            }
        };
        match received {
            Ok(mut steps) => {
                // Only the newest decision matters; older queued ones are stale.
                while let Ok(newer) = rx.try_recv() {
                    steps = newer;
                }
                let now = Instant::now();
                let carried = current.take().and_then(|(start, old)| {
                    pending_relay_release(old.as_slice(), now.saturating_duration_since(start))
                });
                lines.all_off_but_relay();
                if let Some(release) =
                    carried.filter(|_| !steps.iter().any(|s| s.line == Line::Relay))
                {
                    steps.push(release);
                    steps.sort_by_key(|s| s.at);
                } else {
                    lines.set(Line::Relay, false);
                }
                current = Some((now, steps.into_iter()));
            }
            Err(RecvTimeoutError::Disconnected) => open = false,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Some((start, steps)) = current.as_mut() {
            let elapsed = start.elapsed();
            while steps.as_slice().first().is_some_and(|s| s.at <= elapsed) {
                if let Some(s) = steps.next() {
                    lines.set(s.line, s.on);
                }
            }
            if steps.as_slice().is_empty() {
                current = None;
            }
        }
    }
    lines.all_off();
}

/// Drives a Pi gate's relay, lights and buzzer.
pub struct GpioActuator {
    config: GpioConfig,
    tx: Option<Sender<Vec<Step>>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GpioActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpioActuator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GpioActuator {
    /// Without the `gpio` feature: checks the config, then reports no hardware.
    #[cfg(not(feature = "gpio"))]
    pub fn new(config: GpioConfig) -> Result<Self, GpioError> {
        config.validate().map_err(GpioError::Config)?;
        Err(GpioError::NoHardware(
            "this build has no GPIO support (cargo feature `gpio`)".into(),
        ))
    }

    /// Claims the configured pins (all off) and starts the worker.
    #[cfg(feature = "gpio")]
    pub fn new(config: GpioConfig) -> Result<Self, GpioError> {
        config.validate().map_err(GpioError::Config)?;
        let gpio = Gpio::new().map_err(|e| GpioError::NoHardware(e.to_string()))?;
        let claim = |pin: u8, active_low: bool| -> Result<PinLine, GpioError> {
            let p = gpio.get(pin).map_err(|e| GpioError::Pin {
                pin,
                message: e.to_string(),
            })?;
            let pin = if active_low {
                p.into_output_high()
            } else {
                p.into_output_low()
            };
            Ok(PinLine { pin, active_low })
        };
        let lines = Lines {
            relay: claim(config.relay_pin, config.relay_active_low)?,
            green: claim(config.green_pin, false)?,
            red: claim(config.red_pin, false)?,
            buzzer: config.buzzer_pin.map(|p| claim(p, false)).transpose()?,
        };
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("gpio-actuator".into())
            .spawn(move || run_worker(lines, rx))
            .map_err(|e| GpioError::NoHardware(format!("cannot start GPIO worker: {e}")))?;
        Ok(Self {
            config,
            tx: Some(tx),
            worker: Some(worker),
        })
    }
}

impl Actuator for GpioActuator {
    fn signal(&mut self, decision: &Decision) -> Result<(), ActuatorError> {
        let steps = plan(decision.outcome, &self.config);
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(steps).ok())
            .ok_or_else(|| ActuatorError("GPIO worker stopped".into()))
    }
}

impl Drop for GpioActuator {
    /// Lets the running signal finish (a turnstile pulse is never cut
    /// short by shutdown) and leaves every line off.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use sync_protocol::{Outcome, Reason};

    type Log = Arc<Mutex<Vec<(Line, bool)>>>;

    struct FakeLine(Line, Log);

    impl OutputLine for FakeLine {
        fn set(&mut self, on: bool) {
            self.1
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((self.0, on));
        }
    }

    fn fake_lines(log: &Log) -> Lines<FakeLine> {
        Lines {
            relay: FakeLine(Line::Relay, log.clone()),
            green: FakeLine(Line::Green, log.clone()),
            red: FakeLine(Line::Red, log.clone()),
            buzzer: Some(FakeLine(Line::Buzzer, log.clone())),
        }
    }

    fn fast_config() -> GpioConfig {
        GpioConfig {
            relay_pulse_ms: 2,
            light_ms: 5,
            buzzer_pattern_ms: vec![1, 1, 1],
            ..GpioConfig::default()
        }
    }

    #[test]
    fn worker_plays_a_plan_to_the_end_and_leaves_lines_off() {
        let log = Log::default();
        let (tx, rx) = mpsc::channel();
        tx.send(plan(Outcome::Admit, &fast_config()))
            .expect("worker alive");
        drop(tx);
        run_worker(fake_lines(&log), rx);
        let events = log.lock().expect("log").clone();
        let ons: Vec<_> = events.iter().filter(|e| e.1).map(|e| e.0).collect();
        assert_eq!(
            ons,
            [Line::Relay, Line::Green],
            "an admit drives relay and green"
        );
        let tail = &events[events.len() - 4..];
        assert!(
            tail.iter().all(|e| !e.1),
            "shutdown leaves all lines off: {events:?}"
        );
    }

    #[test]
    fn a_queued_newer_decision_replaces_a_stale_one() {
        let log = Log::default();
        let (tx, rx) = mpsc::channel();
        let config = fast_config();
        tx.send(plan(Outcome::Admit, &config))
            .expect("worker alive");
        tx.send(plan(Outcome::Reject(Reason::Revoked), &config))
            .expect("worker alive");
        drop(tx);
        run_worker(fake_lines(&log), rx);
        let events = log.lock().expect("log").clone();
        assert!(
            events.iter().all(|e| !(e.0 == Line::Relay && e.1)),
            "the stale admit must not open the gate after a newer reject: {events:?}"
        );
        assert!(events.contains(&(Line::Red, true)), "the reject is shown");
    }

    #[test]
    fn a_release_pulse_under_way_survives_pre_emption() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let admit = plan(Outcome::Admit, &GpioConfig::default());
        let started: Vec<Step> = admit.iter().copied().filter(|s| s.at > ms(0)).collect();
        assert_eq!(
            pending_relay_release(&started, ms(200)),
            Some(Step {
                at: ms(300),
                line: Line::Relay,
                on: false
            }),
            "200 ms into a 500 ms pulse, 300 ms of it remain"
        );
        assert_eq!(
            pending_relay_release(&admit, ms(0)),
            None,
            "a plan not started yet has no pulse to protect"
        );
        let reject = plan(Outcome::Reject(Reason::Revoked), &GpioConfig::default());
        assert_eq!(pending_relay_release(&reject, ms(10)), None);
    }

    #[test]
    fn off_a_pi_construction_says_no_gpio_hardware() {
        if std::path::Path::new("/dev/gpiomem").exists() {
            return; // a real Pi: construction may legitimately succeed
        }
        let err = GpioActuator::new(GpioConfig::default()).expect_err("no GPIO here");
        assert!(matches!(err, GpioError::NoHardware(_)), "{err:?}");
        assert!(err.to_string().starts_with("no GPIO hardware"), "{err}");
    }

    #[test]
    fn a_bad_config_is_refused_before_touching_hardware() {
        let config = GpioConfig {
            red_pin: 17,
            ..GpioConfig::default()
        };
        let err = GpioActuator::new(config).expect_err("relay and red share pin 17");
        assert!(matches!(err, GpioError::Config(_)), "{err:?}");
    }
}
