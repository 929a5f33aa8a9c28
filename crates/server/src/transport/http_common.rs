//! What the HTTP transports (emulation streams, `/emulation`, the unidirectional streams) share:
//! a v2 session with the request headers for the backend, an answer with the CORS headers,
//! reading a request body under a size limit, and the headers of a stream response.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rotor_core::transport::TransportInfo;
use rotor_core::Session;
use rotor_protocol::{Encoding, Generation};

use super::origin::{self, OriginCheck};
use crate::app::AppState;

/// A new protocol-v2 session on `transport`; the request headers go to the backend when there
/// is one (collected only then).
pub(crate) fn new_session<'a>(
    state: &AppState,
    transport: &'static TransportInfo,
    encoding: Encoding,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Session {
    let session = state
        .node
        .new_session_on(transport, Some(Generation::V2), encoding);
    if state.node.backend().is_some() {
        session.set_transport(transport.name, headers);
    }
    session
}

/// An answer with `status` and `body`, with the CORS headers for an admitted Origin.
pub(crate) fn answer(
    status: StatusCode,
    body: impl Into<Body>,
    cors: OriginCheck<'_>,
    request: &HeaderMap,
) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    origin::add_cors(cors, request, resp.headers_mut());
    resp
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit (413).
    TooLarge,
    /// The client went away or sent a broken body.
    Broken,
}

impl BodyError {
    /// 413, or 400 for a broken body.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Broken => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads the whole body, at most `limit` bytes (a larger `Content-Length` is refused before
/// anything is read).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The cache headers of a stream response (TRANSPORTS.md §2.2; `Expire` is Centrifugo's
/// spelling).
pub(crate) fn stream_headers(h: &mut HeaderMap) {
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("expire"),
        HeaderValue::from_static("0"),
    );
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
}

/// `Connection: keep-alive` on an HTTP/1.x stream response, as Centrifugo sends it (HTTP/2 has
/// no connection headers).
pub(crate) fn keep_alive(version: Version, h: &mut HeaderMap) {
    if version == Version::HTTP_10 || version == Version::HTTP_11 {
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
}
