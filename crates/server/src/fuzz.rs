//! Entry points of the fuzz targets (`fuzz/`, FUZZING.md) into parsers that are private to the
//! server: each takes untrusted bytes, runs the server's own code on them and returns a plain
//! summary the target checks. Hidden from the docs; not an API.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::config::{self, Overrides};
use crate::transport::{emulation, sockjs, websocket};

/// The outcome of an upgrade head: `Ok((accept, protobuf, subprotocol, deflate))`, `Err(status)`
/// when refused; `None` when the bytes are not a complete HTTP/1.1 request head.
pub type Upgrade = Option<Result<(String, bool, Option<&'static str>, bool), u16>>;

/// The configuration the upgrade target runs with: an origin allow-list and permessage-deflate,
/// so both checks are reached.
const UPGRADE_CONFIG: &str = r#"{"allowed_origins":["https://*.example.com","http://localhost:3000"],
"websocket_compression":true,"client_insecure":true}"#;

fn state() -> &'static AppState {
    static STATE: OnceLock<(tokio::runtime::Runtime, Arc<AppState>)> = OnceLock::new();
    let (_, state) = STATE.get_or_init(|| {
        let path = temp_path("upgrade.json");
        std::fs::write(&path, UPGRADE_CONFIG).expect("write the fuzz config");
        let cfg = config::load(Some(&path), &[], &Overrides::default()).expect("fuzz config");
        let _ = std::fs::remove_file(&path);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let node = rt
            .block_on(crate::engine::build_node(&cfg))
            .expect("memory node");
        let limits = crate::limits::Limits::new(0, 0);
        let state = Arc::new(AppState {
            node,
            limits,
            settings: cfg.server,
            connections: TaskTracker::new(),
            draining: CancellationToken::new(),
        });
        (rt, state)
    });
    state
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rotor-fuzz-{}-{name}", std::process::id()))
}

/// Parses `head` as the first request of a connection does (httparse) and runs the WebSocket
/// upgrade checks of [`websocket::handshake`] on it.
pub fn websocket_upgrade(head: &[u8]) -> Upgrade {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) if req.version == Some(1) => {}
        _ => return None,
    }
    let target = req.path.unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q);
    let is_get = req.method == Some("GET");
    Some(
        match websocket::handshake(state(), is_get, query, req.headers) {
            Ok(a) => {
                let (key, protobuf, protocol, deflate) = a.fuzz_summary();
                Ok((key.to_string(), protobuf, protocol, deflate))
            }
            Err(r) => Err(r.status.as_u16()),
        },
    )
}

/// The messages of a SockJS client payload (`xhr_send`, `jsonp_send`, a WebSocket frame).
pub fn sockjs_payload(body: &[u8]) -> Option<Vec<String>> {
    sockjs::frames::parse_messages(body).ok()
}

/// A SockJS message quoted as the server writes it (`a["..."]` element).
pub fn sockjs_quote(s: &str) -> String {
    sockjs::frames::quote(s)
}

/// A SockJS `a[...]` frame of `messages`, as the server writes it.
pub fn sockjs_array(messages: &[String]) -> String {
    sockjs::frames::array(messages.iter().map(String::as_str))
}

/// A frame escaped for the SockJS EventSource transport.
pub fn sockjs_eventsource(frame: &str) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    sockjs::frames::escape_eventsource(frame, &mut out);
    out.to_vec()
}

/// A `POST /emulation` body: `(node, session, data, protobuf re-encoding)` when it parses.
pub fn emulation_body(
    body: &[u8],
    protobuf: bool,
) -> Option<(String, String, bytes::Bytes, Vec<u8>)> {
    emulation::endpoint::fuzz_parse(body, protobuf)
}

/// Loads `text` as a config file of the format named by `ext` (`json`, `yaml`, `toml`) with
/// the whole validation of `rotor` start-up, then builds its token verifier. `Ok(warnings)`
/// when it would start.
pub fn config_text(text: &[u8], ext: &str) -> Result<usize, String> {
    let path = temp_path(&format!("config.{ext}"));
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let loaded = config::load(Some(&path), &[], &Overrides::default());
    let _ = std::fs::remove_file(&path);
    let cfg = loaded.map_err(|e| e.to_string())?;
    config::token_verifier(&cfg.node)?;
    let _ = config::missing_for_clients(&cfg);
    Ok(cfg.warnings.len())
}

// ---------------------------------------------------------------------------------------------
// permessage-deflate (target `websocket_deflate`)

/// Inflates `data` as one compressed message (the RFC 7692 trailer appended) with at most
/// `limit` bytes out: `Ok((message, capacity of its buffer))`, `Err(Some(size reached))` past
/// the limit, `Err(None)` when it is not deflate data.
pub fn ws_inflate(data: &[u8], limit: usize) -> Result<(Vec<u8>, usize), Option<usize>> {
    use websocket::deflate::{inflate, Inflate};
    match inflate(data, limit) {
        Ok(out) => {
            let cap = out.capacity();
            Ok((out, cap))
        }
        Err(Inflate::TooBig(n)) => Err(Some(n)),
        Err(Inflate::Bad) => Err(None),
    }
}

/// `data` deflated as the server sends a message (`level` 0–9).
pub fn ws_deflate(data: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::deflate::deflate(data, level, &mut out);
    out
}

/// What a client's bytes read to on a permessage-deflate connection: each item a message
/// (`Ok((opcode, payload))`: 1 text, 2 binary, 9 ping, 10 pong, 8 close) or the error that
/// ended reading (its `Display` text), in order.
pub type WsRead = Vec<Result<(u8, Vec<u8>), String>>;

/// Runs `stream` (everything the client sent after the upgrade) through the server's
/// permessage-deflate socket with `max_message` wire bytes and `max_inflated` inflated bytes
/// per message, until the stream ends or fails.
pub fn ws_deflate_stream(stream: &[u8], max_message: usize, max_inflated: usize) -> WsRead {
    use futures_util::{FutureExt, StreamExt};
    use tungstenite::Message;
    let params = websocket::deflate::Params {
        level: 1,
        min_size: 0,
        max_message,
        max_inflated,
    };
    let io = tokio::io::join(tokio::io::empty(), tokio::io::sink());
    let mut socket = websocket::deflate::DeflateSocket::new(io, stream.to_vec(), params);
    let mut out = Vec::new();
    // Everything is in memory: each poll is ready; a bound guards against a loop.
    for _ in 0..=stream.len() {
        let Some(Some(item)) = socket.next().now_or_never() else {
            break;
        };
        match item {
            Ok(Message::Text(t)) => out.push(Ok((1, t.as_bytes().to_vec()))),
            Ok(Message::Binary(b)) => out.push(Ok((2, b.to_vec()))),
            Ok(Message::Ping(b)) => out.push(Ok((9, b.to_vec()))),
            Ok(Message::Pong(b)) => out.push(Ok((10, b.to_vec()))),
            Ok(Message::Close(_)) => out.push(Ok((8, Vec::new()))),
            Ok(Message::Frame(_)) => {}
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Unidirectional connect requests (target `uni_connect`)

/// The connect request of a uni_http_stream / uni_sse `POST` body or a uni_websocket first
/// message (all JSON): `None` when the transport answers 400 / closes 3501.
pub fn uni_json_connect(body: &[u8]) -> Option<rotor_protocol::ConnectRequest> {
    crate::transport::uni::decode_json(body)
}

/// The connect request of a uni_sse `GET` / uni_websocket query string: `None` without
/// `cf_connect`, `Some(None)` when its value is refused.
pub fn uni_query_connect(query: &str) -> Option<Option<rotor_protocol::ConnectRequest>> {
    crate::transport::uni::cf_connect(query)
}

/// The connect request of a uni_grpc `Consume` body (Protobuf).
pub fn uni_grpc_connect(body: &[u8]) -> Option<rotor_protocol::ConnectRequest> {
    rotor_protocol::protobuf::decode_connect_request(body).ok()
}

// ---------------------------------------------------------------------------------------------
// gRPC server API requests (target `grpc_messages`)

/// The request messages of the gRPC server API, in mode order: `v6.*` is
/// `centrifugal.centrifugo.api.CentrifugoApi`, `v1.*` is `api.Centrifugo` (2.x).
pub const GRPC_API_METHODS: &[&str] = &[
    "v6.Batch",
    "v6.Publish",
    "v6.Broadcast",
    "v6.Subscribe",
    "v6.Unsubscribe",
    "v6.Disconnect",
    "v6.Presence",
    "v6.PresenceStats",
    "v6.History",
    "v6.HistoryRemove",
    "v6.Info",
    "v6.Rpc",
    "v6.Refresh",
    "v6.Channels",
    "v1.Publish",
    "v1.Broadcast",
    "v1.Unsubscribe",
    "v1.Disconnect",
    "v1.Presence",
    "v1.PresenceStats",
    "v1.History",
    "v1.HistoryRemove",
    "v1.Channels",
    "v1.Info",
    "v1.Rpc",
];

/// What a gRPC API request converts to.
#[derive(Debug, PartialEq)]
pub struct GrpcApiRequest {
    /// The commands the handler runs (one, or a batch's entries; `None` = an entry without a
    /// known field, answered 104).
    pub commands: Vec<Option<rotor_protocol::api::ApiCommand>>,
    /// A v6 unary request put into a batch `Command` instead: what the batch handler runs.
    pub via_batch: Option<Option<rotor_protocol::api::ApiCommand>>,
}

/// `body` decoded as the request of [`GRPC_API_METHODS`]`[method % len]` and converted as the
/// service does; `None` when prost refuses it (INVALID_ARGUMENT).
pub fn grpc_api_request(method: usize, body: &[u8]) -> Option<GrpcApiRequest> {
    use crate::api::grpc::convert as c;
    use crate::api::grpc::{v1, v6};
    use prost::Message;
    use rotor_protocol::api::ApiCommand;
    let body = bytes::Bytes::copy_from_slice(body);
    let one = |cmd: ApiCommand, batch: v6::Command| GrpcApiRequest {
        commands: vec![Some(cmd)],
        via_batch: Some(c::v6_command(batch)),
    };
    let v1 = |cmd: ApiCommand| GrpcApiRequest {
        commands: vec![Some(cmd)],
        via_batch: None,
    };
    macro_rules! v6 {
        ($msg:ident, $field:ident, $conv:expr) => {{
            let r = v6::$msg::decode(body).ok()?;
            let batch = v6::Command {
                $field: Some(r.clone()),
                ..Default::default()
            };
            one($conv(r), batch)
        }};
    }
    let presence = |r: v6::PresenceRequest| ApiCommand::Presence(c::channel(r.channel));
    let stats = |r: v6::PresenceStatsRequest| ApiCommand::PresenceStats(c::channel(r.channel));
    let remove = |r: v6::HistoryRemoveRequest| ApiCommand::HistoryRemove(c::channel(r.channel));
    Some(match GRPC_API_METHODS[method % GRPC_API_METHODS.len()] {
        "v6.Batch" => {
            let r = v6::BatchRequest::decode(body).ok()?;
            GrpcApiRequest {
                commands: r.commands.into_iter().map(c::v6_command).collect(),
                via_batch: None,
            }
        }
        "v6.Publish" => v6!(PublishRequest, publish, c::v6_publish),
        "v6.Broadcast" => v6!(BroadcastRequest, broadcast, c::v6_broadcast),
        "v6.Subscribe" => v6!(SubscribeRequest, subscribe, c::v6_subscribe),
        "v6.Unsubscribe" => v6!(UnsubscribeRequest, unsubscribe, c::v6_unsubscribe),
        "v6.Disconnect" => v6!(DisconnectRequest, disconnect, c::v6_disconnect),
        "v6.Presence" => v6!(PresenceRequest, presence, presence),
        "v6.PresenceStats" => v6!(PresenceStatsRequest, presence_stats, stats),
        "v6.History" => v6!(HistoryRequest, history, c::v6_history),
        "v6.HistoryRemove" => v6!(HistoryRemoveRequest, history_remove, remove),
        "v6.Info" => v6!(InfoRequest, info, |_| ApiCommand::Info),
        "v6.Rpc" => v6!(RpcRequest, rpc, c::v6_rpc),
        "v6.Refresh" => v6!(RefreshRequest, refresh, c::v6_refresh),
        "v6.Channels" => v6!(ChannelsRequest, channels, c::v6_channels),
        "v1.Publish" => v1(c::v1_publish(v1::PublishRequest::decode(body).ok()?)),
        "v1.Broadcast" => v1(c::v1_broadcast(v1::BroadcastRequest::decode(body).ok()?)),
        "v1.Unsubscribe" => v1(c::v1_unsubscribe(
            v1::UnsubscribeRequest::decode(body).ok()?,
        )),
        "v1.Disconnect" => v1(c::v1_disconnect(v1::DisconnectRequest::decode(body).ok()?)),
        "v1.Presence" => {
            let r = v1::PresenceRequest::decode(body).ok()?;
            v1(ApiCommand::Presence(c::channel(r.channel)))
        }
        "v1.PresenceStats" => {
            let r = v1::PresenceStatsRequest::decode(body).ok()?;
            v1(ApiCommand::PresenceStats(c::channel(r.channel)))
        }
        "v1.History" => v1(c::v1_history(
            v1::HistoryRequest::decode(body).ok()?.channel,
        )),
        "v1.HistoryRemove" => {
            let r = v1::HistoryRemoveRequest::decode(body).ok()?;
            v1(ApiCommand::HistoryRemove(c::channel(r.channel)))
        }
        "v1.Channels" => {
            v1::ChannelsRequest::decode(body).ok()?;
            v1(ApiCommand::Channels(Default::default()))
        }
        "v1.Info" => {
            v1::InfoRequest::decode(body).ok()?;
            v1(ApiCommand::Info)
        }
        _ => v1(c::v1_rpc(v1::RpcRequest::decode(body).ok()?)),
    })
}
