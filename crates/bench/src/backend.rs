//! `rotor-bench backend`: a minimal application backend for the server's HTTP proxies, run as
//! a process of its own so that its CPU is measured apart from the server's. It answers
//! `POST /connect` with a user (the connect `data`'s `"user"` when it has one, else a fresh
//! `px-N`), `/subscribe`, `/publish` and `/refresh` with an empty result, and `/rpc` with the
//! request's `data` (or `b64data`) echoed back. Keep-alive HTTP/1.1 (hyper), one
//! single-threaded runtime by default. `GET /stats` gives its PID and per-path call counts as
//! `key=value` words, which the proxy scenarios read before and after a run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::value::RawValue;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

use crate::child::say;
use crate::token::json_str;
use crate::util::now_ns;
#[cfg(test)]
use crate::util::Kv;

#[derive(Args, Debug, Clone)]
pub struct BackendArgs {
    /// Address to listen on (port 0: any free port). The first stdout line is
    /// `LISTENING host:port`.
    #[arg(long, default_value = "127.0.0.1:18560")]
    pub listen: String,
    /// Runtime threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Exit when stdin reaches end of file (set when rotor-bench starts the backend itself, so
    /// it never outlives its parent).
    #[arg(long)]
    pub exit_on_eof: bool,
}

/// Call counters (what `/stats` reports).
#[derive(Default)]
struct Stats {
    conns: AtomicU64,
    connect: AtomicU64,
    subscribe: AtomicU64,
    rpc: AtomicU64,
    publish: AtomicU64,
    refresh: AtomicU64,
    /// Requests for an unknown path or with a body that is not a JSON object.
    bad: AtomicU64,
}

impl Stats {
    fn line(&self) -> String {
        format!(
            "pid={} conns={} connect={} subscribe={} rpc={} publish={} refresh={} bad={}",
            std::process::id(),
            self.conns.load(Relaxed),
            self.connect.load(Relaxed),
            self.subscribe.load(Relaxed),
            self.rpc.load(Relaxed),
            self.publish.load(Relaxed),
            self.refresh.load(Relaxed),
            self.bad.load(Relaxed),
        )
    }
}

/// Runs the backend until it is killed (or, with `--exit-on-eof`, until stdin closes).
pub fn main(a: &BackendArgs) -> Result<(), String> {
    let rt = if a.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;
    let res = rt.block_on(serve(a.clone()));
    rt.shutdown_background();
    res
}

async fn serve(a: BackendArgs) -> Result<(), String> {
    let listener = TcpListener::bind(&a.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", a.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    say(&format!("LISTENING {addr}"));
    let stats = Arc::new(Stats::default());
    if a.exit_on_eof {
        let eof = async {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(_)) = lines.next_line().await {}
        };
        tokio::select! {
            _ = accept(listener, stats) => {}
            _ = eof => {}
        }
    } else {
        accept(listener, stats).await;
    }
    Ok(())
}

/// Serves every connection the listener accepts (a task each, keep-alive), forever.
async fn accept(listener: TcpListener, stats: Arc<Stats>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                eprintln!("rotor-bench backend: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        stats.conns.fetch_add(1, Relaxed);
        let st = stats.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(handle(&st, req).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

#[derive(Clone, Copy)]
enum Path {
    Connect,
    Subscribe,
    Rpc,
    Publish,
    Refresh,
    Stats,
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn handle(st: &Stats, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = match req.uri().path() {
        "/connect" => Path::Connect,
        "/subscribe" => Path::Subscribe,
        "/rpc" => Path::Rpc,
        "/publish" => Path::Publish,
        "/refresh" => Path::Refresh,
        "/stats" => Path::Stats,
        _ => {
            st.bad.fetch_add(1, Relaxed);
            return response(StatusCode::NOT_FOUND, "not found");
        }
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return response(StatusCode::BAD_REQUEST, "body"),
    };
    if let Path::Stats = path {
        return response(StatusCode::OK, st.line());
    }
    let Some(fields) = parse_object(&body) else {
        st.bad.fetch_add(1, Relaxed);
        return response(StatusCode::BAD_REQUEST, "want a JSON object");
    };
    let out = match path {
        Path::Connect => {
            let n = st.connect.fetch_add(1, Relaxed) + 1;
            let user = fields
                .get("data")
                .and_then(|d| user_of(d.get()))
                .unwrap_or_else(|| format!("px-{n}"));
            format!(r#"{{"result":{{"user":{}}}}}"#, json_str(&user))
        }
        Path::Rpc => {
            st.rpc.fetch_add(1, Relaxed);
            match (fields.get("data"), fields.get("b64data")) {
                (Some(d), _) => format!(r#"{{"result":{{"data":{}}}}}"#, d.get()),
                (None, Some(b)) => format!(r#"{{"result":{{"b64data":{}}}}}"#, b.get()),
                (None, None) => r#"{"result":{}}"#.to_string(),
            }
        }
        Path::Subscribe => {
            st.subscribe.fetch_add(1, Relaxed);
            r#"{"result":{}}"#.to_string()
        }
        Path::Publish => {
            st.publish.fetch_add(1, Relaxed);
            r#"{"result":{}}"#.to_string()
        }
        Path::Refresh => {
            st.refresh.fetch_add(1, Relaxed);
            // Another hour.
            let exp = now_ns() / 1_000_000_000 + 3600;
            format!(r#"{{"result":{{"expire_at":{exp}}}}}"#)
        }
        Path::Stats => unreachable!("answered above"),
    };
    response(StatusCode::OK, out)
}

/// The top-level fields of a JSON object, values kept as raw JSON text.
fn parse_object(body: &[u8]) -> Option<HashMap<String, Box<RawValue>>> {
    serde_json::from_slice(body).ok()
}

/// `data.user` when `data` is an object with a string `user`.
fn user_of(data: &str) -> Option<String> {
    let obj: HashMap<String, Box<RawValue>> = serde_json::from_str(data).ok()?;
    serde_json::from_str::<String>(obj.get("user")?.get()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::client::conn::http1::SendRequest;
    use hyper::Method;

    async fn post(send: &mut SendRequest<Full<Bytes>>, path: &str, body: &str) -> (u16, String) {
        send.ready().await.unwrap();
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", "backend")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn answers_the_proxy_calls_over_one_keep_alive_connection() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(accept(l, Arc::new(Stats::default())));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let connect =
            r#"{"client":"c1","transport":"websocket","protocol":"json","encoding":"json"}"#;
        assert_eq!(
            post(&mut send, "/connect", connect).await,
            (200, r#"{"result":{"user":"px-1"}}"#.into())
        );
        assert_eq!(
            post(&mut send, "/connect", connect).await,
            (200, r#"{"result":{"user":"px-2"}}"#.into())
        );
        assert_eq!(
            post(
                &mut send,
                "/connect",
                r#"{"client":"c","data":{"user":"alice"}}"#
            )
            .await,
            (200, r#"{"result":{"user":"alice"}}"#.into())
        );
        assert_eq!(
            post(
                &mut send,
                "/subscribe",
                r#"{"client":"c","user":"u","channel":"px:a"}"#
            )
            .await,
            (200, r#"{"result":{}}"#.into())
        );
        let rpc = r#"{"client":"c","user":"u","method":"echo","data":{"rb":[3,9],"pad":"xx"}}"#;
        assert_eq!(
            post(&mut send, "/rpc", rpc).await,
            (200, r#"{"result":{"data":{"rb":[3,9],"pad":"xx"}}}"#.into())
        );
        assert_eq!(post(&mut send, "/rpc", "not json").await.0, 400);
        assert_eq!(post(&mut send, "/other", "{}").await.0, 404);
        let stats = Kv::parse(
            &crate::proxy::http_get(&addr.to_string(), "/stats")
                .await
                .unwrap(),
        );
        // The client's keep-alive connection plus the stats request's own.
        assert_eq!(stats.get("conns"), Some("2"));
        assert_eq!(stats.get("connect"), Some("3"));
        assert_eq!(stats.get("subscribe"), Some("1"));
        assert_eq!(stats.get("rpc"), Some("1"));
        assert_eq!(stats.get("bad"), Some("2"));
        assert_eq!(stats.num("pid"), Some(std::process::id() as f64));
        srv.abort();
    }

    #[test]
    fn fields_and_users() {
        let f =
            parse_object(br#"{"client":"c1","method":"m","data":{"rb":[1,2],"s":"x"}}"#).unwrap();
        assert_eq!(f["data"].get(), r#"{"rb":[1,2],"s":"x"}"#);
        assert!(parse_object(b"[1]").is_none());
        assert!(parse_object(b"{").is_none());
        assert_eq!(user_of(r#"{"user":"u\"1"}"#), Some("u\"1".to_string()));
        assert_eq!(user_of(r#"{"user":5}"#), None);
        assert_eq!(user_of("[]"), None);
    }
}
