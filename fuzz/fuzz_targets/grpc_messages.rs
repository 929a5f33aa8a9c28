#![no_main]
//! libFuzzer harness of `rotor_fuzz::grpc_messages` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::grpc_messages(data));
