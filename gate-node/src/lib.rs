//! The gate node's edge engine: frame sources, QR decoding, the offline
//! admission pipeline, actuators, the SQLite scan log and sync with peers and
//! the cloud. The `gate-node` binary is the Raspberry Pi daemon and CLI; the
//! scanner app reuses this library.

pub mod actuator;
pub mod decode;
pub mod frames;

/// Synthetic distorted QR frames for tests and benchmarks (feature
/// `corpus`; this crate's own tests and benches turn it on).
#[cfg(feature = "corpus")]
pub mod corpus;
