//! Roles on the device and the kiosk PIN.
//!
//! A steward can scan; a supervisor can also check in by hand, switch
//! entry/exit and change settings. Locking (kiosk mode) drops to steward;
//! only the PIN brings the supervisor back. Five wrong PINs in a row lock
//! the PIN out for 30 s, doubling with each further failure, so a PIN of
//! four digits cannot be guessed at the door.
//!
//! The PIN is stored as a salted SHA-256 (it only guards a kiosk against
//! passers-by; the device's secrets are protected by the OS account).

use crate::error::AppError;
use crate::view::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Wrong PINs allowed before a lockout.
pub const FREE_ATTEMPTS: u32 = 5;
/// First lockout.
pub const LOCKOUT_MS: u64 = 30_000;

/// A stored PIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinHash {
    salt: String,
    hash: String,
}

fn digest(salt: &str, pin: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"gatehouse-scanner-pin:");
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(pin.as_bytes());
    hex::encode(h.finalize())
}

impl PinHash {
    /// Hashes a new PIN (4 to 12 digits) with a fresh salt.
    pub fn new(pin: &str) -> Result<Self, AppError> {
        if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AppError::Invalid("the PIN must be 4 to 12 digits".into()));
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| AppError::Invalid(format!("no randomness for the PIN salt: {e}")))?;
        let salt = hex::encode(salt);
        Ok(Self {
            hash: digest(&salt, pin),
            salt,
        })
    }

    fn matches(&self, pin: &str) -> bool {
        digest(&self.salt, pin) == self.hash
    }
}

/// The role in force and the PIN guarding the supervisor role.
#[derive(Clone, Debug)]
pub struct Lock {
    role: Role,
    pin: Option<PinHash>,
    failures: u32,
    locked_until_ms: u64,
}

impl Lock {
    /// A device starts as supervisor when no PIN is set yet (the person
    /// setting it up), otherwise locked (steward) until the PIN is given.
    pub fn new(pin: Option<PinHash>) -> Self {
        let role = if pin.is_some() {
            Role::Steward
        } else {
            Role::Supervisor
        };
        Self {
            role,
            pin,
            failures: 0,
            locked_until_ms: 0,
        }
    }

    /// Supervisor without the PIN: only right after the person setting the
    /// device up chose it.
    pub fn unlock_after_setup(&mut self) {
        self.failures = 0;
        self.role = Role::Supervisor;
    }

    /// The role in force.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether a PIN is set.
    pub fn pin_set(&self) -> bool {
        self.pin.is_some()
    }

    /// The stored PIN, for persisting.
    pub fn pin(&self) -> Option<&PinHash> {
        self.pin.as_ref()
    }

    /// Refuses unless the supervisor role is in force.
    pub fn require_supervisor(&self) -> Result<(), AppError> {
        match self.role {
            Role::Supervisor => Ok(()),
            Role::Steward => Err(AppError::NeedsSupervisor),
        }
    }

    /// Sets or changes the PIN (supervisor only).
    pub fn set_pin(&mut self, pin: &str) -> Result<(), AppError> {
        self.require_supervisor()?;
        self.pin = Some(PinHash::new(pin)?);
        Ok(())
    }

    /// Kiosk mode: steward until the PIN is given. Needs a PIN, or nobody
    /// could unlock it again.
    pub fn lock(&mut self) -> Result<(), AppError> {
        if self.pin.is_none() {
            return Err(AppError::Invalid(
                "set a PIN first, or nobody can unlock the kiosk again".into(),
            ));
        }
        self.role = Role::Steward;
        Ok(())
    }

    /// Supervisor again with the right PIN.
    pub fn unlock(&mut self, pin: &str, now_ms: u64) -> Result<Role, AppError> {
        if now_ms < self.locked_until_ms {
            return Err(AppError::PinLockedOut {
                secs: (self.locked_until_ms - now_ms).div_ceil(1000),
            });
        }
        let Some(held) = &self.pin else {
            self.role = Role::Supervisor;
            return Ok(self.role);
        };
        if held.matches(pin) {
            self.failures = 0;
            self.role = Role::Supervisor;
            return Ok(self.role);
        }
        self.failures += 1;
        if self.failures >= FREE_ATTEMPTS {
            let doublings = (self.failures - FREE_ATTEMPTS).min(10);
            self.locked_until_ms = now_ms + (LOCKOUT_MS << doublings);
        }
        Err(AppError::WrongPin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steward_cannot_do_supervisor_work_until_the_pin_unlocks() {
        let mut lock = Lock::new(None);
        assert_eq!(lock.role(), Role::Supervisor, "the person setting up");
        lock.set_pin("2468").expect("set");
        lock.lock().expect("lock");
        assert!(matches!(
            lock.require_supervisor(),
            Err(AppError::NeedsSupervisor)
        ));
        assert!(matches!(
            lock.set_pin("1111"),
            Err(AppError::NeedsSupervisor)
        ));
        assert!(matches!(lock.unlock("1357", 0), Err(AppError::WrongPin)));
        assert_eq!(lock.unlock("2468", 0).expect("right pin"), Role::Supervisor);
        lock.require_supervisor().expect("supervisor again");
    }

    #[test]
    fn five_wrong_pins_lock_out_even_the_right_one_for_30_s() {
        let mut lock = Lock::new(Some(PinHash::new("2468").expect("pin")));
        for _ in 0..FREE_ATTEMPTS {
            assert!(matches!(
                lock.unlock("0000", 1_000),
                Err(AppError::WrongPin)
            ));
        }
        assert!(matches!(
            lock.unlock("2468", 2_000),
            Err(AppError::PinLockedOut { secs: 29 })
        ));
        assert_eq!(
            lock.unlock("2468", 31_001).expect("after the lockout"),
            Role::Supervisor
        );
    }

    #[test]
    fn pins_must_be_digits_and_locking_needs_one() {
        assert!(PinHash::new("12a4").is_err());
        assert!(PinHash::new("123").is_err());
        let mut lock = Lock::new(None);
        assert!(lock.lock().is_err(), "no PIN: a kiosk nobody could unlock");
        assert_eq!(lock.role(), Role::Supervisor);
    }

    #[test]
    fn a_restarted_device_with_a_pin_starts_locked() {
        let pin = PinHash::new("2468").expect("pin");
        assert_eq!(Lock::new(Some(pin)).role(), Role::Steward);
    }
}
