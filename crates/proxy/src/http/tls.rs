//! How an HTTP proxy reaches its endpoint: a TCP connection, wrapped in TLS (rustls over ring)
//! for `https://` endpoints. Plain `https://` uses the system roots, loaded once on first use;
//! a proxy with `http.tls.enabled` gets its own rustls configuration: a custom CA
//! (`server_ca_pem`), `insecure_skip_verify`, a client certificate for mTLS and a `server_name`
//! for SNI and verification. PEM values are PEM text or a file path, as Centrifugo accepts.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::config::TlsSettings;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where TLS connections get their configuration.
#[derive(Clone)]
enum Tls {
    /// System roots, built on the first `https://` connection.
    System(Arc<OnceLock<Result<Arc<ClientConfig>, String>>>),
    /// A proxy's own `http.tls`.
    Custom {
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    },
}

/// The connector of an HTTP proxy client: TCP, then TLS for `https`.
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    tls: Tls,
}

fn tcp() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.enforce_http(false);
    c.set_nodelay(true);
    c
}

impl Connector {
    /// Plain HTTP, and `https` verified against the system roots.
    pub(crate) fn system() -> Self {
        Self {
            tcp: tcp(),
            tls: Tls::System(Arc::new(OnceLock::new())),
        }
    }

    /// A proxy's own TLS settings (`http.tls.enabled`).
    pub(crate) fn custom(s: &TlsSettings) -> Result<Self, String> {
        let server_name = if s.server_name.is_empty() {
            None
        } else {
            Some(
                ServerName::try_from(s.server_name.clone())
                    .map_err(|e| format!("tls server_name {:?}: {e}", s.server_name))?,
            )
        };
        Ok(Self {
            tcp: tcp(),
            tls: Tls::Custom {
                config: Arc::new(client_config(s)?),
                server_name,
            },
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or("none found".to_string(), |e| e.to_string());
        return Err(format!("no system CA certificates could be loaded: {why}"));
    }
    Ok(roots)
}

fn system_config() -> Result<Arc<ClientConfig>, String> {
    Ok(Arc::new(
        builder()?
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
    ))
}

/// PEM text as given, or the contents of the file it names.
fn pem_bytes(value: &str, what: &str) -> Result<Vec<u8>, String> {
    if value.contains("-----BEGIN") {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(value).map_err(|e| format!("tls {what}: cannot read {value:?}: {e}"))
    }
}

fn certs(value: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = pem_bytes(value, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls {what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("tls {what}: no certificate found"));
    }
    Ok(certs)
}

/// The rustls configuration of `http.tls`.
pub(crate) fn client_config(s: &TlsSettings) -> Result<ClientConfig, String> {
    let b = builder()?;
    let b = if s.insecure_skip_verify {
        b.dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(
                provider().signature_verification_algorithms,
            )))
    } else if !s.server_ca_pem.is_empty() {
        let mut roots = RootCertStore::empty();
        for c in certs(&s.server_ca_pem, "server_ca_pem")? {
            roots
                .add(c)
                .map_err(|e| format!("tls server_ca_pem: {e}"))?;
        }
        b.with_root_certificates(roots)
    } else {
        b.with_root_certificates(system_roots()?)
    };
    with_client_auth(b, s)
}

fn with_client_auth(
    b: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    s: &TlsSettings,
) -> Result<ClientConfig, String> {
    match (s.cert_pem.is_empty(), s.key_pem.is_empty()) {
        (true, true) => Ok(b.with_no_client_auth()),
        (false, false) => {
            let chain = certs(&s.cert_pem, "cert_pem")?;
            let pem = pem_bytes(&s.key_pem, "key_pem")?;
            let key =
                PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("tls key_pem: {e}"))?;
            b.with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls client certificate: {e}"))
        }
        _ => Err("tls: cert_pem and key_pem must be set together".to_string()),
    }
}

/// `insecure_skip_verify`: any certificate is accepted (as Go's InsecureSkipVerify); the
/// handshake signatures are still checked against the presented key.
#[derive(Debug)]
struct AnyServerCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A connection to an endpoint, plain or TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let https = uri
                .scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"));
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let stream = tcp.call(uri).await?.into_inner();
            if !https {
                return Ok(TokioIo::new(Stream::Plain(stream)));
            }
            let (config, name) = match tls {
                Tls::System(cell) => {
                    let config = cell.get_or_init(system_config).clone()?;
                    (config, None)
                }
                Tls::Custom {
                    config,
                    server_name,
                } => (config, server_name),
            };
            let name = match name {
                Some(n) => n,
                None => ServerName::try_from(host)
                    .map_err(|e| format!("invalid TLS server name: {e}"))?,
            };
            let tls = TlsConnector::from(config).connect(name, stream).await?;
            Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
        })
    }
}
