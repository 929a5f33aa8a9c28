//! The gRPC server API (GRPC-API.md §1, §2, §4): both generations' services on one listener.
//! (Being built: see the issue 15 helper.)

/// Messages and service traits generated from `proto/api_v1.proto` (package `api`).
#[allow(clippy::all, clippy::pedantic, dead_code, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/api.rs"));
}

/// Messages and service traits generated from `proto/api_v6.proto`.
#[allow(clippy::all, clippy::pedantic, dead_code, missing_docs)]
pub mod v6 {
    include!(concat!(env!("OUT_DIR"), "/centrifugal.centrifugo.api.rs"));
}

/// The descriptor set of both API protos (for reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/api_descriptor.bin"));
