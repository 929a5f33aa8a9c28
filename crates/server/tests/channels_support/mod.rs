//! Helpers for `e2e_channels.rs` on top of the shared harness (`common`, used read-only): one
//! client type that speaks either client-protocol generation, so a channel feature can be checked
//! with the same code for v1 and v2; pushes decoded into one shape; stream positions read in the
//! three wire forms (v1 `seq`/`gen`, v1 `offset`, v2 `offset`); a start-up runner that keeps
//! stderr apart from stdout.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// A client-protocol generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G {
    V1,
    V2,
}

pub const GENS: [G; 2] = [G::V1, G::V2];

/// How a connection sees stream positions: v1 with `seq`/`gen` (2.x default), v1 with
/// `offset` (`v3_use_offset: true`), v2 (always `offset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    V1Seq,
    V1Offset,
    V2,
}

pub const MODES: [Mode; 3] = [Mode::V1Seq, Mode::V1Offset, Mode::V2];

impl Mode {
    pub fn g(self) -> G {
        match self {
            Mode::V2 => G::V2,
            _ => G::V1,
        }
    }

    /// The `v3_use_offset` value a server needs for this mode (v2 ignores it).
    pub fn use_offset(self) -> bool {
        self == Mode::V1Offset
    }

    /// The position fields of a subscribe request or result for `offset` in this mode.
    pub fn position_fields(self, offset: u64) -> Value {
        match self {
            Mode::V1Seq => {
                let mut o = serde_json::Map::new();
                let (seq, gen) = (offset & 0xffff_ffff, offset >> 32);
                if seq > 0 {
                    o.insert("seq".into(), json!(seq));
                }
                if gen > 0 {
                    o.insert("gen".into(), json!(gen));
                }
                Value::Object(o)
            }
            _ => json!({ "offset": offset }),
        }
    }

    /// The position a subscribe result / publication / sub push carries in this mode (absent = 0).
    pub fn position_of(self, v: &Value) -> u64 {
        match self {
            Mode::V1Seq => {
                assert!(
                    v.get("offset").is_none(),
                    "seq/gen mode must not send offset: {v}"
                );
                let seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
                let gen = v.get("gen").and_then(Value::as_u64).unwrap_or(0);
                (gen << 32) | seq
            }
            _ => {
                assert!(
                    v.get("seq").is_none() && v.get("gen").is_none(),
                    "offset mode must not send seq/gen: {v}"
                );
                v.get("offset").and_then(Value::as_u64).unwrap_or(0)
            }
        }
    }

    /// Positions of the `publications` of a subscribe result in the order the wire has them.
    pub fn publication_positions(self, result: &Value) -> Vec<u64> {
        result
            .get("publications")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|p| self.position_of(p)).collect())
            .unwrap_or_default()
    }

    /// A subscribe command asking to recover from `offset` in `epoch`.
    pub fn recover_params(self, channel: &str, offset: u64, epoch: &str) -> Value {
        let mut p = json!({ "channel": channel, "recover": true, "epoch": epoch });
        if let (Some(o), Some(f)) = (p.as_object_mut(), self.position_fields(offset).as_object()) {
            for (k, v) in f {
                o.insert(k.clone(), v.clone());
            }
        }
        p
    }
}

/// v1 method numbers of the named commands.
pub fn v1_method(cmd: &str) -> u64 {
    match cmd {
        "subscribe" => 1,
        "unsubscribe" => 2,
        "publish" => 3,
        "presence" => 4,
        "presence_stats" => 5,
        "history" => 6,
        "ping" => 7,
        "rpc" => 9,
        "refresh" => 10,
        "sub_refresh" => 11,
        other => panic!("no v1 method for {other}"),
    }
}

/// An error reply's (code, message).
pub type CmdErr = (u64, String);

pub fn perm_denied() -> CmdErr {
    (103, "permission denied".into())
}
pub fn unknown_channel() -> CmdErr {
    (102, "unknown channel".into())
}
pub fn not_available() -> CmdErr {
    (108, "not available".into())
}
pub fn limit_exceeded() -> CmdErr {
    (106, "limit exceeded".into())
}

/// A decoded push, the same for both generations.
#[derive(Debug, Clone, PartialEq)]
pub enum P {
    /// The publication object (`data`, `info`, position fields).
    Pub(String, Value),
    /// The ClientInfo of a join.
    Join(String, Value),
    /// The ClientInfo of a leave.
    Leave(String, Value),
    /// The unsubscribe body (v1 `{}`, v2 `{code, reason}`).
    Unsub(String, Value),
    /// The server-side subscribe body.
    Sub(String, Value),
    Other(Value),
}

/// Decodes a push frame of generation `g`.
pub fn parse_push(g: G, v: &Value) -> P {
    match g {
        G::V1 => {
            let r = &v["result"];
            let ch = r["channel"].as_str().unwrap_or("").to_string();
            let d = r["data"].clone();
            match r.get("type").and_then(Value::as_u64).unwrap_or(0) {
                0 => P::Pub(ch, d),
                1 => P::Join(ch, d["info"].clone()),
                2 => P::Leave(ch, d["info"].clone()),
                3 => P::Unsub(ch, d),
                5 => P::Sub(ch, d),
                _ => P::Other(v.clone()),
            }
        }
        G::V2 => {
            let p = &v["push"];
            let ch = p["channel"].as_str().unwrap_or("").to_string();
            if let Some(x) = p.get("pub") {
                P::Pub(ch, x.clone())
            } else if let Some(x) = p.get("join") {
                P::Join(ch, x["info"].clone())
            } else if let Some(x) = p.get("leave") {
                P::Leave(ch, x["info"].clone())
            } else if let Some(x) = p.get("unsubscribe") {
                P::Unsub(ch, x.clone())
            } else if let Some(x) = p.get("subscribe") {
                P::Sub(ch, x.clone())
            } else {
                P::Other(v.clone())
            }
        }
    }
}

/// One connected client of either generation.
pub struct C {
    pub ws: Ws,
    pub g: G,
    pub id: String,
    pub user: String,
    /// The connect result (v1 `result`, v2 `connect`).
    pub connect: Value,
}

/// Sends a connect command with `params` and returns the socket and the whole reply (or panics
/// if the connection is closed instead).
pub async fn raw_connect(server: &Server, g: G, params: Value) -> (Ws, Value) {
    let mut ws = Ws::open(&server.ws_url()).await;
    let cmd = match g {
        G::V1 => json!({ "id": 1, "params": params }),
        G::V2 => json!({ "id": 1, "connect": params }),
    };
    ws.send(&cmd).await;
    let rep = ws.reply(1).await;
    (ws, rep)
}

/// Sends a connect command with `params` and returns the close the server answers with.
pub async fn connect_expect_close(
    server: &Server,
    g: G,
    params: Value,
) -> (u16, String, Vec<Value>) {
    let mut ws = Ws::open(&server.ws_url()).await;
    let cmd = match g {
        G::V1 => json!({ "id": 1, "params": params }),
        G::V2 => json!({ "id": 1, "connect": params }),
    };
    ws.send(&cmd).await;
    let (c, r) = ws.expect_close().await;
    (c, r, ws.buffered())
}

/// Connects with a token carrying `claims` (must contain `sub`); asserts success.
pub async fn connect(server: &Server, g: G, claims: Value) -> C {
    connect_with(server, g, json!({ "token": jwt(&claims) })).await
}

/// Connects user `user` with a plain token.
pub async fn connect_user(server: &Server, g: G, user: &str) -> C {
    connect(server, g, json!({ "sub": user })).await
}

/// Connects without a token (needs `client_anonymous`).
pub async fn connect_anon(server: &Server, g: G) -> C {
    connect_with(server, g, json!({})).await
}

/// Connects with arbitrary connect params; asserts success.
pub async fn connect_with(server: &Server, g: G, params: Value) -> C {
    let (mut ws, rep) = raw_connect(server, g, params.clone()).await;
    assert!(
        rep.get("error").is_none(),
        "{g:?} connect with {params} failed: {rep}"
    );
    let res = match g {
        G::V1 => rep["result"].clone(),
        G::V2 => rep["connect"].clone(),
    };
    let id = res["client"]
        .as_str()
        .unwrap_or_else(|| panic!("{g:?} connect result without client: {rep}"))
        .to_string();
    ws.client = id.clone();
    let user = params
        .get("token")
        .and_then(Value::as_str)
        .and_then(token_sub)
        .unwrap_or_default();
    C {
        ws,
        g,
        id,
        user,
        connect: res,
    }
}

/// The `sub` claim of one of our test tokens (decoded from the payload segment).
fn token_sub(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64_url_decode(payload)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub").and_then(Value::as_str).map(str::to_string)
}

fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl C {
    /// Sends a command by name and returns `Ok(result)` or `Err((code, message))`.
    pub async fn call(&mut self, cmd: &str, params: Value) -> Result<Value, CmdErr> {
        let rep = self.call_raw(cmd, params).await;
        if let Some(e) = rep.get("error") {
            return Err((
                e["code"].as_u64().unwrap_or(0),
                e["message"].as_str().unwrap_or("").to_string(),
            ));
        }
        Ok(match self.g {
            G::V1 => rep.get("result").cloned().unwrap_or(Value::Null),
            G::V2 => rep
                .get(cmd)
                .cloned()
                .unwrap_or_else(|| panic!("v2 {cmd} reply without a {cmd:?} result: {rep}")),
        })
    }

    /// Sends a command by name and returns the whole reply.
    pub async fn call_raw(&mut self, cmd: &str, mut params: Value) -> Value {
        match self.g {
            G::V1 => self.ws.call_v1(v1_method(cmd), params).await,
            G::V2 => {
                if cmd == "subscribe" {
                    if let Some(o) = params.as_object_mut() {
                        o.entry("flag").or_insert(json!(1));
                    }
                }
                self.ws.call_v2(cmd, params).await
            }
        }
    }

    /// Subscribes to a channel; `Ok(result)` or the error.
    pub async fn sub(&mut self, channel: &str) -> Result<Value, CmdErr> {
        self.call("subscribe", json!({ "channel": channel })).await
    }

    /// Subscribes and asserts success.
    pub async fn sub_ok(&mut self, channel: &str) -> Value {
        match self.sub(channel).await {
            Ok(r) => r,
            Err(e) => panic!("{:?} subscribe to {channel} failed: {e:?}", self.g),
        }
    }

    /// A subscription token for `channel` this generation accepts (v1: `client` claim; v2:
    /// `sub` claim), carrying `info` when given.
    pub fn sub_token(&self, channel: &str, info: Option<Value>) -> String {
        let mut claims = match self.g {
            G::V1 => json!({ "client": self.id, "channel": channel }),
            G::V2 => json!({ "sub": self.user, "channel": channel }),
        };
        if let Some(i) = info {
            claims["info"] = i;
        }
        jwt(&claims)
    }

    /// Subscribes with a subscription token carrying `info`; v2 also asks for join/leave when
    /// `join_leave` is set (v1 has no such request field).
    pub async fn sub_token_info(
        &mut self,
        channel: &str,
        info: Option<Value>,
        join_leave: bool,
    ) -> Result<Value, CmdErr> {
        let mut params = json!({ "channel": channel, "token": self.sub_token(channel, info) });
        if self.g == G::V2 && join_leave {
            params["join_leave"] = json!(true);
        }
        self.call("subscribe", params).await
    }

    /// Subscribes; v2 asks for join/leave pushes.
    pub async fn sub_join_leave(&mut self, channel: &str) -> Result<Value, CmdErr> {
        let mut params = json!({ "channel": channel });
        if self.g == G::V2 {
            params["join_leave"] = json!(true);
        }
        self.call("subscribe", params).await
    }

    pub async fn publish(&mut self, channel: &str, data: Value) -> Result<Value, CmdErr> {
        self.call("publish", json!({ "channel": channel, "data": data }))
            .await
    }

    /// The next push, decoded (panics after 5 s).
    pub async fn push(&mut self) -> P {
        let v = self.ws.push().await;
        parse_push(self.g, &v)
    }

    /// The next push within `d`, decoded.
    pub async fn push_within(&mut self, d: Duration) -> Option<P> {
        self.ws.push_within(d).await.map(|v| parse_push(self.g, &v))
    }

    /// The next push, which must be a publication in `channel`; returns the publication.
    pub async fn pub_in(&mut self, channel: &str) -> Value {
        match self.push().await {
            P::Pub(ch, p) if ch == channel => p,
            other => panic!(
                "{:?} expected a publication in {channel}, got {other:?}",
                self.g
            ),
        }
    }

    /// Drops pushes until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<P> {
        let mut out = Vec::new();
        while let Some(p) = self.push_within(quiet).await {
            out.push(p);
        }
        out
    }
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// `/api` (2.x) call returning the one reply line.
pub async fn api1(server: &Server, method: &str, params: Value) -> Value {
    let lines = api_v1(server, method, params).await;
    assert_eq!(lines.len(), 1, "/api {method}: {lines:?}");
    lines[0].clone()
}

/// Starts `rotor` with this complete config and expects it to exit by itself (10 s at most);
/// returns the exit status and what it wrote to stderr (stdout is discarded).
pub fn run_expect_exit(config: &Value) -> (ExitStatus, String) {
    let dir = std::env::temp_dir().join(format!(
        "rotor-channels-cfg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("-c")
        .arg(&path)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rotor");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(10);
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
    let err = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        Some(st) => (st, err),
        None => panic!("rotor kept running with config {config}; stderr:\n{err}"),
    }
}

/// Polls `f` every 20 ms until it returns `Some`, panicking with `what` after `d`.
pub async fn eventually<T, F, Fut>(d: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + d;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bare WebSocket client on a socket with a small receive buffer, for a subscriber that stops
/// reading: the server's writes to it block after a few kilobytes instead of megabytes.
pub struct TinyWs {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    pending: std::collections::VecDeque<Value>,
    pub g: G,
}

/// What [`TinyWs::next`] saw.
#[derive(Debug)]
pub enum TinyEvent {
    Value(Value),
    Closed(u16, String),
}

impl TinyWs {
    /// Connects user `user` with generation `g` over a socket whose receive buffer is `rcvbuf`
    /// bytes, and subscribes it to `channel`.
    pub async fn subscriber(
        server: &Server,
        g: G,
        user: &str,
        channel: &str,
        rcvbuf: u32,
    ) -> TinyWs {
        use futures_util::SinkExt;
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
        let stream = tokio::time::timeout(WAIT, sock.connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(server.ws_url(), stream),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        let mut t = TinyWs {
            ws,
            pending: Default::default(),
            g,
        };
        let token = conn_token(user);
        let (connect, subscribe) = match g {
            G::V1 => (
                json!({"id": 1, "params": {"token": token}}),
                json!({"id": 2, "method": 1, "params": {"channel": channel}}),
            ),
            G::V2 => (
                json!({"id": 1, "connect": {"token": token}}),
                json!({"id": 2, "subscribe": {"channel": channel, "flag": 1}}),
            ),
        };
        for (id, cmd) in [(1, connect), (2, subscribe)] {
            t.ws.send(tokio_tungstenite::tungstenite::Message::text(
                cmd.to_string(),
            ))
            .await
            .expect("send");
            match t.next(WAIT).await {
                Some(TinyEvent::Value(v)) if v["id"] == json!(id) && v.get("error").is_none() => {}
                other => panic!("{g:?} tiny client: bad reply to command {id}: {other:?}"),
            }
        }
        t
    }

    /// The next JSON value or the close, `None` after `d`.
    pub async fn next(&mut self, d: Duration) -> Option<TinyEvent> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = Instant::now() + d;
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Some(TinyEvent::Value(v));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.ws.next()).await.ok()?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    for line in t.as_str().split('\n').filter(|l| !l.trim().is_empty()) {
                        let v: Value = serde_json::from_str(line)
                            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
                        self.pending.push_back(v);
                    }
                }
                Some(Ok(Message::Close(Some(cf)))) => {
                    return Some(TinyEvent::Closed(
                        u16::from(cf.code),
                        cf.reason.as_str().to_string(),
                    ))
                }
                Some(Ok(Message::Close(None))) => {
                    return Some(TinyEvent::Closed(1005, String::new()))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(TinyEvent::Closed(1006, format!("{e}"))),
                None => return Some(TinyEvent::Closed(1006, "stream ended".into())),
            }
        }
    }
}

/// `POST /api` publishing over one kept-alive HTTP connection (for floods).
pub struct Publisher {
    client: reqwest::Client,
    url: String,
    auth: String,
}

impl Publisher {
    pub fn new(server: &Server) -> Self {
        Publisher {
            client: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            url: server.http_url("/api"),
            auth: format!("apikey {API_KEY}"),
        }
    }

    /// Publishes `data` to `channel`; asserts a successful reply.
    pub async fn publish(&self, channel: &str, data: Value) {
        let body = json!({"method": "publish", "params": {"channel": channel, "data": data}});
        let resp = self
            .client
            .post(&self.url)
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /api failed: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status == 200 && !text.contains("\"error\""),
            "/api publish to {channel}: {status} {text}"
        );
    }
}
