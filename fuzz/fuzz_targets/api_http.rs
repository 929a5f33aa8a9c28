#![no_main]
//! libFuzzer harness of `rotor_fuzz::api_http` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::api_http(data));
