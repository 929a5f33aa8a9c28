//! End-to-end test harness: starts the real `rotor` binary on a free port with a Centrifugo 2.x
//! JSON config, talks WebSocket (both client-protocol generations) and HTTP to it, and mints
//! HMAC-signed JWTs itself (SHA-2 and HMAC written here from FIPS 180-4 / RFC 2104, because the
//! tests may not add crates).
//!
//! Every wait has a deadline, so a broken server fails a test instead of hanging it. Each test
//! owns its own server process; the process is killed when the [`Server`] is dropped, and its
//! output is printed when the test panicked.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// `token_hmac_secret_key` of every test server.
pub const SECRET: &str = "secret";
/// `api_key` of every test server.
pub const API_KEY: &str = "api";
/// Default deadline of every wait.
pub const WAIT: Duration = Duration::from_secs(5);
/// Exact v1 close reasons (PROTOCOL.md §3.2).
pub const V1_INVALID_TOKEN: &str = r#"{"reason":"invalid token","reconnect":false}"#;
pub const V1_BAD_REQUEST: &str = r#"{"reason":"bad request","reconnect":false}"#;
pub const V1_EXPIRED: &str = r#"{"reason":"expired","reconnect":true}"#;
pub const V1_SUB_EXPIRED: &str = r#"{"reason":"subscription expired","reconnect":true}"#;
pub const V1_STALE: &str = r#"{"reason":"stale","reconnect":false}"#;
pub const V1_FORCE_DISCONNECT: &str = r#"{"reason":"force disconnect","reconnect":false}"#;
pub const V1_SLOW: &str = r#"{"reason":"slow","reconnect":true}"#;
pub const V1_SHUTDOWN: &str = r#"{"reason":"shutdown","reconnect":true}"#;
pub const V1_CONNECTION_LIMIT: &str = r#"{"reason":"connection limit","reconnect":false}"#;

// ---------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------

static SERVER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running `rotor` process with its own config file and port.
pub struct Server {
    child: Mutex<Option<Child>>,
    pub port: u16,
    pub config: Value,
    dir: PathBuf,
    output: Arc<Mutex<Vec<u8>>>,
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// The base config every test server gets; `extra` keys are merged on top.
pub fn base_config(port: u16) -> Value {
    json!({
        "address": "127.0.0.1",
        "port": port,
        "token_hmac_secret_key": SECRET,
        "api_key": API_KEY,
    })
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

fn scratch_dir() -> PathBuf {
    let n = SERVER_SEQ.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir =
        std::env::temp_dir().join(format!("rotor-e2e-{}-{}-{}", std::process::id(), n, nanos));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn spawn_capturing(mut cmd: Command) -> (Child, Arc<Mutex<Vec<u8>>>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn rotor binary");
    let output = Arc::new(Mutex::new(Vec::new()));
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = output.clone();
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        });
    }
    (child, output)
}

impl Server {
    /// Starts `rotor -c <dir>/config.json` with the base config plus `extra` and waits (10 s at
    /// most) until it says it listens on its port and the port accepts TCP connections. Retries
    /// with another port if the process exits early (a port taken by a parallel test between
    /// probe and bind).
    pub async fn start(extra: Value) -> Server {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&extra).await {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("rotor did not start: {last}");
    }

    async fn try_start(extra: &Value) -> Result<Server, String> {
        let port = free_port();
        let mut config = base_config(port);
        merge(&mut config, extra);
        let dir = scratch_dir();
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.arg("-c").arg(&path).current_dir(&dir);
        let (child, output) = spawn_capturing(cmd);
        let server = Server {
            child: Mutex::new(Some(child)),
            port,
            config,
            dir,
            output,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.exit_status() {
                return Err(format!(
                    "rotor exited early ({status}); output:\n{}",
                    server.output()
                ));
            }
            // Our process must say it bound the port: a connect alone may reach another
            // test's listener that took the port between probe and bind (rotor then exits).
            let bound = format!("listening on http://127.0.0.1:{port}");
            let bound_tls = format!("listening on https://127.0.0.1:{port}");
            let said = {
                let out = server.output();
                out.contains(&bound) || out.contains(&bound_tls)
            };
            if said && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "rotor did not accept on port {port} within 10 s; output:\n{}",
                    server.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits up to 5 s for `needle` in the output: the port can accept before the reader
    /// thread has collected the line printed just before. Returns the output either way.
    pub async fn wait_output(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.output();
            if out.contains(needle) || Instant::now() > deadline {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut guard = self.child.lock().unwrap();
        guard.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics (with the server output) unless the process is still running.
    pub fn assert_alive(&self) {
        if let Some(status) = self.exit_status() {
            panic!("rotor process died ({status}); output:\n{}", self.output());
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    pub fn ws_url_with(&self, query: &str) -> String {
        format!("{}?{}", self.ws_url(), query)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// A v1 WebSocket (no query) connected with a token for `user`; returns (ws, client id).
    pub async fn v1_client(&self, user: &str) -> (Ws, String) {
        let mut ws = Ws::open(&self.ws_url()).await;
        let res = ws.connect_v1(&conn_token(user)).await;
        let id = res["client"].as_str().expect("client id").to_string();
        (ws, id)
    }

    /// A v2 WebSocket connected with a token for `user`; returns (ws, client id).
    pub async fn v2_client(&self, user: &str) -> (Ws, String) {
        let mut ws = Ws::open(&self.ws_url()).await;
        let res = ws.connect_v2(&conn_token(user)).await;
        let id = res["client"].as_str().expect("client id").to_string();
        (ws, id)
    }

    /// Proves the server still serves: a fresh v1 client connects and subscribes, a publication
    /// made through the API reaches it.
    pub async fn assert_serves_fresh_client(&self) {
        self.assert_alive();
        let (mut ws, _) = self.v1_client("fresh").await;
        let ch = "fresh-check";
        let rep = ws.call_v1(1, json!({ "channel": ch })).await;
        assert_eq!(rep["result"], json!({}), "fresh subscribe reply: {rep}");
        api_publish(self, ch, json!({"alive": true})).await;
        let push = ws.push().await;
        assert_eq!(
            push,
            json!({"result": {"channel": ch, "data": {"data": {"alive": true}}}})
        );
        self.assert_alive();
    }

    /// Sends SIGTERM (graceful shutdown) without waiting.
    pub fn terminate(&self) {
        let pid = self.child.lock().unwrap().as_ref().map(|c| c.id());
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }

    /// Sends SIGKILL and reaps the process (also done on drop).
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- rotor output (port {}, config {}) -----\n{}\n----- end of rotor output -----",
                self.port,
                self.config,
                self.output()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `rotor -c <file with config_text>` expecting it to exit by itself within `within`;
/// returns `Some(status)` and the output, or `None` (after killing it) if it kept running.
pub fn run_rotor_with_config_text(
    config_text: &str,
    within: Duration,
) -> (Option<ExitStatus>, String) {
    let dir = scratch_dir();
    let path = dir.join("config.json");
    std::fs::write(&path, config_text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
    cmd.arg("-c").arg(&path).current_dir(&dir);
    let (mut child, output) = spawn_capturing(cmd);
    let deadline = Instant::now() + within;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(50));
    let out = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    (status, out)
}

// ---------------------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------------------

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One WebSocket connection. Text frames are split on `\n` into JSON values which are buffered,
/// so a test can wait for "the reply with id N" while pushes queue up, then read the pushes.
/// Nothing is read unless the test waits for something (a test can stop reading on purpose).
pub struct Ws {
    stream: WsStream,
    pending: VecDeque<Value>,
    closed: Option<(u16, String)>,
    next_id: u64,
    /// Every text frame received so far, verbatim.
    pub frames: Vec<String>,
    /// Answer v2 server pings (`{}`) with `{}` automatically.
    pub auto_pong: bool,
    /// Number of v2 server pings (`{}`) seen.
    pub pings: usize,
    /// Number of WebSocket control Ping frames seen (tungstenite answers them itself).
    pub control_pings: usize,
    /// Client ID from the connect result, once connected.
    pub client: String,
}

/// What a wait saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Value(Value),
    Closed(u16, String),
}

impl Ws {
    /// Opens a WebSocket to `url` (5 s deadline).
    pub async fn open(url: &str) -> Ws {
        match Self::try_open(url).await {
            Ok(ws) => ws,
            Err(e) => panic!("WebSocket handshake with {url} failed: {e}"),
        }
    }

    /// Opens a WebSocket; the error text on failure (for handshake-rejection tests).
    pub async fn try_open(url: &str) -> Result<Ws, String> {
        let fut = tokio_tungstenite::connect_async(url);
        match tokio::time::timeout(WAIT, fut).await {
            Err(_) => Err("handshake timed out".into()),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Ok(Ok((stream, _resp))) => Ok(Ws {
                stream,
                pending: VecDeque::new(),
                closed: None,
                next_id: 1,
                frames: Vec::new(),
                auto_pong: false,
                pings: 0,
                control_pings: 0,
                client: String::new(),
            }),
        }
    }

    /// The id the next `cmd_*`/`call_*` will use.
    pub fn peek_id(&self) -> u64 {
        self.next_id
    }

    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ----- sending -----

    pub async fn try_send(&mut self, msg: Message) -> Result<(), String> {
        match tokio::time::timeout(WAIT, self.stream.send(msg)).await {
            Err(_) => Err("send timed out".into()),
            Ok(r) => r.map_err(|e| format!("{e}")),
        }
    }

    async fn send_msg(&mut self, msg: Message) {
        if let Err(e) = self.try_send(msg).await {
            panic!("sending to the server failed: {e}");
        }
    }

    /// Sends one JSON value as one text frame.
    pub async fn send(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Sends a text frame verbatim. Numeric ids found in it advance the id counter, so
    /// hand-written commands and `cmd_*` helpers never reuse an id.
    pub async fn send_text(&mut self, text: &str) {
        for line in text.split('\n') {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    self.next_id = self.next_id.max(id + 1);
                }
            }
        }
        self.send_msg(Message::text(text.to_string())).await;
    }

    /// Sends several JSON values in one text frame, separated by `\n`.
    pub async fn send_lines(&mut self, values: &[Value]) {
        let text = values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        self.send_text(&text).await;
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send_msg(Message::binary(bytes)).await;
    }

    /// Sends a text-opcode frame whose payload is arbitrary bytes (e.g. invalid UTF-8).
    pub async fn send_raw_text_frame(&mut self, bytes: Vec<u8>) {
        let frame = Frame::message(bytes, OpCode::Data(Data::Text), true);
        self.send_msg(Message::Frame(frame)).await;
    }

    // ----- receiving -----

    /// Reads one WebSocket message (or the close) into the buffer. `false` on deadline.
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
            Some(Err(e)) => {
                self.closed = Some((1006, format!("transport error without a close frame: {e}")))
            }
            Some(Ok(Message::Close(cf))) => {
                self.closed = Some(match cf {
                    Some(cf) => (u16::from(cf.code), cf.reason.as_str().to_string()),
                    None => (1005, String::new()),
                })
            }
            Some(Ok(Message::Text(t))) => {
                let text = t.as_str().to_string();
                for line in text.split('\n') {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let v: Value = match serde_json::from_str(line) {
                        Ok(v) => v,
                        Err(e) => panic!("server sent a line that is not JSON ({e}): {line:?}"),
                    };
                    if v == json!({}) {
                        self.pings += 1;
                        if self.auto_pong {
                            let _ = self.try_send(Message::text("{}")).await;
                        }
                    }
                    self.pending.push_back(v);
                }
                self.frames.push(text);
            }
            Some(Ok(Message::Binary(b))) => {
                panic!(
                    "server sent a binary frame on a JSON connection: {:?}",
                    &b[..b.len().min(64)]
                )
            }
            Some(Ok(Message::Ping(_))) => self.control_pings += 1, // tungstenite queues the pong
            Some(Ok(_)) => {}
        }
        true
    }

    fn describe(&self) -> String {
        format!("closed={:?}, buffered={:?}", self.closed, self.pending)
    }

    /// The close (code, reason) once seen.
    pub fn closed(&self) -> Option<(u16, String)> {
        self.closed.clone()
    }

    /// Next value or close within `d`, `None` on deadline. Buffered values come first.
    pub async fn next_event_within(&mut self, d: Duration) -> Option<Event> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Some(Event::Value(v));
            }
            if let Some((c, r)) = self.closed.clone() {
                return Some(Event::Closed(c, r));
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// Next value of any kind (reply, push or ping), panicking on close or after 5 s.
    pub async fn recv(&mut self) -> Value {
        match self.next_event_within(WAIT).await {
            Some(Event::Value(v)) => v,
            Some(Event::Closed(c, r)) => panic!("expected a message, got close {c} {r:?}"),
            None => panic!("no message within {WAIT:?}"),
        }
    }

    /// Waits for the reply with this id; pushes and other replies stay buffered.
    pub async fn reply(&mut self, id: u64) -> Value {
        self.reply_within(id, WAIT).await
    }

    pub async fn reply_within(&mut self, id: u64, d: Duration) -> Value {
        let deadline = Instant::now() + d;
        loop {
            if let Some(pos) = self
                .pending
                .iter()
                .position(|v| v.get("id").and_then(Value::as_u64) == Some(id))
            {
                return self.pending.remove(pos).unwrap();
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

    fn is_push(v: &Value) -> bool {
        let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
        id == 0 && *v != json!({})
    }

    /// Next push (a value without id that is not a v2 ping `{}`), `None` after `d`.
    pub async fn push_within(&mut self, d: Duration) -> Option<Value> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(pos) = self.pending.iter().position(Self::is_push) {
                return self.pending.remove(pos);
            }
            if self.closed.is_some() {
                return None;
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// Next push, panicking after 5 s.
    pub async fn push(&mut self) -> Value {
        match self.push_within(WAIT).await {
            Some(v) => v,
            None => panic!("no push within {WAIT:?}; {}", self.describe()),
        }
    }

    /// Asserts that no push arrives within `d` (and returns what else was buffered meanwhile).
    pub async fn assert_no_push(&mut self, d: Duration) {
        if let Some(p) = self.push_within(d).await {
            panic!("unexpected push: {p}");
        }
    }

    /// Waits for the close frame (values arriving before it stay buffered); (code, reason).
    /// A connection that ends without a close frame yields code 1006.
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

    /// Asserts the connection stays open for `d` (values arriving meanwhile stay buffered).
    pub async fn assert_open_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while self.fill(deadline).await {}
        if let Some((c, r)) = &self.closed {
            panic!("connection closed ({c}, {r:?}) but should stay open");
        }
    }

    /// Everything buffered and not yet taken.
    pub fn buffered(&self) -> Vec<Value> {
        self.pending.iter().cloned().collect()
    }

    /// Sends a WebSocket close from the client side (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.close(None)).await;
    }

    // ----- v1 (numeric method, params, result) -----

    /// Sends `{"id":N,"method":M,"params":P}`; returns N.
    pub async fn cmd_v1(&mut self, method: u64, params: Value) -> u64 {
        let id = self.take_id();
        self.send(&json!({"id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// Sends a v1 command and waits for its reply (the whole reply object).
    pub async fn call_v1(&mut self, method: u64, params: Value) -> Value {
        let id = self.cmd_v1(method, params).await;
        self.reply(id).await
    }

    /// v1 connect `{"id":N,"params":{"token":T}}`; asserts success; returns `result`.
    pub async fn connect_v1(&mut self, token: &str) -> Value {
        let id = self.take_id();
        self.send(&json!({"id": id, "params": {"token": token}}))
            .await;
        let rep = self.reply(id).await;
        assert!(rep.get("error").is_none(), "v1 connect failed: {rep}");
        let res = rep["result"].clone();
        self.client = res["client"].as_str().unwrap_or_default().to_string();
        res
    }

    /// v1 subscribe; returns the whole reply.
    pub async fn subscribe_v1(&mut self, channel: &str) -> Value {
        self.call_v1(1, json!({ "channel": channel })).await
    }

    /// v1 subscribe with a token; returns the whole reply.
    pub async fn subscribe_v1_token(&mut self, channel: &str, token: &str) -> Value {
        self.call_v1(1, json!({ "channel": channel, "token": token }))
            .await
    }

    // ----- v2 (named command fields) -----

    /// Sends `{"id":N,"<name>":params}`; returns N.
    pub async fn cmd_v2(&mut self, name: &str, params: Value) -> u64 {
        let id = self.take_id();
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), json!(id));
        obj.insert(name.into(), params);
        self.send(&Value::Object(obj)).await;
        id
    }

    /// Sends a v2 command and waits for its reply (the whole reply object).
    pub async fn call_v2(&mut self, name: &str, params: Value) -> Value {
        let id = self.cmd_v2(name, params).await;
        self.reply(id).await
    }

    /// v2 connect `{"id":N,"connect":{"token":T}}`; asserts success; returns the `connect` result.
    pub async fn connect_v2(&mut self, token: &str) -> Value {
        let rep = self.call_v2("connect", json!({ "token": token })).await;
        assert!(rep.get("error").is_none(), "v2 connect failed: {rep}");
        let res = rep["connect"].clone();
        assert!(
            res.is_object(),
            "v2 connect reply without connect result: {rep}"
        );
        self.client = res["client"].as_str().unwrap_or_default().to_string();
        res
    }

    /// v2 subscribe (with the `flag` current clients always send); returns the whole reply.
    pub async fn subscribe_v2(&mut self, channel: &str) -> Value {
        self.call_v2("subscribe", json!({ "channel": channel, "flag": 1 }))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP API
// ---------------------------------------------------------------------------------------------

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

/// A raw HTTP answer.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl HttpReply {
    /// The body as newline-separated JSON values (empty lines skipped).
    pub fn lines(&self) -> Vec<Value> {
        self.body
            .split('\n')
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("API line is not JSON ({e}): {l:?}"))
            })
            .collect()
    }

    /// The body as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("API body is not JSON ({e}): {:?}", self.body))
    }
}

/// POSTs `body` to `url` with the given headers.
pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<String>) -> HttpReply {
    let mut req = http().post(url).body(body.into());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    read_reply(resp).await
}

pub async fn read_reply(resp: reqwest::Response) -> HttpReply {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    HttpReply {
        status,
        content_type,
        body,
    }
}

/// `POST /api` (2.x shapes) with `Authorization: apikey api`; one or more commands.
pub async fn api_v1_raw(server: &Server, body: &str) -> HttpReply {
    let auth = format!("apikey {API_KEY}");
    post(
        &server.http_url("/api"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

/// `POST /api` with one `{"method":..,"params":..}` command; asserts 200; the reply lines.
pub async fn api_v1(server: &Server, method: &str, params: Value) -> Vec<Value> {
    let body = json!({ "method": method, "params": params }).to_string();
    let r = api_v1_raw(server, &body).await;
    assert_eq!(r.status, 200, "/api {method}: {r:?}");
    r.lines()
}

/// `POST /api` publish; asserts one reply line without error and returns the lines.
pub async fn api_publish(server: &Server, channel: &str, data: Value) -> Vec<Value> {
    let lines = api_v1(
        server,
        "publish",
        json!({ "channel": channel, "data": data }),
    )
    .await;
    assert!(
        lines.len() == 1 && lines[0].get("error").is_none(),
        "/api publish to {channel}: {lines:?}"
    );
    lines
}

/// `POST /api/<method>` (current shapes) with `X-API-Key: api`.
pub async fn api_v2_raw(server: &Server, method: &str, body: &str) -> HttpReply {
    post(
        &server.http_url(&format!("/api/{method}")),
        &[("X-API-Key", API_KEY), ("Content-Type", "application/json")],
        body.to_string(),
    )
    .await
}

/// `POST /api/<method>` with params; asserts 200; the JSON body.
pub async fn api_v2(server: &Server, method: &str, params: Value) -> Value {
    let r = api_v2_raw(server, method, &params.to_string()).await;
    assert_eq!(r.status, 200, "/api/{method}: {r:?}");
    r.json()
}

// ---------------------------------------------------------------------------------------------
// Time, tokens, small checks
// ---------------------------------------------------------------------------------------------

/// Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A connection token for `user` without expiry.
pub fn conn_token(user: &str) -> String {
    jwt(&json!({ "sub": user }))
}

/// A v1 private-channel subscription token (`client`, `channel`).
pub fn sub_token(client: &str, channel: &str) -> String {
    jwt(&json!({ "client": client, "channel": channel }))
}

/// HS256 JWT over `claims` with the test secret.
pub fn jwt(claims: &Value) -> String {
    jwt_with("HS256", SECRET.as_bytes(), claims)
}

/// A JWT with header `alg`, signed with `secret`: HS256/HS384/HS512 are signed properly, `none`
/// gets an empty signature, any other name gets an HS256 signature (so only `alg` is wrong).
pub fn jwt_with(alg: &str, secret: &[u8], claims: &Value) -> String {
    jwt_raw(alg, secret, &claims.to_string())
}

/// Like [`jwt_with`] with the claims given as raw JSON text (for payloads serde would refuse).
pub fn jwt_raw(alg: &str, secret: &[u8], claims_json: &str) -> String {
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
    let signing_input = format!(
        "{}.{}",
        base64_url(header.as_bytes()),
        base64_url(claims_json.as_bytes())
    );
    let sig = match alg {
        "none" => Vec::new(),
        "HS384" => hmac(Sha::S384, secret, signing_input.as_bytes()),
        "HS512" => hmac(Sha::S512, secret, signing_input.as_bytes()),
        _ => hmac(Sha::S256, secret, signing_input.as_bytes()),
    };
    format!("{}.{}", signing_input, base64_url(&sig))
}

/// Checks the canonical UUIDv4 text form (lowercase or uppercase hex).
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *c == b'-',
            14 => *c == b'4',
            19 => matches!(c.to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b'),
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Asserts `v` is an integer within `lo..=hi`.
pub fn assert_int_in(v: &Value, lo: i64, hi: i64, what: &str) {
    let n = v
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: expected an integer, got {v}"));
    assert!((lo..=hi).contains(&n), "{what}: {n} not in {lo}..={hi}");
}

// ---------------------------------------------------------------------------------------------
// Base64
// ---------------------------------------------------------------------------------------------

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding (for `b64info`).
pub fn base64_std(data: &[u8]) -> String {
    base64_with(data, B64_STD, true)
}

/// URL-safe base64 without padding (JWT segments).
pub fn base64_url(data: &[u8]) -> String {
    base64_with(data, B64_URL, false)
}

// ---------------------------------------------------------------------------------------------
// SHA-2 and HMAC (FIPS 180-4, RFC 2104)
// ---------------------------------------------------------------------------------------------

/// SHA-512 round constants: the first 64 bits of the fractional parts of the cube roots of the
/// first 80 primes. SHA-256 uses the upper 32 bits of the first 64 of them.
#[rustfmt::skip]
const K64: [u64; 80] = [
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
];

/// Fractional parts of the square roots of the first 16 primes, 64 bits each: primes 1–8 give the
/// SHA-512 initial hash (upper halves: SHA-256's), primes 9–16 SHA-384's.
#[rustfmt::skip]
const ROOTS64: [u64; 16] = [
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
    0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
    0xcbbb9d5dc1059ed8, 0x629a292a367cd507, 0x9159015a3070dd17, 0x152fecd8f70e5939,
    0x67332667ffc00b31, 0x8eb44a8768581511, 0xdb0c2e0d64f98fa7, 0x47b5481dbefa4fa4,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sha {
    S256,
    S384,
    S512,
}

impl Sha {
    fn block_len(self) -> usize {
        match self {
            Sha::S256 => 64,
            _ => 128,
        }
    }
}

/// Appends the padding: 0x80, zeros, message length in bits (8 or 16 bytes, big endian).
fn pad(data: &[u8], block: usize) -> Vec<u8> {
    let len_bytes = block / 8;
    let mut m = data.to_vec();
    m.push(0x80);
    while m.len() % block != block - len_bytes {
        m.push(0);
    }
    let bits = (data.len() as u128) * 8;
    m.extend_from_slice(&bits.to_be_bytes()[16 - len_bytes..]);
    m
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = std::array::from_fn(|i| (ROOTS64[i] >> 32) as u32);
    for block in pad(data, 64).chunks(64) {
        let mut w = [0u32; 64];
        for t in 0..16 {
            w[t] = u32::from_be_bytes(block[4 * t..4 * t + 4].try_into().unwrap());
        }
        for t in 16..64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for t in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add((K64[t] >> 32) as u32)
                .wrapping_add(w[t]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn sha512_core(data: &[u8], iv: [u64; 8], out_len: usize) -> Vec<u8> {
    let mut h = iv;
    for block in pad(data, 128).chunks(128) {
        let mut w = [0u64; 80];
        for t in 0..16 {
            w[t] = u64::from_be_bytes(block[8 * t..8 * t + 8].try_into().unwrap());
        }
        for t in 16..80 {
            let s0 = w[t - 15].rotate_right(1) ^ w[t - 15].rotate_right(8) ^ (w[t - 15] >> 7);
            let s1 = w[t - 2].rotate_right(19) ^ w[t - 2].rotate_right(61) ^ (w[t - 2] >> 6);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for t in 0..80 {
            let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K64[t])
                .wrapping_add(w[t]);
            let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter()
        .flat_map(|x| x.to_be_bytes())
        .take(out_len)
        .collect()
}

/// SHA-256 / SHA-384 / SHA-512 digest.
pub fn sha(alg: Sha, data: &[u8]) -> Vec<u8> {
    match alg {
        Sha::S256 => sha256(data).to_vec(),
        Sha::S384 => sha512_core(data, std::array::from_fn(|i| ROOTS64[8 + i]), 48),
        Sha::S512 => sha512_core(data, std::array::from_fn(|i| ROOTS64[i]), 64),
    }
}

/// HMAC (RFC 2104) over the given SHA-2 function.
pub fn hmac(alg: Sha, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let block = alg.block_len();
    let mut k = if key.len() > block {
        sha(alg, key)
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha(alg, &inner));
    sha(alg, &outer)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
