//! `POST /emulation` (TRANSPORTS.md §2.4): the client-to-server half of HTTP-streaming and SSE.
//! Each request carries one inbound frame for one session: `EmulationRequest{node, session,
//! data}`, Protobuf when `Content-Type: application/octet-stream`, else JSON in which `data`
//! is a JSON string holding the command text (it may hold several `\n`-separated commands).
//! `data` is decoded in the target session's own encoding, not the request's.
//!
//! The frame goes to the session through the core ([`rotor_core::Node::emulate`]): locally,
//! or over the broker's control channel to the node that holds it. The answer follows the
//! handling: 204 (also for an unknown session on a live node), 404 for a node that is not
//! alive, 500 when the node did not answer. `OPTIONS` is the preflight (204), other methods
//! 405, a body over `emulation.max_request_body_size` 413, an unparsable one 400.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use rotor_core::emulation::EmulationError;
use serde::Deserialize;

use super::{empty, is_protobuf, preflight, read_body, BodyError};
use crate::app::SharedState;
use crate::transport::origin;

/// The Protobuf body (`protocol@v0.17.0:definitions/client.proto`, `EmulationRequest`).
#[derive(Clone, PartialEq, prost::Message)]
struct EmulationRequest {
    #[prost(string, tag = "1")]
    node: String,
    #[prost(string, tag = "2")]
    session: String,
    #[prost(bytes = "bytes", tag = "3")]
    data: Bytes,
}

/// The JSON body; `data` must be a JSON string.
#[derive(Deserialize)]
struct JsonEmulationRequest {
    #[serde(default)]
    node: String,
    #[serde(default)]
    session: String,
    data: String,
}

/// The request's target and frame, or `None` when the body does not parse.
fn parse(body: &[u8], protobuf: bool) -> Option<EmulationRequest> {
    if protobuf {
        return <EmulationRequest as prost::Message>::decode(body).ok();
    }
    let r: JsonEmulationRequest = serde_json::from_slice(body).ok()?;
    Some(EmulationRequest {
        node: r.node,
        session: r.session,
        data: Bytes::from(r.data),
    })
}

/// Fuzz entry (FUZZING.md, target `emulation_body`): [`parse`] of `body`, the request's
/// `(node, session, data)` and the Protobuf encoding of what was parsed.
pub(crate) fn fuzz_parse(body: &[u8], protobuf: bool) -> Option<(String, String, Bytes, Vec<u8>)> {
    let r = parse(body, protobuf)?;
    let encoded = prost::Message::encode_to_vec(&r);
    Some((r.node, r.session, r.data, encoded))
}

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
    let limit = state.settings.transports.emulation.max_request_body_size;
    let body = match read_body(headers, body, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return empty(StatusCode::PAYLOAD_TOO_LARGE, cors, headers),
        Err(BodyError::Broken) => return empty(StatusCode::BAD_REQUEST, cors, headers),
    };
    let Some(request) = parse(&body, is_protobuf(headers)) else {
        return empty(StatusCode::BAD_REQUEST, cors, headers);
    };
    let status = match state
        .node
        .emulate(&request.node, &request.session, request.data)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(EmulationError::UnknownNode) => StatusCode::NOT_FOUND,
        Err(EmulationError::Failed) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    empty(status, cors, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_data_is_a_string() {
        let r = parse(
            br#"{"session":"S","node":"N","data":"{\"id\":2,\"subscribe\":{\"channel\":\"news\"}}"}"#,
            false,
        );
        let r = r.unwrap_or_default();
        assert_eq!((r.node.as_str(), r.session.as_str()), ("N", "S"));
        assert_eq!(&r.data[..], br#"{"id":2,"subscribe":{"channel":"news"}}"#);
        assert!(parse(br#"{"session":"S","node":"N","data":{"id":2}}"#, false).is_none());
        assert!(parse(b"not json", false).is_none());
    }

    #[test]
    fn protobuf_body() {
        let msg = EmulationRequest {
            node: "N".into(),
            session: "S".into(),
            data: Bytes::from_static(&[3, 8, 1, 0]),
        };
        let bytes = prost::Message::encode_to_vec(&msg);
        assert_eq!(parse(&bytes, true), Some(msg));
        assert!(parse(&[0xff, 0xff], true).is_none());
    }
}
