//! What the gate does with a decision: pulse the turnstile relay, light green
//! or red, sound the buzzer. One trait, a GPIO implementation for the
//! Raspberry Pi and a recording one for tests and desktops.

use sync_protocol::Decision;

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
