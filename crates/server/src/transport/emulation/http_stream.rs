//! `POST /connection/http_stream` (TRANSPORTS.md §2.2): the request body is the connection's
//! first inbound frame (centrifuge-js puts only its connect command there), the response body
//! is the connection's output as the encoding writes it: JSON replies and pushes each a
//! `\n`-terminated line (a ping is `{}\n`), Protobuf ones each varint-length-prefixed (a ping
//! is one `0x00`). A server close ends the body after a disconnect push in the same framing.
//!
//! `OPTIONS` is the preflight (204); any other method but POST is 405. The encoding is Protobuf
//! exactly when the request says `Content-Type: application/octet-stream`; the response has no
//! Content-Type.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use rotor_core::writer::CloseFrame;
use rotor_protocol::Encoding;

use super::{empty, is_protobuf, keep_alive, preflight, read_body, start_stream, BodyError};
use crate::app::SharedState;
use crate::transport::origin;
use crate::transport::stream::{disconnect_push, Framer};

pub(super) async fn handler(State(state): State<SharedState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let cors = origin::check_headers(&state, headers);
    if parts.method == Method::OPTIONS {
        return preflight(cors, headers);
    }
    if parts.method != Method::POST {
        return empty(StatusCode::METHOD_NOT_ALLOWED, cors, headers);
    }
    let limit = state.settings.transports.http_stream.max_request_body_size;
    let connect = match read_body(headers, body, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return empty(StatusCode::PAYLOAD_TOO_LARGE, cors, headers),
        Err(BodyError::Broken) => {
            // Centrifugo's answer to a body it could not read (the client is gone anyway).
            let status = StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST);
            return empty(status, cors, headers);
        }
    };
    let encoding = if is_protobuf(headers) {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let mut resp = start_stream(
        state.clone(),
        &rotor_core::transport::HTTP_STREAM,
        encoding,
        connect,
        None,
        None,
        cors,
        headers,
        PlainFramer { encoding },
    );
    keep_alive(parts.version, resp.headers_mut());
    resp
}

/// The messages as they are: the encoder's own framing is the stream's.
struct PlainFramer {
    encoding: Encoding,
}

impl Framer for PlainFramer {
    fn data(&mut self, msgs: &[Bytes], out: &mut BytesMut) {
        for m in msgs {
            out.extend_from_slice(m);
            if self.encoding == Encoding::Json && !m.is_empty() && !m.ends_with(b"\n") {
                // Every JSON message ends its line (the client splits on `\n`).
                out.extend_from_slice(b"\n");
            }
        }
    }

    fn close(&mut self, frame: &CloseFrame, out: &mut BytesMut) {
        if frame.code == 3000 {
            return; // the client went away: nobody to tell
        }
        out.extend_from_slice(&disconnect_push(self.encoding, frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_kept_whole() {
        let mut f = PlainFramer {
            encoding: Encoding::Json,
        };
        let mut out = BytesMut::new();
        f.data(
            &[
                Bytes::from_static(b"{}\n"),
                Bytes::from_static(b"{\"id\":1}"),
            ],
            &mut out,
        );
        assert_eq!(&out[..], b"{}\n{\"id\":1}\n");
        let frame = CloseFrame {
            code: 3001,
            reason: "shutdown".into(),
        };
        out.clear();
        f.close(&frame, &mut out);
        assert!(out.ends_with(b"\n"));
        assert!(std::str::from_utf8(&out)
            .is_ok_and(|s| s.contains("\"disconnect\"") && s.contains("3001")));
    }

    #[test]
    fn protobuf_as_is() {
        let mut f = PlainFramer {
            encoding: Encoding::Protobuf,
        };
        let mut out = BytesMut::new();
        f.data(&[Bytes::from_static(&[0])], &mut out);
        assert_eq!(&out[..], &[0]);
        out.clear();
        f.close(
            &CloseFrame {
                code: 3000,
                reason: String::new(),
            },
            &mut out,
        );
        assert!(out.is_empty());
    }
}
