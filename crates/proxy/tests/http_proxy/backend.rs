//! The application backend of the HTTP proxy tests: a real hyper HTTP/1.1 server on a free
//! loopback port (plain or TLS) that records what it received and answers per request, plus
//! two broken backends: one that never answers and one that closes the socket mid-request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// One request as the backend saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub method: String,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Every value of a header.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Header names, without those hyper's client always sends.
    pub fn header_names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self
            .headers
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !matches!(*k, "host" | "content-length"))
            .collect();
        n.sort_unstable();
        n.dedup();
        n
    }
}

/// How the backend answers a request: status and body.
pub type Handler = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

/// A running backend; stopped when dropped.
pub struct TestBackend {
    /// `http://127.0.0.1:port` (or `https://`).
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestBackend {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The only request received so far.
    pub fn only(&self) -> Seen {
        let r = self.requests();
        assert_eq!(r.len(), 1, "requests: {r:#?}");
        r[0].clone()
    }

    pub fn clear(&self) {
        if let Ok(mut s) = self.seen.lock() {
            s.clear();
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_io<I>(io: I, seen: Arc<Mutex<Vec<Seen>>>, handler: Handler)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let seen = seen.clone();
        let handler = handler.clone();
        async move {
            let path = req.uri().path().to_string();
            let method = req.method().to_string();
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (k.as_str().to_string(), v)
                })
                .collect();
            let body = match req.into_body().collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            let s = Seen {
                path,
                method,
                headers,
                body,
            };
            let (status, body) = handler(&s);
            if let Ok(mut all) = seen.lock() {
                all.push(s);
            }
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// A backend answering with `handler`, over TLS when `tls` is given.
pub async fn start_with(handler: Handler, tls: Option<TlsAcceptor>) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = {
        let seen = seen.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                let handler = handler.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_io(sock, seen, handler).await,
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(sock).await {
                                serve_io(s, seen, handler).await;
                            }
                        }
                    }
                });
            }
        })
    };
    TestBackend {
        url: format!("{scheme}://{addr}"),
        seen,
        connections,
        task,
    }
}

/// A plain HTTP backend answering with `f`.
pub async fn start(f: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> TestBackend {
    start_with(Arc::new(f), None).await
}

/// A backend that accepts, reads the request and never answers (sockets kept open).
pub async fn never_answers() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            held.push(sock);
        }
    });
    (format!("http://{addr}"), task)
}

/// A backend that reads part of the request and closes the connection without answering.
pub async fn closes_mid_request() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 16];
            let _ = sock.read(&mut buf).await;
            drop(sock);
        }
    });
    (format!("http://{addr}"), task)
}
