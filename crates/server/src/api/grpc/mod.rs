//! The gRPC server API (GRPC-API.md §1, §2, §4): both generations' services on one listener.
//!
//! * `api.Centrifugo` (Centrifugo 2.x) and its pre-2.2.1 name `api.Centrifuge`, with the same
//!   handlers ([`v1`]): 2.x rules, 2.x error texts, `result` left unset on success for methods
//!   without result fields, `channels` as a list, History returning everything.
//! * `centrifugal.centrifugo.api.CentrifugoApi` (Centrifugo 3–6) ([`v6`]): current rules, an
//!   (empty) `result` on every success, `Batch`, and the transport error mode
//!   (`grpc_api.error_mode: transport` or per call the metadata
//!   `x-centrifugo-error-mode: transport`, see [`errors`]).
//! * Both share one key: metadata `authorization` must be exactly `apikey <key>` (see
//!   [`auth`], which also guards reflection — stricter than Centrifugo). **Empty key:**
//!   Centrifugo accepts every call; Rotor accepts calls without a key only from loopback and
//!   private-network peers (answering UNAUTHENTICATED to other peers, with a warning at
//!   start) unless `grpc_api_insecure` / `grpc_api.insecure` is on, which accepts every peer.
//! * Requests are converted into `rotor_protocol::api` params ([`convert`]) and run by
//!   `Node::api_execute` with protocol `grpc` (the API metrics count them).
//! * Bad input ([`fixup`]): over the receive limit → RESOURCE_EXHAUSTED; a body that is not
//!   the method's protobuf message (also invalid UTF-8 in a string field) → INVALID_ARGUMENT;
//!   an unknown service or method (the PRO methods are not declared) → UNIMPLEMENTED.
//! * The listener ([`listener`]): plain h2c with prior knowledge or TLS (optionally mutual),
//!   reflection (v1 and v1alpha) when enabled, graceful stop on shutdown.

pub(crate) mod auth;
pub(crate) mod convert;
pub(crate) mod errors;
pub(crate) mod fixup;
pub(crate) mod listener;
pub(crate) mod service_v1;
pub(crate) mod service_v6;
pub(crate) mod tls;

pub(crate) use listener::spawn;

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
