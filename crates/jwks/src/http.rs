//! Fetching a JWKS document: one `GET` through hyper's pooled keep-alive client (HTTP/1.1)
//! over the TCP / rustls (ring) connector of rotor-netclient, the stack the proxies use too.
//!
//! Rules (TOKENS.md §6, with the hardening of §9.4): the whole request — connecting, TLS,
//! headers, body — must finish within the timeout; only status 200 is a document (redirects
//! are not followed, so a response can never move the fetch to another host); the body may
//! not exceed the size cap, checked against `Content-Length` first and enforced while reading.
//! `https` endpoints are verified against the system roots (loaded on the first `https` fetch)
//! or, when a CA is configured, against that CA only.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rotor_netclient::{client_config, Connector, TlsOptions};
use url::Url;

use crate::jwk::{parse_jwk_set, DocumentError, JwkSet};
use crate::JwksSettings;

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
        let connector = if settings.ca_pem.trim().is_empty() {
            Connector::system()
        } else {
            let only_ca = TlsOptions {
                enabled: true,
                server_ca_pem: settings.ca_pem.clone(),
                ..TlsOptions::default()
            };
            let config = client_config(&only_ca).map_err(|e| CaError(e.to_string()))?;
            Connector::with_config(Arc::new(config), None)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
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
