//! Helpers for the proxy end-to-end tests (`e2e_proxy*.rs`), on top of the shared harness
//! (`common`, used read-only): a real HTTP backend on a free port that records every request
//! Rotor sends it (path, headers, JSON body, arrival time) and answers each one as the test
//! says (status, body, delay); a WebSocket client that can set upgrade headers (Cookie, ...) and
//! speaks JSON or varint-framed Protobuf (`pb`); the gRPC backend lives in `grpc`.
//!
//! Every wait has a deadline, so a broken server fails a test instead of hanging it.

#![allow(dead_code)]

pub mod grpc;
pub mod pb;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;

/// Default deadline of every wait (as in `common`).
pub const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// HTTP backend
// ---------------------------------------------------------------------------------------------

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Value::Null` when it is not JSON.
    pub body: Value,
    pub raw: String,
    /// 0-based index among the requests to the same path.
    pub nth: usize,
    pub at: Instant,
}

impl Seen {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A body field as a string ("" when absent or not a string).
    pub fn str(&self, key: &str) -> &str {
        self.body.get(key).and_then(Value::as_str).unwrap_or("")
    }
}

/// What the backend answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    /// 200 with this JSON body.
    pub fn json(v: Value) -> Answer {
        Answer {
            status: 200,
            body: v.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// 200 `{"result": v}`.
    pub fn result(v: Value) -> Answer {
        Self::json(json!({ "result": v }))
    }

    /// 200 `{"error": {"code", "message"}}`.
    pub fn error(code: u32, message: &str) -> Answer {
        Self::json(json!({"error": {"code": code, "message": message}}))
    }

    /// 200 `{"disconnect": {"code", "reason"}}` (2.x adds `reconnect` itself if it wants).
    pub fn disconnect(code: u16, reason: &str) -> Answer {
        Self::json(json!({"disconnect": {"code": code, "reason": reason}}))
    }

    /// Any status with a raw body.
    pub fn status(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// 200 with a raw (possibly non-JSON) body.
    pub fn raw(body: &str) -> Answer {
        Self::status(200, body)
    }

    /// The same answer, sent after `d`.
    pub fn after(mut self, d: Duration) -> Answer {
        self.delay = d;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    handler: Handler,
}

/// A real HTTP/1.1 server on 127.0.0.1 (axum), stopped when dropped.
pub struct HttpBackend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24)
        .await
        .unwrap_or_default();
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let path = parts.uri.path().to_string();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let seen = {
        let mut all = sh.seen.lock().unwrap();
        let nth = all.iter().filter(|s| s.path == path).count();
        let s = Seen {
            method: parts.method.to_string(),
            path,
            headers,
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
            nth,
            at: Instant::now(),
        };
        all.push(s.clone());
        s
    };
    let answer = (sh.handler)(&seen);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    Response::builder()
        .status(answer.status)
        .header("content-type", "application/json")
        .body(Body::from(answer.body))
        .unwrap()
}

impl HttpBackend {
    /// Starts the backend; `handler` picks the answer of every request (by `path`, body, ...).
    pub async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> HttpBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test backend");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            handler: Arc::new(handler),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpBackend { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests to `path` so far.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Waits (up to `within`) until `path` got at least `n` requests; returns them all.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.seen_at(path);
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "backend got {} request(s) to {path} within {within:?}, expected {n}; all: {:#?}",
                    got.len(),
                    self.seen()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address on 127.0.0.1 where nothing listens (bound, read, released).
pub fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// WebSocket client with upgrade headers, JSON or Protobuf
// ---------------------------------------------------------------------------------------------

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One WebSocket connection. JSON text frames are split on `\n` into values, binary frames into
/// varint-delimited Protobuf messages; both are buffered until the test asks for them.
pub struct Conn {
    stream: WsStream,
    values: VecDeque<Value>,
    bins: VecDeque<Vec<u8>>,
    closed: Option<(u16, String)>,
    next_id: u64,
    /// Every text frame received, verbatim.
    pub frames: Vec<String>,
}

impl Conn {
    /// Opens `url` sending `headers` with the upgrade request.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Conn {
        let mut req = url.into_client_request().expect("WebSocket URL");
        for (k, v) in headers {
            req.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let (stream, _) =
            match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await {
                Err(_) => panic!("WebSocket handshake with {url} timed out"),
                Ok(Err(e)) => panic!("WebSocket handshake with {url} failed: {e}"),
                Ok(Ok(x)) => x,
            };
        Conn {
            stream,
            values: VecDeque::new(),
            bins: VecDeque::new(),
            closed: None,
            next_id: 1,
            frames: Vec::new(),
        }
    }

    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn send_msg(&mut self, m: Message) {
        match tokio::time::timeout(WAIT, self.stream.send(m)).await {
            Err(_) => panic!("send timed out"),
            Ok(Err(e)) => panic!("send failed: {e}"),
            Ok(Ok(())) => {}
        }
    }

    /// One JSON value as one text frame.
    pub async fn send(&mut self, v: &Value) {
        if let Some(id) = v.get("id").and_then(Value::as_u64) {
            self.next_id = self.next_id.max(id + 1);
        }
        self.send_msg(Message::text(v.to_string())).await;
    }

    /// One binary frame.
    pub async fn send_bin(&mut self, bytes: Vec<u8>) {
        self.send_msg(Message::binary(bytes)).await;
    }

    /// Reads one WebSocket message into the buffers; `false` on deadline or once closed.
    async fn fill(&mut self, deadline: Instant) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let next = match tokio::time::timeout(deadline - now, self.stream.next()).await {
            Err(_) => return false,
            Ok(n) => n,
        };
        match next {
            None => self.closed = Some((1006, "stream ended without a close frame".into())),
            Some(Err(e)) => self.closed = Some((1006, format!("transport error: {e}"))),
            Some(Ok(Message::Close(cf))) => {
                self.closed = Some(match cf {
                    Some(cf) => (u16::from(cf.code), cf.reason.as_str().to_string()),
                    None => (1005, String::new()),
                })
            }
            Some(Ok(Message::Text(t))) => {
                let text = t.as_str().to_string();
                for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("server sent non-JSON ({e}): {line:?}"));
                    self.values.push_back(v);
                }
                self.frames.push(text);
            }
            Some(Ok(Message::Binary(b))) => {
                for m in pb::split_frames(&b) {
                    self.bins.push_back(m);
                }
            }
            Some(Ok(_)) => {}
        }
        true
    }

    fn describe(&self) -> String {
        format!(
            "closed={:?}, buffered json={:?}, buffered binary={}",
            self.closed,
            self.values,
            self.bins.len()
        )
    }

    /// The close (code, reason) once seen.
    pub fn closed(&self) -> Option<(u16, String)> {
        self.closed.clone()
    }

    /// Waits for the JSON reply with this id; other values stay buffered.
    pub async fn reply(&mut self, id: u64) -> Value {
        self.reply_within(id, WAIT).await
    }

    pub async fn reply_within(&mut self, id: u64, d: Duration) -> Value {
        let deadline = Instant::now() + d;
        loop {
            if let Some(pos) = self
                .values
                .iter()
                .position(|v| v.get("id").and_then(Value::as_u64) == Some(id))
            {
                return self.values.remove(pos).unwrap();
            }
            if let Some((c, r)) = &self.closed {
                panic!(
                    "connection closed ({c}, {r:?}) while waiting for reply id {id}; {}",
                    self.describe()
                );
            }
            if !self.fill(deadline).await {
                panic!("no reply with id {id} within {d:?}; {}", self.describe());
            }
        }
    }

    /// Sends `{"id":N,"method":M,"params":P}` (v1) and waits for its reply.
    pub async fn call_v1(&mut self, method: u64, params: Value) -> Value {
        let id = self.take_id();
        self.send(&json!({"id": id, "method": method, "params": params}))
            .await;
        self.reply(id).await
    }

    /// Sends `{"id":N,"<name>":params}` (v2) and waits for its reply.
    pub async fn call_v2(&mut self, name: &str, params: Value) -> Value {
        let id = self.cmd_v2(name, params).await;
        self.reply(id).await
    }

    /// Sends `{"id":N,"<name>":params}` (v2) without waiting; returns N.
    pub async fn cmd_v2(&mut self, name: &str, params: Value) -> u64 {
        let id = self.take_id();
        let mut o = serde_json::Map::new();
        o.insert("id".into(), json!(id));
        o.insert(name.into(), params);
        self.send(&Value::Object(o)).await;
        id
    }

    fn is_push(v: &Value) -> bool {
        v.get("id").and_then(Value::as_u64).unwrap_or(0) == 0 && *v != json!({})
    }

    /// The next JSON push (no id, not a v2 ping `{}`), `None` after `d` or on close.
    pub async fn push_within(&mut self, d: Duration) -> Option<Value> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(pos) = self.values.iter().position(Self::is_push) {
                return self.values.remove(pos);
            }
            if self.closed.is_some() || !self.fill(deadline).await {
                return None;
            }
        }
    }

    pub async fn push(&mut self) -> Value {
        match self.push_within(WAIT).await {
            Some(v) => v,
            None => panic!("no push within {WAIT:?}; {}", self.describe()),
        }
    }

    /// The next Protobuf message (one varint-delimited Reply), panicking after 5 s.
    pub async fn bin(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(m) = self.bins.pop_front() {
                return m;
            }
            if self.closed.is_some() || !self.fill(deadline).await {
                panic!("no binary message; {}", self.describe());
            }
        }
    }

    /// Waits for the close frame; (code, reason). No close frame → 1006.
    pub async fn close_within(&mut self, d: Duration) -> (u16, String) {
        let deadline = Instant::now() + d;
        loop {
            if let Some(c) = self.closed.clone() {
                return c;
            }
            if !self.fill(deadline).await && self.closed.is_none() {
                panic!("connection not closed within {d:?}; {}", self.describe());
            }
        }
    }

    pub async fn expect_close(&mut self) -> (u16, String) {
        self.close_within(WAIT).await
    }

    /// Asserts the connection stays open for `d` (what arrives meanwhile stays buffered).
    pub async fn assert_open_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while self.fill(deadline).await {}
        if let Some((c, r)) = &self.closed {
            panic!("connection closed ({c}, {r:?}) but should stay open");
        }
    }

    /// Everything buffered and not yet taken (JSON).
    pub fn buffered(&self) -> Vec<Value> {
        self.values.iter().cloned().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Small checks
// ---------------------------------------------------------------------------------------------

/// Asserts the fields every proxy request carries (PROXY.md §3.2) for a JSON WebSocket client.
pub fn assert_head(s: &Seen, client: &str) {
    assert_eq!(s.method, "POST", "{s:#?}");
    assert_eq!(s.str("client"), client, "client id in {s:#?}");
    assert_eq!(s.str("transport"), "websocket", "{s:#?}");
    assert_eq!(s.str("protocol"), "json", "{s:#?}");
    assert_eq!(s.str("encoding"), "json", "{s:#?}");
    assert_eq!(
        s.header("content-type"),
        Some("application/json"),
        "content-type of {s:#?}"
    );
}
