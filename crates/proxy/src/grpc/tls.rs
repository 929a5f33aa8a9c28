//! TLS for a gRPC proxy (`grpc.tls`): the client configuration of rotor-netclient (the CA to
//! trust or the system roots, an optional client certificate, `insecure_skip_verify`),
//! offering `h2` by ALPN, with the server name `server_name` or else the target's host,
//! checked at start. The channel's URI says `http` (tonic does no TLS of its own), so the
//! connector runs TLS on every connection.

use std::sync::Arc;

use rotor_netclient::{client_config, server_name, Connector};

use crate::config::TlsSettings;

/// The connector of a channel to `host` with `tls` enabled.
pub(super) fn connector(tls: &TlsSettings, host: &str) -> Result<Connector, String> {
    let name = if tls.server_name.is_empty() {
        host
    } else {
        tls.server_name.as_str()
    };
    let name = server_name(name).map_err(|e| e.to_string())?;
    let mut config = client_config(tls).map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Connector::with_config(Arc::new(config), Some(name)).always_tls())
}
