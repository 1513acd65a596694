//! Fuzz target `core_step`: see `petit::testing::fuzz::core_step`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| petit::testing::fuzz::core_step(data));
