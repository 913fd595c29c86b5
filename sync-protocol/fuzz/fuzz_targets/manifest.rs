#![no_main]
//! See `sync_protocol::fuzzing::manifest`; the same entry point runs in the
//! stable property tests.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_protocol::fuzzing::manifest(data));
