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
