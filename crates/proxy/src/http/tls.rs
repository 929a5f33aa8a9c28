//! TLS of the proxies' transports. `http.tls` and `grpc.tls` are the client TLS options of
//! rotor-netclient, which holds the whole TCP / rustls (ring) stack (shared with the JWKS
//! client); this module converts them and builds an HTTP proxy's connector: plain `https`
//! uses the system roots, loaded once; a proxy with `http.tls.enabled` gets a configuration of
//! its own (custom CA, `insecure_skip_verify`, client certificate, `server_name`).

use rotor_netclient::Connector;

use crate::config::TlsSettings;

/// The connector of a proxy with its own `http.tls` (checked now).
pub(super) fn custom(s: &TlsSettings) -> Result<Connector, String> {
    Connector::from_options(s).map_err(|e| format!("http.tls: {e}"))
}
