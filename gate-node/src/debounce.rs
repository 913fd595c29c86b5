//! Repeat reads of one code are one scan.
//!
//! A code held in front of the camera is read on every frame, and a
//! handheld scanner may send a line twice. The engine asks its one
//! [`Debouncer`] before deciding, for every source alike (camera frames,
//! scanner lines, `POST /scan`): a read counts as a new scan only if the same
//! text was not read within the window before it. Every read, counted or
//! not, restarts that text's window, so a code that stays in view is one
//! scan however long it stays (a fixed window would turn a phone held for
//! three seconds into an admit followed by a red `already_inside`).
//!
//! Time is a parameter (the engine's monotonic clock, in milliseconds),
//! never read here, so tests drive it exactly. Memory is bounded: at most
//! `capacity` texts are remembered; when full, expired entries are dropped
//! first, then the least recently read.

use std::collections::HashMap;

/// The window a gate uses unless configured otherwise (`debounce_ms`):
/// longer than the gaps between reads of a code held a little unsteadily,
/// short enough that staff can deliberately re-scan a code after a reject.
pub const DEFAULT_WINDOW_MS: u64 = 2_000;

/// Longest text remembered (a credential is at most 311 characters; longer
/// texts are malformed and cheap to reject again).
pub const MAX_TEXT: usize = 512;

#[derive(Debug, Clone)]
struct Seen<V> {
    at_ms: u64,
    value: V,
}

/// Remembers recent reads and what each one came to (`V`: the engine keeps
/// its scan report, so a repeat answers with the original decision).
#[derive(Debug, Clone)]
pub struct Debouncer<V> {
    window_ms: u64,
    capacity: usize,
    seen: HashMap<String, Seen<V>>,
}

impl<V> Debouncer<V> {
    /// Default number of distinct texts remembered.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// Reads less than `window_ms` apart are one scan; 0 turns debouncing
    /// off (every read is a scan).
    pub fn new(window_ms: u64) -> Self {
        Self::with_capacity(window_ms, Self::DEFAULT_CAPACITY)
    }

    /// As [`Debouncer::new`], remembering at most `capacity` texts.
    pub fn with_capacity(window_ms: u64, capacity: usize) -> Self {
        Self {
            window_ms,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// If `text` was read less than the window before `now_ms`, this read
    /// is a repeat: its window restarts and the value remembered for the
    /// scan is returned. `None` means a new scan; call
    /// [`Debouncer::remember`] with its outcome.
    pub fn repeat(&mut self, text: &str, now_ms: u64) -> Option<&V> {
        let window = self.window_ms;
        let seen = self.seen.get_mut(text)?;
        // An earlier reading than the last (it cannot happen with a
        // monotonic clock) counts as no time passed, so it stays a repeat.
        if now_ms.saturating_sub(seen.at_ms) >= window {
            return None;
        }
        seen.at_ms = seen.at_ms.max(now_ms);
        Some(&seen.value)
    }

    /// Remembers that `text`, read at `now_ms`, was scanned as `value`.
    pub fn remember(&mut self, text: &str, now_ms: u64, value: V) {
        if self.window_ms == 0 || text.len() > MAX_TEXT {
            return;
        }
        if !self.seen.contains_key(text) {
            self.make_room(now_ms);
        }
        self.seen.insert(
            text.to_owned(),
            Seen {
                at_ms: now_ms,
                value,
            },
        );
    }

    /// Texts currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no text is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.seen.len() < self.capacity {
            return;
        }
        let window = self.window_ms;
        self.seen
            .retain(|_, s| now_ms.saturating_sub(s.at_ms) < window);
        if self.seen.len() >= self.capacity
            && let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.at_ms)
                .map(|(text, _)| text.clone())
        {
            self.seen.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 1_500;

    /// Reads `text` at `at`: true if it is a new scan (then remembered).
    fn read(d: &mut Debouncer<()>, text: &str, at: u64) -> bool {
        let new = d.repeat(text, at).is_none();
        if new {
            d.remember(text, at, ());
        }
        new
    }

    #[test]
    fn a_held_code_is_one_scan_however_long_it_stays() {
        let mut d = Debouncer::new(WINDOW);
        assert!(read(&mut d, "A", 0), "first read is a scan");
        for i in 1..300 {
            assert!(!read(&mut d, "A", 33 * i), "read {i} of a held code");
        }
    }

    #[test]
    fn a_code_shown_again_after_a_silent_window_is_a_new_scan() {
        let mut d = Debouncer::new(WINDOW);
        assert!(read(&mut d, "A", 0));
        assert!(!read(&mut d, "A", WINDOW - 1));
        assert!(
            read(&mut d, "A", 2 * WINDOW - 1),
            "a full window of silence ends the scan"
        );
    }

    #[test]
    fn a_repeat_returns_what_the_scan_came_to() {
        let mut d = Debouncer::new(WINDOW);
        assert_eq!(d.repeat("A", 0), None);
        d.remember("A", 0, "admit");
        assert_eq!(d.repeat("A", 10), Some(&"admit"));
    }

    #[test]
    fn different_codes_do_not_suppress_each_other() {
        let mut d = Debouncer::new(WINDOW);
        assert!(read(&mut d, "A", 0));
        assert!(read(&mut d, "B", 10));
        assert!(!read(&mut d, "A", 20), "A is still in its window");
    }

    #[test]
    fn an_earlier_reading_is_a_repeat_not_a_panic() {
        let mut d = Debouncer::new(WINDOW);
        assert!(read(&mut d, "A", 10_000));
        assert!(!read(&mut d, "A", 5_000), "clock going back stays a repeat");
    }

    #[test]
    fn a_zero_window_turns_debouncing_off() {
        let mut d = Debouncer::new(0);
        assert!(read(&mut d, "A", 0));
        assert!(read(&mut d, "A", 0), "every read is a scan");
        assert!(d.is_empty(), "nothing is remembered");
    }

    #[test]
    fn memory_is_bounded_and_evicts_the_oldest() {
        let mut d = Debouncer::with_capacity(WINDOW, 3);
        for (i, text) in ["A", "B", "C", "D"].iter().enumerate() {
            assert!(read(&mut d, text, i as u64));
        }
        assert_eq!(d.len(), 3, "capacity caps memory under a flood of codes");
        assert!(read(&mut d, "A", 5), "A was evicted, so it counts");
        assert!(!read(&mut d, "D", 6), "D is remembered");
        d.remember(&"X".repeat(MAX_TEXT + 1), 7, ());
        assert_eq!(d.len(), 3, "overlong texts are never remembered");
    }
}
