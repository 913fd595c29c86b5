//! Integration tests of the cloud over real HTTP. Every scenario runs on
//! SQLite and on PostgreSQL (see `common::both!`).

mod common;

mod auth;
mod authz;
mod checkin;
mod device_sync;
mod devices;
mod events;
mod flash_sale;
mod gateway;
mod limits;
mod manifest;
mod market;
mod order_guards;
mod orders;
mod payments;
mod reports;
mod shop;
mod startup;
mod tickets;
mod transfers;
mod webhooks;
