//! End-to-end scenarios on real processes: the `cloud` binary on SQLite and
//! two or three `gate-node` daemons on loopback, every link behind a proxy
//! the scenario cuts and heals. Waits poll with deadlines; no fixed sleeps
//! decide an outcome.

mod bad_input;
mod console;
mod crash;
mod gates;
mod hostile_lan;
mod keys;
mod latency;
mod push;
mod shop;
mod zones;

pub use e2e::venue::{SETTLE, Venue, assert_decision, scan_ids};
