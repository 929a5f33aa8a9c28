#![no_main]
//! libFuzzer harness of `rotor_fuzz::jwks` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::jwks(data));
