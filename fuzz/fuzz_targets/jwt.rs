#![no_main]
//! libFuzzer harness of `rotor_fuzz::jwt` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::jwt(data));
