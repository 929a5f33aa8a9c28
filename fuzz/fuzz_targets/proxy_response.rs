#![no_main]
//! libFuzzer harness of `rotor_fuzz::proxy_response` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::proxy_response(data));
