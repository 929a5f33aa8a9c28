#![no_main]
//! libFuzzer harness of `rotor_fuzz::protocol_protobuf` (FUZZING.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz::protocol_protobuf(data));
