#![no_main]
//! libFuzzer harness of `rotor_fuzz::websocket_deflate` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::websocket_deflate(data));
