//! Fuzz target `record_decode`: see `petit::testing::fuzz::record_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| petit::testing::fuzz::record_decode(data));
