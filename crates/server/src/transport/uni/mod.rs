//! The unidirectional transports (TRANSPORTS.md §3): the client sends one bare
//! `ConnectRequest` and then only reads bare `Push` objects (the connect push first, a `{}`
//! ping now and then, a disconnect push last). No commands flow from the client afterwards.
//!
//! * [`websocket`]: `uni_websocket`, its own socket loop (connect from `?cf_connect=` or the
//!   first message, WebSocket pings besides the app pings, close push then close frame).
//! * [`sse`] and [`http_stream`]: `uni_sse` and `uni_http_stream`, long responses written by
//!   the shared stream driver (`super::stream`) through their own framers.
//! * [`grpc`]: `uni_grpc`, a tonic server on its own port (`CentrifugoUniStream.Consume`).
//!
//! This module holds what the HTTP ones share: the routes, reading a bounded request body,
//! starting the stream (with `connect_code_to_http_response` when configured) and the framer
//! helper that turns the session's encoded messages into bare pushes.

mod grpc;
mod http_stream;
mod sse;
mod websocket;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use rotor_core::transport::TransportInfo;
use rotor_core::writer::{CloseFrame, WriterStep};
use rotor_protocol::{ConnectRequest, Encoding, ErrorCode};

use super::http_common::{answer, keep_alive, new_session, read_body, stream_headers};
use super::origin::{self, OriginCheck};
use super::stream::{self, Framer, Start};
use crate::app::SharedState;
use crate::config::transports::{CodeToHttp, TransportSettings};

pub(crate) use grpc::spawn_grpc;

/// The routes of uni_websocket, uni_sse and uni_http_stream (each when enabled).
pub(crate) fn routes(mut r: Router<SharedState>, t: &TransportSettings) -> Router<SharedState> {
    if t.uni_websocket.enabled {
        r = r.route(&t.uni_websocket.handler_prefix, any(websocket::handler));
    }
    if t.uni_sse.enabled {
        r = r.route(&t.uni_sse.handler_prefix, any(sse::handler));
    }
    if t.uni_http_stream.enabled {
        r = r.route(&t.uni_http_stream.handler_prefix, any(http_stream::handler));
    }
    r
}

/// How a uni HTTP stream is written.
struct StreamSpec<F> {
    transport: &'static TransportInfo,
    prelude: Option<Bytes>,
    content_type: Option<&'static str>,
    transforms: Option<Vec<CodeToHttp>>,
    framer: F,
}

/// Starts a uni HTTP stream for `req`: answers 200 with the stream headers and the body the
/// stream task writes. With `connect_code_to_http_response` the connect runs first, and a
/// refused connect becomes the configured HTTP answer (500 when no transform matches).
async fn start_stream<F: Framer>(
    state: SharedState,
    req: ConnectRequest,
    spec: StreamSpec<F>,
    version: Version,
    cors: OriginCheck<'_>,
    request: &HeaderMap,
) -> Response {
    let refused = state.draining.is_cancelled() || state.limits.admit(&state.connections).is_err();
    if refused {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            Body::empty(),
            cors,
            request,
        );
    }
    let pairs = request.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
    let mut session = new_session(&state, spec.transport, Encoding::Json, pairs);
    let start = match &spec.transforms {
        None => Start::Uni(req),
        Some(transforms) => {
            if let Err(error) = session.connect_unidirectional(req).await {
                let mut batch = Vec::new();
                let step = session.shared().queue.next(&mut batch).now_or_never();
                let frame = match step {
                    Some(WriterStep::Close(Some(f))) => Some(f),
                    _ => None,
                };
                session.close().await;
                let (status, body) = transform(transforms, error.as_ref(), frame.as_ref());
                return answer(status, body, cors, request);
            }
            Start::Ready
        }
    };
    let body = stream::spawn(state, session, start, spec.prelude, None, spec.framer);
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    stream_headers(h);
    if let Some(ct) = spec.content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    keep_alive(version, h);
    origin::add_cors(cors, request, h);
    resp
}

/// `connect_code_to_http_response`: the configured answer for the refused connect's code
/// (the connect error's own code when it failed with one, else the disconnect's), body
/// defaulting to the error's message (else the disconnect reason); no match → 500
/// `Internal Server Error`.
fn transform(
    transforms: &[CodeToHttp],
    error: Option<&ErrorCode>,
    frame: Option<&CloseFrame>,
) -> (StatusCode, String) {
    let fallback = (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error".to_string(),
    );
    let (code, reason) = match (error, frame) {
        (Some(e), _) => (e.code, e.message.to_string()),
        (None, Some(f)) => (u32::from(f.code), f.reason.clone()),
        (None, None) => return fallback,
    };
    match transforms.iter().find(|t| t.code == code) {
        Some(t) => {
            let status =
                StatusCode::from_u16(t.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if t.body.is_empty() {
                reason
            } else {
                t.body.clone()
            };
            (status, body)
        }
        None => fallback,
    }
}

/// The bare JSON pushes of the session's messages `msgs` (pings as `{}`), each passed to
/// `each`.
fn for_each_push(msgs: &[Bytes], mut each: impl FnMut(&[u8])) {
    let mut pushes = Vec::new();
    for m in msgs {
        rotor_protocol::codec::unwrap_pushes(Encoding::Json, m, &mut pushes);
    }
    for p in &pushes {
        each(p);
    }
}

/// The bare disconnect push of a server close in `encoding`; `None` for code 3000 (the client
/// went away: nobody to tell).
fn close_push(encoding: Encoding, frame: &CloseFrame) -> Option<Bytes> {
    if frame.code == 3000 {
        return None;
    }
    let msg = Bytes::from(stream::disconnect_push(encoding, frame));
    let mut pushes = Vec::new();
    rotor_protocol::codec::unwrap_pushes(encoding, &msg, &mut pushes);
    pushes.into_iter().next()
}

/// The connect request from a JSON text (`null` = `{}`); `None` when it is not one.
pub(crate) fn decode_json(bytes: &[u8]) -> Option<ConnectRequest> {
    rotor_protocol::command::decode_json_connect_request(bytes).ok()
}

/// The connect request of a `?cf_connect=<JSON>` query (uni_sse `GET`, uni_websocket):
/// `None` without that parameter, `Some(None)` when its value is not a connect request.
pub(crate) fn cf_connect(query: &str) -> Option<Option<ConnectRequest>> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "cf_connect")
        .map(|(_, v)| decode_json(v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_match_error_or_disconnect_codes() {
        let t = vec![
            CodeToHttp {
                code: 109,
                status_code: 401,
                body: String::new(),
            },
            CodeToHttp {
                code: 3501,
                status_code: 400,
                body: "bad".into(),
            },
        ];
        let expired = CloseFrame {
            code: 3005,
            reason: "connection expired".into(),
        };
        // The connect's own error code matches, its message is the default body.
        assert_eq!(
            transform(&t, Some(&ErrorCode::TOKEN_EXPIRED), Some(&expired)),
            (StatusCode::UNAUTHORIZED, "token expired".into())
        );
        // A backend's own error code too.
        let custom = ErrorCode::custom(4000, "custom".into(), false);
        let t2 = vec![CodeToHttp {
            code: 4000,
            status_code: 403,
            body: String::new(),
        }];
        assert_eq!(
            transform(&t2, Some(&custom), Some(&other_frame())),
            (StatusCode::FORBIDDEN, "custom".into())
        );
        let bad = CloseFrame {
            code: 3501,
            reason: "bad request".into(),
        };
        assert_eq!(
            transform(&t, None, Some(&bad)),
            (StatusCode::BAD_REQUEST, "bad".into())
        );
        let other = CloseFrame {
            code: 3004,
            reason: "internal".into(),
        };
        assert_eq!(
            transform(&t, None, Some(&other)).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    fn other_frame() -> CloseFrame {
        CloseFrame {
            code: 3004,
            reason: "internal server error".into(),
        }
    }

    #[test]
    fn pushes_out_of_messages() {
        let msgs = [Bytes::from_static(b"{\"push\":{\"channel\":\"a\"}}\n{}\n")];
        let mut got = Vec::new();
        for_each_push(&msgs, |p| got.push(p.to_vec()));
        assert_eq!(got, vec![b"{\"channel\":\"a\"}".to_vec(), b"{}".to_vec()]);
        let frame = CloseFrame {
            code: 3001,
            reason: "shutdown".into(),
        };
        let p = close_push(Encoding::Json, &frame).unwrap_or_default();
        assert!(p.starts_with(b"{\"disconnect\":{\"code\":3001"), "{p:?}");
        assert!(close_push(
            Encoding::Json,
            &CloseFrame {
                code: 3000,
                reason: String::new()
            }
        )
        .is_none());
    }
}
