//! rotor-jwks against a real JWKS server on a local socket, with tokens signed by Python's
//! `cryptography` and verified by rotor-core's verifier through the JWKS key set.

mod cache;
mod fetch;
mod support;
mod tenants;
