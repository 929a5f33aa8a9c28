//! Fetching a JWKS document: one `GET` through hyper's pooled keep-alive client (HTTP/1.1)
//! over a small TCP / rustls (ring) connector of this crate's own, the same stack as the HTTP
//! proxies use.
//!
//! Rules (TOKENS.md §6, with the hardening of §9.4): the whole request — connecting, TLS,
//! headers, body — must finish within the timeout; only status 200 is a document (redirects
//! are not followed, so a response can never move the fetch to another host); the body may
//! not exceed the size cap, checked against `Content-Length` first and enforced while reading.
//! `https` endpoints are verified against the system roots (loaded on the first `https` fetch)
//! or, when a CA is configured, against that CA only.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use url::Url;

use crate::jwk::{parse_jwk_set, DocumentError, JwkSet};
use crate::JwksSettings;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a fetch failed. Cheap to clone: the last failure of an endpoint is kept and returned to
/// the tokens that arrive while refetching is held back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("JWKS request failed: {0}")]
    Request(String),
    #[error("JWKS request timed out after {0:?}")]
    Timeout(Duration),
    #[error("JWKS endpoint answered status {0}")]
    Status(u16),
    #[error("JWKS document larger than {0} bytes")]
    TooLarge(usize),
    #[error("JWKS body could not be read: {0}")]
    Body(String),
    #[error(transparent)]
    Document(#[from] DocumentError),
}

/// A CA setting (`JwksSettings::ca_pem`) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JWKS CA: {0}")]
pub struct CaError(pub String);

/// The HTTP(S) client of JWKS sources (cheap to clone; clones share the connection pool).
#[derive(Clone)]
pub struct JwksClient {
    client: Client<Connector, Empty<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// Idle connections kept per host: a JWKS endpoint is fetched rarely and one at a time.
const MAX_IDLE_PER_HOST: usize = 2;
/// How long an idle connection is kept (Go's default transport).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

impl JwksClient {
    /// A client with `settings`' timeout, size cap and CA.
    ///
    /// # Errors
    /// `settings.ca_pem` holds no usable certificate.
    pub fn new(settings: &JwksSettings) -> Result<Self, CaError> {
        let tls = if settings.ca_pem.trim().is_empty() {
            Tls::System(Arc::new(OnceLock::new()))
        } else {
            Tls::Custom(custom_config(&settings.ca_pem).map_err(CaError)?)
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(Connector { tcp, tls });
        Ok(Self {
            client,
            timeout: settings.timeout,
            max_body: settings.max_body_bytes,
        })
    }

    /// Fetches and parses the set at `url`.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn fetch(&self, url: &Url) -> Result<JwkSet, FetchError> {
        let body = self.get(url).await?;
        Ok(parse_jwk_set(&body)?)
    }

    /// The body of a 200 answer to `GET url`, within the timeout and the size cap.
    async fn get(&self, url: &Url) -> Result<Bytes, FetchError> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e| FetchError::Request(format!("invalid URL: {e}")))?;
        let mut req = Request::new(Empty::new());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static("rotor-jwks"));
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Request(error_chain(&e)))?;
            if resp.status() != StatusCode::OK {
                return Err(FetchError::Status(resp.status().as_u16()));
            }
            let declared = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_body as u64) {
                return Err(FetchError::TooLarge(self.max_body));
            }
            let body = Limited::new(resp.into_body(), self.max_body);
            match body.collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(FetchError::TooLarge(self.max_body))
                }
                Err(e) => Err(FetchError::Body(e.to_string())),
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(FetchError::Timeout(self.timeout)))
    }
}

/// An error with its sources ("client error (Connect): tcp connect error: Connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Where TLS connections get their configuration.
#[derive(Clone)]
enum Tls {
    /// System roots, loaded on the first `https` connection.
    System(Arc<OnceLock<Result<Arc<ClientConfig>, String>>>),
    /// Only the configured CA.
    Custom(Arc<ClientConfig>),
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))
}

fn system_config() -> Result<Arc<ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(format!("no system CA certificates could be loaded: {why}"));
    }
    Ok(Arc::new(
        builder()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

fn custom_config(ca_pem: &str) -> Result<Arc<ClientConfig>, String> {
    let pem = if ca_pem.contains("-----BEGIN") {
        ca_pem.as_bytes().to_vec()
    } else {
        std::fs::read(ca_pem).map_err(|e| format!("cannot read CA file {ca_pem:?}: {e}"))?
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("CA PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("CA PEM holds no certificate".to_owned());
    }
    Ok(Arc::new(
        builder()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// TCP, then TLS for `https`.
#[derive(Clone)]
struct Connector {
    tcp: HttpConnector,
    tls: Tls,
}

/// A connection to an endpoint, plain or TLS.
enum Stream {
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
                .to_owned();
            let stream = tcp.call(uri).await?.into_inner();
            if !https {
                return Ok(TokioIo::new(Stream::Plain(stream)));
            }
            let config = match tls {
                Tls::System(cell) => cell.get_or_init(system_config).clone()?,
                Tls::Custom(config) => config,
            };
            let name =
                ServerName::try_from(host).map_err(|e| format!("invalid TLS server name: {e}"))?;
            let tls = TlsConnector::from(config).connect(name, stream).await?;
            Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
        })
    }
}
