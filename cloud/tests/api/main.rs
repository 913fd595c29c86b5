//! Integration tests of the cloud over real HTTP. Every scenario runs on
//! SQLite and on PostgreSQL (see `common::both!`).

mod anvil;
mod chain;
mod common;
mod contract;

mod auth;
mod authz;
mod backup;
mod card;
mod checkin;
mod cluster;
mod console_api;
mod correctness;
mod device_sync;
mod devices;
mod doors;
mod events;
mod flash_sale;
mod gateway;
mod group_commit;
mod healthcheck;
mod issuance;
mod key_rotation;
mod limits;
mod manifest;
mod market;
mod notify;
mod order_guards;
mod orders;
mod payments;
mod process;
mod push;
mod rekey;
mod replicas;
mod reports;
mod shop;
mod staff_enroll;
mod startup;
mod tickets;
mod transfers;
mod webhooks;
mod zones;
