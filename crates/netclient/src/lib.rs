//! The client side of Rotor's outgoing connections: one TCP / rustls (ring) stack shared by
//! every component that calls another server — the HTTP proxies and the gRPC proxies
//! (rotor-proxy) and the JWKS client (rotor-jwks).
//!
//! * [`TlsOptions`] are the TLS settings of one outgoing client (Centrifugo's `tls` object:
//!   custom CA, client certificate for mTLS, `server_name`, `insecure_skip_verify`); PEM values
//!   are PEM text or a file path. [`client_config`] turns them into a rustls configuration;
//!   [`client_config_named`] too, verifying the certificate against `server_name` itself for
//!   clients that cannot be given a TLS name (async-nats in rotor-broker-nats).
//! * [`system_config`] is the configuration of plain `https`: the system roots, loaded once
//!   per process on first use.
//! * [`Connector`] is the connector of hyper-util's pooled client (and of a tonic channel):
//!   TCP, then TLS for `https` URIs, or for every connection when asked.

mod config;
mod connector;
#[cfg(test)]
mod test_pki;
mod verifier;

pub use config::{
    client_config, client_config_named, server_name, system_config, TlsError, TlsOptions,
};
pub use connector::{Connector, Stream};
/// The rustls version the configurations are built with.
pub use tokio_rustls::rustls;
pub use tokio_rustls::rustls::pki_types::ServerName;
