//! The gate node's edge engine: frame sources, QR decoding, the offline
//! admission pipeline, actuators, the SQLite scan log and sync with peers and
//! the cloud. The `gate-node` binary is the Raspberry Pi daemon and CLI; the
//! scanner app reuses this library.

pub mod actuator;
pub mod decode;
pub mod engine;
pub mod fixture;
pub mod frames;
pub mod provision;
pub mod store;
pub mod time;
