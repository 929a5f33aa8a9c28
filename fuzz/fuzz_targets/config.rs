#![no_main]
//! libFuzzer harness of `rotor_fuzz::config` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::config(data));
