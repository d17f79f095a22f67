//! Fuzz target: see `almanac::fuzzing::path` (the replay test calls the same function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| almanac::fuzzing::path(data));
