#![no_main]
//! libFuzzer harness of `rotor_fuzz::sockjs` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::sockjs(data));
