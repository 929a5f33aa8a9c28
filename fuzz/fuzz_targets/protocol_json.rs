#![no_main]
//! libFuzzer harness of `rotor_fuzz::protocol_json` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::protocol_json(data));
