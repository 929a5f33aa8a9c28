#![no_main]
//! libFuzzer harness of `rotor_fuzz::websocket_upgrade` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::websocket_upgrade(data));
