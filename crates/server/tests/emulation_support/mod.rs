//! Client side of the emulation transports for the end-to-end tests: an HTTP-streaming or SSE
//! response read chunk by chunk (JSON lines, varint-prefixed Protobuf, `data:` events), and
//! `POST /emulation` requests in JSON or Protobuf. The few Protobuf messages the tests need
//! are declared here with field numbers from the client protocol (`client.proto`).

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{conn_token, Server, WAIT};

/// A client without the harness's whole-request timeout (a stream lives longer).
pub fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(WAIT)
        .build()
        .unwrap()
}

/// How a stream frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    JsonLines,
    Protobuf,
    Sse,
}

/// One open stream response.
pub struct Stream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    framing: Framing,
    ended: bool,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
}

impl Stream {
    pub fn new(resp: reqwest::Response, framing: Framing) -> Stream {
        Stream {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            resp,
            buf: Vec::new(),
            framing,
            ended: false,
        }
    }

    /// The value of response header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Reads one more chunk; false when the body ended (or `d` passed).
    async fn fill(&mut self, d: Duration) -> bool {
        if self.ended {
            return false;
        }
        match tokio::time::timeout(d, self.resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                self.buf.extend_from_slice(&c);
                true
            }
            Ok(_) => {
                self.ended = true;
                false
            }
            Err(_) => false,
        }
    }

    /// The bytes received so far and not yet taken.
    pub fn raw(&self) -> &[u8] {
        &self.buf
    }

    /// Takes `n` raw bytes (waiting for them).
    pub async fn take_raw(&mut self, n: usize) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.fill(left).await,
                "stream ended or stalled: {:?}",
                self.buf
            );
        }
        self.buf.drain(..n).collect()
    }

    /// One whole message from the buffer, if there is one.
    fn take_message(&mut self) -> Option<Vec<u8>> {
        match self.framing {
            Framing::JsonLines => {
                let i = self.buf.iter().position(|&b| b == b'\n')?;
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                Some(line[..line.len() - 1].to_vec())
            }
            Framing::Sse => {
                let i = self.buf.windows(2).position(|w| w == b"\n\n")?;
                let event: Vec<u8> = self.buf.drain(..i + 2).collect();
                let text = String::from_utf8(event).expect("SSE event is UTF-8");
                let data = text
                    .trim_end()
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {text:?}"));
                Some(data.as_bytes().to_vec())
            }
            Framing::Protobuf => {
                let (len, used) = read_varint(&self.buf)?;
                if self.buf.len() < used + len {
                    return None;
                }
                let msg: Vec<u8> = self.buf.drain(..used + len).collect();
                Some(msg[used..].to_vec())
            }
        }
    }

    /// The next message within `d`; `None` when the stream ended or stalled.
    pub async fn message_within(&mut self, d: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(m) = self.take_message() {
                return Some(m);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.fill(left).await {
                return self.take_message();
            }
        }
    }

    /// The next JSON message (pings included).
    pub async fn json_within(&mut self, d: Duration) -> Option<Value> {
        let m = self.message_within(d).await?;
        Some(serde_json::from_slice(&m).unwrap_or_else(|e| {
            panic!(
                "stream message is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&m)
            )
        }))
    }

    /// The next JSON message that is not a ping `{}`; panics after [`WAIT`].
    pub async fn json(&mut self) -> Value {
        loop {
            let v = self
                .json_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("no message on the stream; left: {:?}", self.buf));
            if v != json!({}) {
                return v;
            }
        }
    }

    /// The next Protobuf `Reply` that is not a ping.
    pub async fn reply_pb(&mut self) -> pb::Reply {
        loop {
            let m = self
                .message_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("no message on the stream; left: {:?}", self.buf));
            let r = <pb::Reply as prost::Message>::decode(&m[..]).expect("a Protobuf Reply");
            if r != pb::Reply::default() {
                return r;
            }
        }
    }

    /// Whether the body ends within `d` (whatever else arrives meanwhile is discarded).
    pub async fn ends_within(&mut self, d: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if self.ended {
                return true;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.buf.clear();
            self.fill(left).await;
        }
    }

    /// Reads until the body ends (at most `d`); the number of bytes read, or `None` when it
    /// did not end in time.
    pub async fn drain_within(&mut self, d: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + d;
        let mut total = self.buf.len();
        self.buf.clear();
        while !self.ended {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            if self.fill(left).await {
                total += self.buf.len();
                self.buf.clear();
            }
        }
        Some(total)
    }
}

fn read_varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v as usize, i + 1));
        }
    }
    None
}

/// `POST /connection/http_stream` with a JSON connect for `user`; the stream and the connect
/// result (asserted successful).
pub async fn http_stream_json(server: &Server, user: &str) -> (Stream, Value) {
    let body = json!({"id": 1, "connect": {"token": conn_token(user)}}).to_string();
    let resp = stream_client()
        .post(server.http_url("/connection/http_stream"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("http_stream POST");
    let mut s = Stream::new(resp, Framing::JsonLines);
    assert_eq!(s.status, 200);
    let reply = s.json().await;
    assert_eq!(reply["id"], 1, "{reply}");
    let res = reply["connect"].clone();
    assert!(res.is_object(), "connect failed: {reply}");
    (s, res)
}

/// `GET /connection/sse?cf_connect=...` (form-encoded) for `user`; the stream and the connect
/// result.
pub async fn sse_get(server: &Server, user: &str) -> (Stream, Value) {
    let cmd = json!({"id": 1, "connect": {"token": conn_token(user), "name": "rust test"}});
    // Form-encoded, as URLSearchParams does it (a space becomes `+`).
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("cf_connect", &cmd.to_string())
        .finish();
    let resp = stream_client()
        .get(format!("{}?{query}", server.http_url("/connection/sse")))
        .send()
        .await
        .expect("sse GET");
    let mut s = Stream::new(resp, Framing::Sse);
    assert_eq!(s.status, 200);
    assert_eq!(s.take_raw(2).await, b"\r\n", "the SSE prelude");
    let reply = s.json().await;
    assert_eq!(reply["id"], 1, "{reply}");
    let res = reply["connect"].clone();
    assert!(res.is_object(), "connect failed: {reply}");
    (s, res)
}

/// `POST /emulation` with a JSON body; the status.
pub async fn emulate_raw(server: &Server, content_type: &str, body: Vec<u8>) -> u16 {
    stream_client()
        .post(server.http_url("/emulation"))
        .header("Content-Type", content_type)
        .body(body)
        .timeout(WAIT * 3)
        .send()
        .await
        .expect("/emulation POST")
        .status()
        .as_u16()
}

/// `POST /emulation` carrying `commands` (JSON values, joined by `\n`) for the session
/// `conn` (a connect result: its `node` and `session`) to `server`; the status.
pub async fn emulate(server: &Server, conn: &Value, commands: &[Value]) -> u16 {
    let text: Vec<String> = commands.iter().map(Value::to_string).collect();
    let body = json!({
        "node": conn["node"],
        "session": conn["session"],
        "data": text.join("\n"),
    });
    emulate_raw(server, "application/json", body.to_string().into_bytes()).await
}

/// The Protobuf messages the tests send and read.
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EmulationRequest {
        #[prost(string, tag = "1")]
        pub node: String,
        #[prost(string, tag = "2")]
        pub session: String,
        #[prost(bytes = "vec", tag = "3")]
        pub data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Command {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(message, optional, tag = "4")]
        pub connect: Option<ConnectRequest>,
        #[prost(message, optional, tag = "5")]
        pub subscribe: Option<SubscribeRequest>,
        #[prost(message, optional, tag = "7")]
        pub publish: Option<PublishRequest>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConnectRequest {
        #[prost(string, tag = "1")]
        pub token: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SubscribeRequest {
        #[prost(string, tag = "1")]
        pub channel: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PublishRequest {
        #[prost(string, tag = "1")]
        pub channel: String,
        #[prost(bytes = "vec", tag = "2")]
        pub data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Reply {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(message, optional, tag = "2")]
        pub error: Option<Error>,
        #[prost(message, optional, tag = "4")]
        pub push: Option<Push>,
        #[prost(message, optional, tag = "5")]
        pub connect: Option<ConnectResult>,
        #[prost(message, optional, tag = "6")]
        pub subscribe: Option<Empty>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        #[prost(uint32, tag = "1")]
        pub code: u32,
        #[prost(string, tag = "2")]
        pub message: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConnectResult {
        #[prost(string, tag = "1")]
        pub client: String,
        #[prost(uint32, tag = "7")]
        pub ping: u32,
        #[prost(bool, tag = "8")]
        pub pong: bool,
        #[prost(string, tag = "9")]
        pub session: String,
        #[prost(string, tag = "10")]
        pub node: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Push {
        #[prost(string, tag = "2")]
        pub channel: String,
        #[prost(message, optional, tag = "4")]
        pub r#pub: Option<Publication>,
        #[prost(message, optional, tag = "11")]
        pub disconnect: Option<Disconnect>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Publication {
        #[prost(bytes = "vec", tag = "4")]
        pub data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Disconnect {
        #[prost(uint32, tag = "1")]
        pub code: u32,
        #[prost(string, tag = "2")]
        pub reason: String,
    }

    /// `msg` varint-length-prefixed (one Protobuf frame of the client protocol).
    pub fn delimited(msg: &impl prost::Message) -> Vec<u8> {
        msg.encode_length_delimited_to_vec()
    }
}
