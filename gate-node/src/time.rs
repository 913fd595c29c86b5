//! The best time a gate has, and whether it trusts it.
//!
//! A Raspberry Pi has no battery clock: after a power cut its wall clock may
//! read 1970 until NTP answers, and a venue may have no NTP at all. So:
//!
//! - the last known good time survives reboots as the persisted HLC; since
//!   this boot, real time is at least that plus the monotonic time elapsed,
//!   which gives a floor that a wall clock below it cannot undercut;
//! - a reading from the cloud (`X-Gatehouse-Time` on every device response)
//!   or from a peer whose own time is trusted anchors the clock: best time is
//!   then that reading plus monotonic time since, and is trusted;
//! - without an anchor the system clock is used, trusted only if the
//!   operator says it is NTP-disciplined (`trust_system_clock`);
//! - scans are ordered by the HLC, never by this reading, so a clock that
//!   jumps backwards cannot reorder or lose scans.
//!
//! No hidden `SystemTime::now()`: everything reads a [`Clock`].

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use sync_protocol::{Hlc, TimeReading};

/// How long an anchor stays trusted without a fresh reading (monotonic
/// clocks drift by well under a second a day).
pub const ANCHOR_TTL_MS: u64 = 24 * 3600 * 1000;
/// A peer reading never replaces a cloud reading younger than this.
const CLOUD_PREFERENCE_MS: u64 = 10 * 60 * 1000;
/// Readings outside 2000..2200 are nonsense, whoever sends them.
const SANE_MIN_MS: u64 = 946_684_800_000;
const SANE_MAX_MS: u64 = 7_258_118_400_000;

/// Reads the system's clocks.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall clock, unix milliseconds (may be wrong, may jump).
    fn system_ms(&self) -> u64;
    /// Milliseconds since an arbitrary start; never goes backwards.
    fn monotonic_ms(&self) -> u64;
}

/// The operating system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock whose monotonic reading starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn system_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
    fn monotonic_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct FakeClock {
    system: AtomicU64,
    mono: AtomicU64,
}

impl FakeClock {
    /// A fake clock reading `system_ms` on the wall and 0 monotonic.
    pub fn new(system_ms: u64) -> Self {
        Self {
            system: AtomicU64::new(system_ms),
            mono: AtomicU64::new(0),
        }
    }
    /// Sets the wall clock (it may go backwards).
    pub fn set_system(&self, ms: u64) {
        self.system.store(ms, Ordering::SeqCst);
    }
    /// Lets `ms` pass on both clocks.
    pub fn advance(&self, ms: u64) {
        self.system.fetch_add(ms, Ordering::SeqCst);
        self.mono.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn system_ms(&self) -> u64 {
        self.system.load(Ordering::SeqCst)
    }
    fn monotonic_ms(&self) -> u64 {
        self.mono.load(Ordering::SeqCst)
    }
}

/// Where the best time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeAuthority {
    /// `X-Gatehouse-Time` from the cloud.
    Cloud,
    /// `X-Gatehouse-Time` from a peer whose time was trusted.
    Peer,
    /// The system clock.
    SystemClock,
    /// The last known good time plus time elapsed since boot.
    LastKnown,
}

impl TimeAuthority {
    /// The name it is serialized as (`cloud`, `peer`, `system_clock`, `last_known`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeAuthority::Cloud => "cloud",
            TimeAuthority::Peer => "peer",
            TimeAuthority::SystemClock => "system_clock",
            TimeAuthority::LastKnown => "last_known",
        }
    }
}

/// The best time now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BestTime {
    /// Unix milliseconds.
    pub ms: u64,
    /// Whether a trusted source vouches for it.
    pub trusted: bool,
    /// Where it came from.
    pub authority: TimeAuthority,
}

impl BestTime {
    /// The reading the decision takes.
    pub fn reading(&self) -> TimeReading {
        TimeReading {
            unix_secs: self.ms / 1000,
            trusted: self.trusted,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ms: u64,
    mono: u64,
    authority: TimeAuthority,
}

#[derive(Debug)]
struct State {
    anchor: Option<Anchor>,
    floor_ms: u64,
    floor_mono: u64,
}

/// The node's best-time source.
#[derive(Debug)]
pub struct TimeSource {
    clock: std::sync::Arc<dyn Clock>,
    trust_system_clock: bool,
    state: Mutex<State>,
}

impl TimeSource {
    /// A source whose floor is the persisted HLC `last_known`.
    pub fn new(
        clock: std::sync::Arc<dyn Clock>,
        trust_system_clock: bool,
        last_known: Hlc,
    ) -> Self {
        let floor_mono = clock.monotonic_ms();
        Self {
            clock,
            trust_system_clock,
            state: Mutex::new(State {
                anchor: None,
                floor_ms: last_known.physical_ms(),
                floor_mono,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clock behind this source.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The best time now.
    pub fn now(&self) -> BestTime {
        let mono = self.clock.monotonic_ms();
        let s = self.state();
        let floor = s.floor_ms + mono.saturating_sub(s.floor_mono);
        if let Some(a) = s.anchor
            && mono.saturating_sub(a.mono) < ANCHOR_TTL_MS
        {
            return BestTime {
                ms: a.ms + mono.saturating_sub(a.mono),
                trusted: true,
                authority: a.authority,
            };
        }
        let system = self.clock.system_ms();
        if system >= floor {
            BestTime {
                ms: system,
                trusted: self.trust_system_clock && system >= SANE_MIN_MS,
                authority: TimeAuthority::SystemClock,
            }
        } else {
            BestTime {
                ms: floor,
                trusted: false,
                authority: TimeAuthority::LastKnown,
            }
        }
    }

    /// Takes a time reading from the cloud or a trusted peer. Returns
    /// whether it was used. Nonsense readings are ignored; a peer never
    /// overrides a recent cloud reading.
    pub fn observe(&self, ms: u64, authority: TimeAuthority) -> bool {
        if !(SANE_MIN_MS..=SANE_MAX_MS).contains(&ms) {
            return false;
        }
        let mono = self.clock.monotonic_ms();
        let mut s = self.state();
        if authority == TimeAuthority::Peer
            && let Some(a) = s.anchor
            && a.authority == TimeAuthority::Cloud
            && mono.saturating_sub(a.mono) < CLOUD_PREFERENCE_MS
        {
            return false;
        }
        s.anchor = Some(Anchor {
            ms,
            mono,
            authority,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const T: u64 = 1_750_000_000_000;

    #[test]
    fn an_authoritys_name_is_its_serialized_form() {
        for a in [
            TimeAuthority::Cloud,
            TimeAuthority::Peer,
            TimeAuthority::SystemClock,
            TimeAuthority::LastKnown,
        ] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }

    #[test]
    fn a_pi_booting_in_1970_uses_the_last_known_time_untrusted() {
        let clock = Arc::new(FakeClock::new(5_000));
        let src = TimeSource::new(clock.clone(), true, Hlc::new(T, 3));
        let t = src.now();
        assert_eq!(
            (t.ms, t.trusted, t.authority),
            (T, false, TimeAuthority::LastKnown)
        );
        clock.advance(1_500);
        assert_eq!(
            src.now().ms,
            T + 1_500,
            "the floor moves with monotonic time"
        );
    }

    #[test]
    fn cloud_time_anchors_and_is_trusted_and_peers_do_not_override_it() {
        let clock = Arc::new(FakeClock::new(5_000));
        let src = TimeSource::new(clock.clone(), false, Hlc::default());
        assert!(
            !src.now().trusted,
            "an unconfirmed system clock is not trusted"
        );
        assert!(src.observe(T, TimeAuthority::Cloud));
        clock.advance(2_000);
        let t = src.now();
        assert_eq!(
            (t.ms, t.trusted, t.authority),
            (T + 2_000, true, TimeAuthority::Cloud)
        );
        assert!(
            !src.observe(T + 99_000, TimeAuthority::Peer),
            "the cloud is preferred"
        );
        assert!(!src.observe(3, TimeAuthority::Cloud), "nonsense is ignored");
        clock.advance(ANCHOR_TTL_MS);
        assert!(!src.now().trusted, "an anchor expires");
    }

    #[test]
    fn a_trusted_system_clock_is_used_when_ahead_of_the_floor() {
        let clock = Arc::new(FakeClock::new(T + 10));
        let src = TimeSource::new(clock, true, Hlc::new(T, 0));
        let t = src.now();
        assert_eq!(
            (t.ms, t.trusted, t.authority),
            (T + 10, true, TimeAuthority::SystemClock)
        );
    }
}
