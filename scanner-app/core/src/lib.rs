//! The door-staff scanner app without its window. The Tauri shell
//! (`scanner-app`) forwards each command to one [`App`] method; everything
//! that decides, records, syncs or locks lives here and is tested without a
//! window, on the gate node's engine and store (same decision, same
//! durability, same CRDT sync as a gate).
//!
//! - [`app`]: the commands; [`device`]: the enrolled device at work
//!   (engines, peer hub, cloud sync, local API).
//! - [`session`]: staff sign-in and enrollment through the cloud.
//! - [`search`]: attendee search over the local manifest.
//! - [`words`]: decisions in words for the result screen.
//! - [`lock`]: steward/supervisor roles and the kiosk PIN.
//! - [`camera`]: webcam and injected frame sources.
//! - [`view`], [`bindings`]: the values the window sees, and their
//!   generated TypeScript declarations.

pub mod app;
pub mod bindings;
pub mod camera;
pub mod device;
pub mod error;
pub mod lock;
pub mod search;
pub mod session;
pub mod view;
pub mod words;

pub use app::App;
pub use device::SyncConfig;
pub use error::AppError;

#[cfg(test)]
mod tests;
