//! Integration tests of the protocol crate: test vectors, decision scenarios,
//! sync between replicas, and property tests (round trips, tamper rejection,
//! CRDT laws, convergence, decoders never panicking).

mod common;
mod decision;
mod props;
mod roster;
mod sizes;
mod sync;
mod vectors;
