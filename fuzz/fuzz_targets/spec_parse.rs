//! Fuzz target `spec_parse`: see `petit::testing::fuzz::spec_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| petit::testing::fuzz::spec_parse(data));
