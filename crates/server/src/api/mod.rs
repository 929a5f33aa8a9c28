//! The server API transports: HTTP (`http`: `POST /api` with 2.x envelopes, `POST /api/<method>`
//! and `/api/batch` with the current bodies) and gRPC (`grpc`: the 2.x `api.Centrifugo` and the
//! current `centrifugal.centrifugo.api.CentrifugoApi` services on one listener). Both decode into
//! `rotor_protocol::api` requests, run them with `Node::api_execute` and encode the typed result
//! in their own shape.

pub mod grpc;
pub mod http;

pub use http::routes;
