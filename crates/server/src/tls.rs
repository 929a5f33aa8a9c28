//! TLS (`tls`, `tls_cert`, `tls_key`): rustls with a PEM certificate chain and private key,
//! as a listener `axum::serve` accepts. Handshakes run in their own tasks, so a slow or silent
//! client never holds up the accept loop.
//!
//! Protocol versions are explicit ([`PROTOCOL_VERSIONS`]): TLS 1.3 and TLS 1.2, nothing older
//! (rustls implements neither SSL 3, TLS 1.0 nor 1.1, and this list keeps it so whatever its
//! defaults become). A client offering both negotiates 1.3; a TLS 1.0/1.1-only client gets a
//! `protocol_version` alert. Cipher suites are the crypto provider's (ring) defaults: AEAD
//! only, forward-secret key exchange only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 256;

/// The TLS versions every Rotor listener (client, internal, gRPC API) speaks, in order of
/// preference: 1.3 first, 1.2 as the minimum.
pub(crate) static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The PEM text a TLS key names: as Centrifugo 6 reads its `*_pem` keys, the value is the PEM
/// itself, a path to a PEM file, or base64 of the PEM.
pub(crate) fn pem_source(key: &str, value: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let v = value.trim();
    if v.starts_with("-----BEGIN") {
        return Ok(v.as_bytes().to_vec());
    }
    match std::fs::read(v) {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(v).ok();
            match decoded.filter(|d| d.trim_ascii_start().starts_with(b"-----BEGIN")) {
                Some(pem) => Ok(pem),
                None => Err(anyhow::anyhow!(
                    "{key}: {value:?} is neither PEM, a readable file ({e}) nor base64 PEM"
                )),
            }
        }
    }
}

/// Reads the certificate chain and key (PEM, a PEM file, or base64 PEM) and builds the
/// acceptor (HTTP/1.1 over TLS 1.3 or 1.2, see [`PROTOCOL_VERSIONS`]).
pub fn acceptor(cert_path: &str, key_path: &str) -> anyhow::Result<TlsAcceptor> {
    let cert_pem = pem_source("tls_cert", cert_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("tls_cert: cannot read PEM certificates from {cert_path:?}"))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "tls_cert: no certificate in {cert_path:?}"
    );
    let key_pem = pem_source("tls_key", key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("tls_key: cannot read a PEM private key from {key_path:?}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .context("tls: no usable protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: the certificate and key do not form a usable pair")?;
    // WebSocket upgrades need HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepted TLS connections, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp`; stops when the returned listener is dropped.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = tx.closed() => break,
                    r = tcp.accept() => match r {
                        Ok(v) => v,
                        Err(e) => {
                            // Out of file descriptors and the like: wait, as axum does.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                // Linux copies TCP_NODELAY from the listener (see `app::spawn_http`).
                #[cfg(not(target_os = "linux"))]
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(v) => v,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod pem_tests {
    use super::pem_source;
    use base64::Engine as _;

    #[test]
    fn pem_values_may_be_text_files_or_base64() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_source("k", pem).unwrap(), pem.trim().as_bytes());
        let path = std::env::temp_dir().join(format!("rotor-pem-{}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        assert_eq!(
            pem_source("k", path.to_str().unwrap()).unwrap(),
            pem.as_bytes()
        );
        let _ = std::fs::remove_file(&path);
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(pem_source("k", &b64).unwrap(), pem.as_bytes());
        let err = pem_source("tls_cert", "/nonexistent/cert.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_cert") && err.contains("neither"), "{err}");
    }
}
