//! `/connection/sse` (TRANSPORTS.md §2.3): Server-sent events with bidirectional emulation,
//! JSON only. The connect command comes form-encoded in `GET ?cf_connect=` (missing or empty →
//! 400) or as a `POST` body (413 over `sse.max_request_body_size`); every other method,
//! OPTIONS included, is 405. The answer is `text/event-stream; charset=utf-8`, starts with
//! `\r\n` (written before the connect runs), then carries each JSON message as its own
//! `data: <json>\n\n` event; a server close ends it after a disconnect push event.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use rotor_core::writer::CloseFrame;
use rotor_protocol::Encoding;

use super::{empty, keep_alive, read_body, start_stream, BodyError};
use crate::app::SharedState;
use crate::transport::origin;
use crate::transport::stream::{disconnect_push, Framer};

pub(super) async fn handler(State(state): State<SharedState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let cors = origin::check_headers(&state, headers);
    let connect = if parts.method == Method::GET {
        let query = parts.uri.query().unwrap_or("");
        let value = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "cf_connect")
            .map(|(_, v)| v.into_owned());
        match value {
            Some(v) if !v.is_empty() => Bytes::from(v),
            _ => return empty(StatusCode::BAD_REQUEST, cors, headers),
        }
    } else if parts.method == Method::POST {
        let limit = state.settings.transports.sse.max_request_body_size;
        match read_body(headers, body, limit).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return empty(StatusCode::PAYLOAD_TOO_LARGE, cors, headers),
            Err(BodyError::Broken) => return empty(StatusCode::BAD_REQUEST, cors, headers),
        }
    } else {
        return empty(StatusCode::METHOD_NOT_ALLOWED, cors, headers);
    };
    let mut resp = start_stream(
        state.clone(),
        &rotor_core::transport::SSE,
        Encoding::Json,
        connect,
        Some(Bytes::from_static(b"\r\n")),
        Some("text/event-stream; charset=utf-8"),
        cors,
        headers,
        EventFramer,
    );
    keep_alive(parts.version, resp.headers_mut());
    resp
}

/// One `data:` event per JSON message.
struct EventFramer;

fn events(msgs: &[u8], out: &mut BytesMut) {
    // JSON escapes line breaks inside strings, so each line is one whole message.
    for line in msgs.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\n\n");
    }
}

impl Framer for EventFramer {
    fn data(&mut self, msgs: &[Bytes], out: &mut BytesMut) {
        for m in msgs {
            events(m, out);
        }
    }

    fn close(&mut self, frame: &CloseFrame, out: &mut BytesMut) {
        if frame.code == 3000 {
            return; // the client went away: nobody to tell
        }
        events(&disconnect_push(Encoding::Json, frame), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_message() {
        let mut out = BytesMut::new();
        EventFramer.data(
            &[
                Bytes::from_static(b"{\"id\":1}\n{}\n"),
                Bytes::from_static(b"{\"id\":2}\n"),
            ],
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"data: {\"id\":1}\n\ndata: {}\n\ndata: {\"id\":2}\n\n"
        );
        out.clear();
        EventFramer.close(
            &CloseFrame {
                code: 3012,
                reason: "no pong".into(),
            },
            &mut out,
        );
        assert!(out.starts_with(b"data: {") && out.ends_with(b"}\n\n"));
    }
}
