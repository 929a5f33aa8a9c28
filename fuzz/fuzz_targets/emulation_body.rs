#![no_main]
//! libFuzzer harness of `rotor_fuzz::emulation_body` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::emulation_body(data));
