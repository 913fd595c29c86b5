//! Integration tests of the cloud over real HTTP. Every scenario runs on
//! SQLite and on PostgreSQL (see `common::both!`).

mod common;

mod auth;
mod authz;
mod checkin;
mod device_sync;
mod devices;
mod events;
mod gateway;
mod manifest;
mod reports;
mod tickets;
