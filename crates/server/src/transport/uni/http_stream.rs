//! `uni_http_stream` (TRANSPORTS.md §3.2): a `POST` with the JSON connect request as its body
//! (bad or empty JSON → 400, over `max_request_body_size` → 413), answered by a long body of
//! bare JSON pushes, one per `\n`-terminated line, without a Content-Type. `OPTIONS` is the
//! CORS preflight (204); other methods are 405.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use rotor_core::writer::CloseFrame;
use rotor_protocol::Encoding;

use super::{answer, close_push, decode_json, for_each_push, read_body, start_stream, StreamSpec};
use crate::app::SharedState;
use crate::transport::origin;
use crate::transport::stream::Framer;

pub(super) async fn handler(State(state): State<SharedState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let cors = origin::check_headers(&state, headers);
    let settings = &state.settings.transports.uni_http_stream;
    if parts.method == Method::OPTIONS {
        let mut resp = answer(StatusCode::NO_CONTENT, Body::empty(), cors, headers);
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("300"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        return resp;
    }
    if parts.method != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, Body::empty(), cors, headers);
    }
    let connect = match read_body(headers, body, settings.max_request_body_size).await {
        Ok(b) => match decode_json(&b) {
            Some(r) => r,
            None => return answer(StatusCode::BAD_REQUEST, Body::empty(), cors, headers),
        },
        Err(e) => return answer(e.status(), Body::empty(), cors, headers),
    };
    let spec = StreamSpec {
        transport: &rotor_core::transport::UNI_HTTP_STREAM,
        prelude: None,
        content_type: None,
        transforms: settings.connect_code_to_http_response.clone(),
        framer: LineFramer,
    };
    start_stream(state.clone(), connect, spec, parts.version, cors, headers).await
}

/// One `\n`-terminated line per bare push.
struct LineFramer;

fn line(push: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(push);
    out.extend_from_slice(b"\n");
}

impl Framer for LineFramer {
    fn data(&mut self, msgs: &[Bytes], out: &mut BytesMut) {
        for_each_push(msgs, |p| line(p, out));
    }

    fn close(&mut self, frame: &CloseFrame, out: &mut BytesMut) {
        if let Some(p) = close_push(Encoding::Json, frame) {
            line(&p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_push_lines() {
        let mut out = BytesMut::new();
        LineFramer.data(
            &[Bytes::from_static(b"{\"push\":{\"channel\":\"c\"}}\n{}\n")],
            &mut out,
        );
        assert_eq!(&out[..], b"{\"channel\":\"c\"}\n{}\n");
    }
}
