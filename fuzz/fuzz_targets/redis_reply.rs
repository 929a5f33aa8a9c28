#![no_main]
//! libFuzzer harness of `rotor_fuzz::redis_reply` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::redis_reply(data));
