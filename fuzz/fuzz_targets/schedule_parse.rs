//! Fuzz target `schedule_parse`: see `petit::testing::fuzz::schedule_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| petit::testing::fuzz::schedule_parse(data));
