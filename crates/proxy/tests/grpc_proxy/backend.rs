//! The test backend: a tonic server implementing `CentrifugoProxy` on a free port (plain or
//! TLS) that records every request with its metadata and answers from a script.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rotor_proxy::proto;
use rotor_proxy::proto::centrifugo_proxy_server::{CentrifugoProxy, CentrifugoProxyServer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

/// A request as the backend received it.
#[derive(Debug, Clone)]
pub enum Seen {
    Connect(proto::ConnectRequest),
    Refresh(proto::RefreshRequest),
    Subscribe(proto::SubscribeRequest),
    Publish(proto::PublishRequest),
    SubRefresh(proto::SubRefreshRequest),
    Rpc(proto::RpcRequest),
}

/// What the backend answers.
#[derive(Default)]
pub struct Script {
    pub connect: proto::ConnectResponse,
    pub refresh: proto::RefreshResponse,
    pub subscribe: proto::SubscribeResponse,
    pub publish: proto::PublishResponse,
    pub sub_refresh: proto::SubRefreshResponse,
    pub rpc: proto::RpcResponse,
    pub delay: Duration,
    pub status: Option<(Code, String)>,
}

#[derive(Default)]
pub struct State {
    pub seen: Mutex<Vec<(MetadataMap, Seen)>>,
    pub script: Mutex<Script>,
}

impl State {
    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap());
    }

    pub fn last(&self) -> (MetadataMap, Seen) {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub struct Svc(Arc<State>);

impl Svc {
    async fn handle<R>(
        &self,
        md: MetadataMap,
        seen: Seen,
        answer: impl FnOnce(&Script) -> R,
    ) -> Result<Response<R>, Status> {
        self.0.seen.lock().unwrap().push((md, seen));
        let (delay, status, resp) = {
            let s = self.0.script.lock().unwrap();
            (s.delay, s.status.clone(), answer(&s))
        };
        tokio::time::sleep(delay).await;
        match status {
            Some((code, message)) => Err(Status::new(code, message)),
            None => Ok(Response::new(resp)),
        }
    }
}

#[tonic::async_trait]
impl CentrifugoProxy for Svc {
    async fn connect(
        &self,
        r: Request<proto::ConnectRequest>,
    ) -> Result<Response<proto::ConnectResponse>, Status> {
        let (md, _, m) = r.into_parts();
        self.handle(md, Seen::Connect(m), |s| s.connect.clone())
            .await
    }

    async fn refresh(
        &self,
        r: Request<proto::RefreshRequest>,
    ) -> Result<Response<proto::RefreshResponse>, Status> {
        let (md, _, m) = r.into_parts();
        self.handle(md, Seen::Refresh(m), |s| s.refresh.clone())
            .await
    }

    async fn subscribe(
        &self,
        r: Request<proto::SubscribeRequest>,
    ) -> Result<Response<proto::SubscribeResponse>, Status> {
        let (md, _, m) = r.into_parts();
        self.handle(md, Seen::Subscribe(m), |s| s.subscribe.clone())
            .await
    }

    async fn publish(
        &self,
        r: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let (md, _, m) = r.into_parts();
        self.handle(md, Seen::Publish(m), |s| s.publish.clone())
            .await
    }

    async fn sub_refresh(
        &self,
        r: Request<proto::SubRefreshRequest>,
    ) -> Result<Response<proto::SubRefreshResponse>, Status> {
        let (md, _, m) = r.into_parts();
        self.handle(md, Seen::SubRefresh(m), |s| s.sub_refresh.clone())
            .await
    }

    async fn rpc(
        &self,
        r: Request<proto::RpcRequest>,
    ) -> Result<Response<proto::RpcResponse>, Status> {
        let (md, _, m) = r.into_parts();
        self.handle(md, Seen::Rpc(m), |s| s.rpc.clone()).await
    }
}

/// A running backend; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn service(state: &Arc<State>) -> CentrifugoProxyServer<Svc> {
    CentrifugoProxyServer::new(Svc(state.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

pub async fn serve_on(listener: TcpListener) -> Running {
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let svc = service(&state);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        addr,
        state,
        stop: Some(stop),
    }
}

pub async fn serve() -> Running {
    serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

/// A TLS connection for tonic's server.
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

pub struct Pki {
    pub server_cert: String,
    pub client_cert: String,
    pub client_key: String,
}

/// A TLS backend with a self-signed certificate for `localhost`; it requires a client
/// certificate when `client_auth` is set.
pub async fn serve_tls(client_auth: bool) -> (Running, Pki) {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let client = rcgen::generate_simple_self_signed(vec!["node".to_string()]).unwrap();
    let pki = Pki {
        server_cert: server.cert.pem(),
        client_cert: client.cert.pem(),
        client_key: client.signing_key.serialize_pem(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_auth {
        false => builder.with_no_client_auth(),
        true => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(pki.client_cert.as_bytes()).unwrap())
                .unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key = PrivateKeyDer::from_pem_slice(server.signing_key.serialize_pem().as_bytes()).unwrap();
    let mut cfg = builder
        .with_single_cert(vec![server.cert.der().clone()], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (conns, incoming) = tokio::sync::mpsc::channel::<std::io::Result<TlsConn>>(16);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let conns = conns.clone();
            tokio::spawn(async move {
                // A failed handshake is the client's problem: just drop the socket.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = conns.send(Ok(TlsConn(tls))).await;
                }
            });
        }
    });
    let state = Arc::new(State::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let svc = service(&state);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::ReceiverStream::new(incoming),
                async {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    (
        Running {
            addr,
            state,
            stop: Some(stop),
        },
        pki,
    )
}
