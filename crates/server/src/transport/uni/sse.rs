//! `uni_sse` (TRANSPORTS.md §3.2): server-sent events, one bare JSON push per `data:` event.
//! The connect request comes form-encoded in `GET ?cf_connect=` (absent → `{}`) or as a
//! `POST` body (413 over `max_request_body_size`); bad JSON is 400, other methods 405. The
//! answer is `text/event-stream; charset=utf-8` and starts with `\r\n`.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use rotor_core::writer::CloseFrame;
use rotor_protocol::{ConnectRequest, Encoding};

use super::{answer, close_push, decode_json, for_each_push, read_body, start_stream, StreamSpec};
use crate::app::SharedState;
use crate::transport::origin;
use crate::transport::stream::Framer;

pub(super) async fn handler(State(state): State<SharedState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let cors = origin::check_headers(&state, headers);
    let settings = &state.settings.transports.uni_sse;
    let bad = || {
        answer(
            StatusCode::BAD_REQUEST,
            axum::body::Body::empty(),
            cors,
            headers,
        )
    };
    let connect = if parts.method == Method::GET {
        match super::cf_connect(parts.uri.query().unwrap_or("")) {
            None => ConnectRequest::default(),
            Some(Some(r)) => r,
            Some(None) => return bad(),
        }
    } else if parts.method == Method::POST {
        match read_body(headers, body, settings.max_request_body_size).await {
            Ok(b) => match decode_json(&b) {
                Some(r) => r,
                None => return bad(),
            },
            Err(e) => return answer(e.status(), axum::body::Body::empty(), cors, headers),
        }
    } else {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            axum::body::Body::empty(),
            cors,
            headers,
        );
    };
    let spec = StreamSpec {
        transport: &rotor_core::transport::UNI_SSE,
        prelude: Some(Bytes::from_static(b"\r\n")),
        content_type: Some("text/event-stream; charset=utf-8"),
        transforms: settings.connect_code_to_http_response.clone(),
        framer: EventFramer,
    };
    start_stream(state.clone(), connect, spec, parts.version, cors, headers).await
}

/// One `data:` event per bare push.
struct EventFramer;

fn event(push: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(push);
    out.extend_from_slice(b"\n\n");
}

impl Framer for EventFramer {
    fn data(&mut self, msgs: &[Bytes], out: &mut BytesMut) {
        for_each_push(msgs, |p| event(p, out));
    }

    fn close(&mut self, frame: &CloseFrame, out: &mut BytesMut) {
        if let Some(p) = close_push(Encoding::Json, frame) {
            event(&p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_push_events() {
        let mut out = BytesMut::new();
        EventFramer.data(
            &[Bytes::from_static(
                b"{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":1}}}\n{}\n{\"id\":1,\"result\":{}}\n",
            )],
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"data: {\"channel\":\"c\",\"pub\":{\"data\":1}}\n\ndata: {}\n\n"
        );
    }
}
