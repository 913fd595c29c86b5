//! Hybrid logical clock (Kulkarni et al., 2014), packed in a `u64`: the high
//! 48 bits are milliseconds since the unix epoch, the low 16 bits a logical
//! counter. If `a` happened before `b` (same node, or `b`'s node had received
//! `a`) then `hlc(a) < hlc(b)`, even when wall clocks disagree or jump back.
//!
//! Sans-IO: callers pass the wall-clock reading; the gate node persists
//! [`HlcClock::last`] so a reboot without a battery clock never goes back.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One HLC timestamp.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hlc(pub u64);

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// Largest physical time representable (48 bits of milliseconds, year 10889).
pub const MAX_PHYSICAL_MS: u64 = (1 << 48) - 1;

impl Hlc {
    /// A timestamp from its parts; `physical_ms` is clamped to 48 bits.
    pub fn new(physical_ms: u64, logical: u16) -> Self {
        Self((physical_ms.min(MAX_PHYSICAL_MS) << LOGICAL_BITS) | u64::from(logical))
    }
    /// Milliseconds since the unix epoch.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }
    /// The logical counter.
    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }
    /// The smallest timestamp greater than `self` (the logical counter
    /// overflows into the next millisecond).
    fn successor(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hlc({}.{})", self.physical_ms(), self.logical())
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// A node's hybrid logical clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A clock that will never issue a timestamp at or below `last` (the value
    /// persisted before a restart, or `Hlc::default()`).
    pub fn new(last: Hlc) -> Self {
        Self { last }
    }
    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }
    /// A timestamp for a local event at wall-clock `wall_ms`.
    pub fn now(&mut self, wall_ms: u64) -> Hlc {
        let wall = Hlc::new(wall_ms, 0);
        self.last = if wall > self.last {
            wall
        } else {
            self.last.successor()
        };
        self.last
    }
    /// Merges a timestamp received from another node, returning the clock's
    /// new value (greater than both `remote` and everything issued before).
    pub fn observe(&mut self, remote: Hlc, wall_ms: u64) -> Hlc {
        let wall = Hlc::new(wall_ms, 0);
        let max = self.last.max(remote);
        self.last = if wall > max { wall } else { max.successor() };
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_when_the_wall_clock_does() {
        let mut c = HlcClock::default();
        let a = c.now(1_000);
        let b = c.now(500);
        let d = c.now(1_000);
        assert!(a < b && b < d, "{a:?} {b:?} {d:?}");
        assert_eq!(b.physical_ms(), 1_000);
        assert_eq!(b.logical(), 1);
        let e = c.now(2_000);
        assert_eq!(e, Hlc::new(2_000, 0));
    }

    #[test]
    fn observing_a_remote_orders_after_it() {
        let mut c = HlcClock::new(Hlc::new(100, 0));
        let remote = Hlc::new(5_000, 7);
        let after = c.observe(remote, 200);
        assert!(after > remote);
        assert!(c.now(200) > after);
    }

    #[test]
    fn logical_overflow_carries_into_the_next_millisecond() {
        let mut c = HlcClock::new(Hlc::new(10, u16::MAX));
        let next = c.now(10);
        assert_eq!(next, Hlc::new(11, 0));
    }
}
