//! `make fuzz` target; the invariants are in `cutoff_fuzz::manual_request` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cutoff_fuzz::manual_request(data));
