//! Integration tests of the cloud over real HTTP. Every scenario runs on
//! SQLite and on PostgreSQL (see `common::both!`).

mod common;

mod auth;
mod authz;
mod card;
mod checkin;
mod console_api;
mod device_sync;
mod devices;
mod doors;
mod events;
mod flash_sale;
mod gateway;
mod manifest;
mod market;
mod order_guards;
mod orders;
mod payments;
mod reports;
mod shop;
mod tickets;
mod transfers;
mod webhooks;
