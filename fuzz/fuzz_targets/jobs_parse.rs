//! Fuzz target `jobs_parse`: see `petit::testing::fuzz::jobs_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| petit::testing::fuzz::jobs_parse(data));
