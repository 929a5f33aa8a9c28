//! Parsers private to the server (`rotor_server::fuzz`): the WebSocket upgrade head, SockJS
//! payloads and frames, `/emulation` bodies and the config loader.

use rotor_server::fuzz as srv;

use crate::split_mode;

/// The first request head of a connection, parsed and checked as a WebSocket upgrade (with an
/// origin allow-list and permessage-deflate configured). Checks: an accepted upgrade was a
/// `GET` with a 28-character `Sec-WebSocket-Accept`, and the same head gets the same answer.
pub fn websocket_upgrade(data: &[u8]) {
    let first = srv::websocket_upgrade(data);
    if let Some(Ok((accept, _, _, _))) = &first {
        // httparse skips empty lines before the request line (RFC 9112 §2.2 allows it):
        // fuzzing found `\nGET ...` accepted, rightly (regressions/websocket_upgrade/).
        let line = data.trim_ascii_start();
        assert!(line.starts_with(b"GET "), "accepted a non-GET upgrade");
        assert_eq!(accept.len(), 28);
    }
    assert_eq!(first, srv::websocket_upgrade(data));
}

/// SockJS. Mode byte 0: the rest is a client payload (`xhr_send`, a WebSocket message); the
/// messages it holds, written back as a JSON array, parse to the same messages. Mode 1: the
/// rest is a message the server sends: its quoted form is a JSON string of the same text, an
/// `a[...]` frame of it parses back to it, and its EventSource escaping percent-decodes back
/// to it without a raw newline.
pub fn sockjs(data: &[u8]) {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    if mode % 2 == 0 {
        if let Some(messages) = srv::sockjs_payload(rest) {
            let again = serde_json::to_vec(&messages).expect("strings serialize");
            assert_eq!(srv::sockjs_payload(&again), Some(messages));
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let quoted = srv::sockjs_quote(text);
    let back: String = serde_json::from_str(&quoted).expect("quote() writes a JSON string");
    assert_eq!(back, text);
    let frame = srv::sockjs_array(&[text.to_string()]);
    let inner = frame.strip_prefix('a').expect("an a[...] frame");
    let back: Vec<String> = serde_json::from_str(inner).expect("array() writes JSON");
    assert_eq!(back, [text]);
    let escaped = srv::sockjs_eventsource(text);
    assert!(!escaped.contains(&b'\n') && !escaped.contains(&b'\r'));
    assert_eq!(percent_decode(&escaped), text.as_bytes());
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// A `POST /emulation` body; mode byte odd = Protobuf, even = JSON. Checks: what a Protobuf
/// body decodes to survives re-encoding, and a JSON body's `data` is text.
pub fn emulation_body(data: &[u8]) {
    let Some((mode, body)) = split_mode(data) else {
        return;
    };
    let protobuf = mode % 2 == 1;
    let Some((node, session, frame, encoded)) = srv::emulation_body(body, protobuf) else {
        return;
    };
    if protobuf {
        let again = srv::emulation_body(&encoded, true).expect("re-encoded body decodes");
        assert_eq!((again.0, again.1, again.2), (node, session, frame));
    } else {
        assert!(std::str::from_utf8(&frame).is_ok());
    }
}

/// A config file (mode byte: JSON, YAML or TOML) through the whole start-up load and
/// validation, and the token verifier it configures. Checks: loading is deterministic.
pub fn config(data: &[u8]) {
    let Some((mode, text)) = split_mode(data) else {
        return;
    };
    let ext = ["json", "yaml", "toml"][usize::from(mode % 3)];
    let first = srv::config_text(text, ext);
    assert_eq!(first, srv::config_text(text, ext));
}
