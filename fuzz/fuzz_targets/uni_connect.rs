#![no_main]
//! libFuzzer harness of `rotor_fuzz::uni_connect` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::uni_connect(data));
