//! The gate node's edge engine: frame sources, QR decoding, the offline
//! admission pipeline, actuators, the SQLite scan log and sync with peers and
//! the cloud. The `gate-node` binary is the Raspberry Pi daemon and CLI; the
//! scanner app reuses this library.
//!
//! - [`frames`], [`decode`]: camera, image and scanner-line sources; QR
//!   decoders (rxing by default, measured best).
//! - [`source`]: the configured source feeding the engine on its own thread.
//! - [`engine`]: text → debounce → decision → durable record → actuator →
//!   peers; [`debounce`]: repeat reads of one code are one scan.
//! - [`actuator`]: GPIO relay, lights and buzzer on a Pi; a recorder for
//!   tests and desktops.
//! - [`store`]: SQLite (WAL, `synchronous=FULL`): identity, keys, manifest,
//!   check-in CRDT, cursors, persisted HLC.
//! - [`time`]: the best time a gate has, and whether it is trusted.
//! - [`peer`], [`discovery`]: LAN sync and mDNS.
//! - [`cloud`], [`cloud_sync`]: the device API client and its sync loop.
//! - [`api`]: the local HTTP API; [`daemon`]: `gate-node run`;
//!   [`service`]: systemd readiness and watchdog.
//! - [`config`], [`provision`], [`fixture`]: configuration, offline
//!   provisioning bundles, deterministic test events.

pub mod actuator;
pub mod api;
pub mod cloud;
pub mod cloud_push;
pub mod cloud_sync;
pub mod config;
pub mod daemon;
pub mod debounce;
pub mod decode;
pub mod discovery;
pub mod engine;
pub mod fixture;
pub mod frames;

/// Synthetic distorted QR frames for tests and benchmarks (feature
/// `corpus`; this crate's own tests and benches turn it on).
#[cfg(feature = "corpus")]
pub mod corpus;
pub mod peer;
pub mod provision;
pub mod service;
pub mod source;
pub mod store;
pub mod time;
