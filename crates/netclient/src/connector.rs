//! The connector of hyper-util's pooled client and of tonic channels: a TCP connection
//! (hyper-util's resolver and connect, `TCP_NODELAY`), wrapped in TLS for `https` URIs — or
//! for every URI when the connector says so, as a gRPC channel whose URI names `http`.
//! Plain `https` uses [`system_config`](crate::system_config); a connector with its own
//! configuration uses that and, when given, its server name instead of the URI's host.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::config::{client_config, server_name, system_config, TlsError, TlsOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where TLS connections get their configuration.
#[derive(Clone)]
enum Tls {
    /// The system roots ([`system_config`]), loaded on the first TLS connection.
    System,
    /// A configuration of the client's own.
    Custom {
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    },
}

/// TCP, then TLS for `https` (or always). Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector,
    tls: Tls,
    always_tls: bool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = match &self.tls {
            Tls::System => "system roots",
            Tls::Custom { .. } => "custom",
        };
        f.debug_struct("Connector")
            .field("tls", &tls)
            .field("always_tls", &self.always_tls)
            .finish_non_exhaustive()
    }
}

fn tcp() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.enforce_http(false);
    c.set_nodelay(true);
    c
}

impl Connector {
    /// Plain `http`, and `https` verified against the system roots.
    pub fn system() -> Self {
        Self {
            tcp: tcp(),
            tls: Tls::System,
            always_tls: false,
        }
    }

    /// TLS with `config`; `server_name` (when given) replaces the URI's host for SNI and
    /// verification.
    pub fn with_config(
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    ) -> Self {
        Self {
            tcp: tcp(),
            tls: Tls::Custom {
                config,
                server_name,
            },
            always_tls: false,
        }
    }

    /// [`system`](Self::system) when `options` are not enabled, else their configuration and
    /// server name, checked now.
    ///
    /// # Errors
    /// See [`client_config`] and [`server_name`].
    pub fn from_options(options: &TlsOptions) -> Result<Self, TlsError> {
        if !options.enabled {
            return Ok(Self::system());
        }
        let name = if options.server_name.is_empty() {
            None
        } else {
            Some(server_name(&options.server_name)?)
        };
        Ok(Self::with_config(Arc::new(client_config(options)?), name))
    }

    /// Every connection runs TLS, whatever the URI's scheme.
    #[must_use]
    pub fn always_tls(mut self) -> Self {
        self.always_tls = true;
        self
    }
}

/// A connection to a server, plain or TLS.
pub enum Stream {
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
        let always_tls = self.always_tls;
        Box::pin(async move {
            let https = always_tls
                || uri
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
            let (config, name) = match tls {
                Tls::System => (system_config()?, None),
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
