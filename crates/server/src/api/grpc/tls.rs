//! TLS of the gRPC API listener: the certificate pair (each value a path, PEM text or base64
//! PEM, as Centrifugo 6 reads its `*_pem` keys), ALPN `h2` (gRPC clients require it), and with
//! a client CA mutual TLS (clients must present a certificate that CA signed). The accepted
//! connections carry their peer address, which the empty-key rule of `auth` needs. TLS 1.3 or
//! 1.2 only, as on every listener (`crate::tls::PROTOCOL_VERSIONS`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::Stream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::TcpConnectInfo;

use crate::tls::pem_source;

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn certs(key: &str, value: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = pem_source(key, value)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{key}: cannot read PEM certificates"))?;
    anyhow::ensure!(!certs.is_empty(), "{key}: no certificate found");
    Ok(certs)
}

/// The acceptor for `cert` / `key`, with mutual TLS when `client_ca` is not empty.
pub(crate) fn acceptor(cert: &str, key: &str, client_ca: &str) -> anyhow::Result<TlsAcceptor> {
    let chain = certs("grpc_api tls cert", cert)?;
    let key_pem = pem_source("grpc_api tls key", key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .context("grpc_api tls key: cannot read a PEM private key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(crate::tls::PROTOCOL_VERSIONS)
        .context("grpc_api tls: no usable protocol versions")?;
    let builder = if client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs("grpc_api tls client_ca", client_ca)? {
            roots
                .add(c)
                .context("grpc_api tls client_ca: not a usable CA certificate")?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("grpc_api tls client_ca: cannot build the client verifier")?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("grpc_api tls: the certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS connections accepted on `listener`, each handshake in its own task; accepting stops
/// when the server drops the stream.
pub(crate) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = std::io::Result<TlsConn>> {
    let (tx, rx) = mpsc::channel::<std::io::Result<TlsConn>>(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = tx.closed() => break,
                r = listener.accept() => match r {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "grpc_api accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let info = TcpConnectInfo {
                            local_addr: local,
                            remote_addr: Some(peer),
                        };
                        let _ = tx.send(Ok(TlsConn { tls, info })).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "grpc_api TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(%peer, "grpc_api TLS handshake timed out"),
                }
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// An accepted TLS connection with its addresses, as tonic's server takes it.
pub(crate) struct TlsConn {
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    info: TcpConnectInfo,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}
