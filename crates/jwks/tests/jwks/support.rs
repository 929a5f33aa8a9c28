//! The JWKS server the tests fetch from (hyper on 127.0.0.1, a free port): it serves a
//! document (or an error, a delay, an oversize body) per path, counts requests per path, can go
//! down (listener closed, open connections dropped) and come back on the same port, and can
//! speak TLS. Plus the fixtures: public JWKs and tokens made by `fixtures/make_fixtures.py`
//! (Python `cryptography`), and helpers to verify tokens through the core verifier.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rotor_core::auth::{TokenError, TokenVerifier, VerifyingKey};
use rotor_jwks::{validate_template, JwksSettings, JwksSource};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// What a path answers.
#[derive(Clone)]
pub enum Route {
    /// 200 with this body (Content-Length set).
    Body(String),
    /// 200 with this body sent in chunks, without Content-Length.
    Chunked(String),
    /// This status, empty body.
    Status(u16),
    /// A redirect to `location`.
    Redirect(String),
    /// The route after a delay.
    Slow(Duration, Box<Route>),
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    hits: Mutex<HashMap<String, usize>>,
}

pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    /// The accept loop and every connection; aborted by `down` and on drop.
    tasks: Arc<Mutex<JoinSet<()>>>,
    scheme: &'static str,
}

impl JwksServer {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    pub async fn start_tls(acceptor: TlsAcceptor) -> Self {
        Self::start_with(Some(acceptor)).await
    }

    async fn start_with(tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            scheme: if tls.is_some() { "https" } else { "http" },
            tls,
            tasks: Arc::default(),
        };
        server.accept(listener);
        server
    }

    fn accept(&self, listener: TcpListener) {
        let state = Arc::clone(&self.state);
        let tls = self.tls.clone();
        let tasks = Arc::clone(&self.tasks);
        self.tasks.lock().spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&state);
                let tls = tls.clone();
                tasks.lock().spawn(async move {
                    let service = service_fn(move |req| answer(Arc::clone(&state), req));
                    let builder = http1::Builder::new();
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
    }

    /// `scheme://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    pub fn route(&self, path: &str, route: Route) {
        self.state.routes.lock().insert(path.to_owned(), route);
    }

    /// Serves `{"keys": keys}` at `path`.
    pub fn serve_keys(&self, path: &str, keys: &[Value]) {
        self.route(path, Route::Body(json!({ "keys": keys }).to_string()));
    }

    /// Requests seen for `path`.
    pub fn requests(&self, path: &str) -> usize {
        self.state.hits.lock().get(path).copied().unwrap_or(0)
    }

    /// Requests seen for any path.
    pub fn total_requests(&self) -> usize {
        self.state.hits.lock().values().sum()
    }

    /// Stops listening and drops every open connection: connecting is refused.
    pub fn down(&self) {
        self.tasks.lock().abort_all();
    }

    /// Listens again on the same port.
    pub fn up(&self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        self.accept(socket.listen(64).unwrap());
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.tasks.lock().abort_all();
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    *state.hits.lock().entry(path.clone()).or_default() += 1;
    let route = state.routes.lock().get(&path).cloned();
    Ok(respond(route).await)
}

async fn respond(mut route: Option<Route>) -> Response<Body> {
    while let Some(Route::Slow(delay, inner)) = route {
        tokio::time::sleep(delay).await;
        route = Some(*inner);
    }
    let full = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
        *r.status_mut() = status;
        r
    };
    match route {
        None => full(StatusCode::NOT_FOUND, String::new()),
        Some(Route::Body(body)) => full(StatusCode::OK, body),
        Some(Route::Chunked(body)) => {
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = body
                .into_bytes()
                .chunks(4096)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        }
        Some(Route::Status(code)) => full(StatusCode::from_u16(code).unwrap(), String::new()),
        Some(Route::Redirect(location)) => {
            let mut r = full(StatusCode::FOUND, String::new());
            r.headers_mut()
                .insert("location", location.parse().unwrap());
            r
        }
        Some(Route::Slow(..)) => unreachable!(),
    }
}

/// A CA and a certificate it signed for 127.0.0.1; returns (CA PEM, acceptor).
pub fn tls_acceptor() -> (String, TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn fixtures() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jwks.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

/// A public JWK of the fixtures.
pub fn jwk(name: &str) -> Value {
    fixtures()["jwk"][name].clone()
}

/// `jwk(name)` with `changes` merged in (`null` removes a member).
pub fn jwk_with(name: &str, changes: Value) -> Value {
    let mut key = jwk(name);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            key.as_object_mut().unwrap().remove(k);
        } else {
            key[k] = v.clone();
        }
    }
    key
}

/// A token of the fixtures.
pub fn token(name: &str) -> String {
    fixtures()["tokens"][name].as_str().unwrap().to_owned()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A token nobody signed: the given header and claims, a junk signature.
pub fn forged(header: Value, claims: Value) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(&[7u8; 256])
    )
}

/// Settings for tests: nothing expires or refetches by itself within a test unless set.
pub fn settings() -> JwksSettings {
    JwksSettings {
        timeout: Duration::from_secs(2),
        ttl: Duration::from_secs(3600),
        min_refetch_interval: Duration::from_secs(3600),
        ..JwksSettings::default()
    }
}

pub const ISSUER_REGEX: &str = r"^https://idp\.example\.com/(?P<tenant>acme|globex)$";

/// A source of core keys for `endpoint` (with `issuer_regex`).
pub fn source(endpoint: &str, issuer_regex: &str, s: JwksSettings) -> JwksSource<VerifyingKey> {
    let template = validate_template(endpoint, issuer_regex, "").unwrap();
    JwksSource::new(template, s).unwrap()
}

pub fn verifier(source: &JwksSource<VerifyingKey>) -> TokenVerifier {
    TokenVerifier::with_keys(source.clone())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The user of a connection token, verified as a session does (waiting for a fetch).
pub async fn user(v: &TokenVerifier, token: &str) -> Result<String, TokenError> {
    v.verify_connect_async(token, now(), true)
        .await
        .map(|c| c.user)
}

/// The same without waiting for any fetch (the synchronous verification path).
pub fn user_now(v: &TokenVerifier, token: &str) -> Result<String, TokenError> {
    v.verify_connect(token, now(), true).map(|c| c.user)
}

#[track_caller]
pub fn assert_invalid(r: Result<String, TokenError>) {
    match r {
        Err(TokenError::Invalid(_)) => {}
        other => panic!("expected an invalid token, got {other:?}"),
    }
}
