//! The server HTTP API: `POST /api` with 2.x command envelopes (`legacy`), `POST /api/<method>`
//! with the current per-method bodies (`current`) and `POST /api/batch` (`batch`); `json`
//! writes results in each endpoint's shape. Every route checks the method first (405 for
//! anything but POST, from the router), then the API key (`X-API-Key`, `Authorization: apikey
//! <key>` with the scheme in any case, or `?api_key=`, compared in constant time; an empty
//! `http_api.key` closes the API unless `http_api.insecure`), then the body. Paths under the
//! prefix that name no OSS method (PRO methods such as `/api/connections`) are 404.

mod batch;
mod current;
pub mod json;
mod legacy;

use std::collections::HashMap;

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use rotor_core::api::{ApiError, ApiGeneration, ApiProtocol};
use rotor_protocol::api::{ApiCommand, BATCH_METHODS};

use crate::app::SharedState;
use json::{encode_result, Shape};

pub use legacy::legacy;

/// Mounts the API under `prefix`: the 2.x endpoint at the prefix itself, one route per
/// current method, `/batch`, and 404 for every other path below the prefix.
pub fn routes(mut r: Router<SharedState>, prefix: &str) -> Router<SharedState> {
    let base = prefix.trim_end_matches('/');
    r = r.route(if base.is_empty() { "/" } else { base }, post(legacy));
    for method in BATCH_METHODS {
        r = r.route(
            &format!("{base}/{method}"),
            post(move |state, query, headers, body| async move {
                current::call(method, state, query, headers, body).await
            }),
        );
    }
    r = r.route(&format!("{base}/batch"), post(batch::batch));
    if base.is_empty() {
        // API at the root: the router's own not-found answers the rest (a catch-all here
        // would take every other route's unmatched paths).
        return r;
    }
    r.route(&format!("{base}/{{*rest}}"), any(not_found))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// Equal in time independent of where the bytes differ (a length mismatch answers at once:
/// the key's length is not the secret).
pub(crate) fn key_matches(given: &[u8], key: &[u8]) -> bool {
    if given.len() != key.len() {
        return false;
    }
    let diff = given
        .iter()
        .zip(key)
        .fold(0u8, |acc, (a, b)| acc | std::hint::black_box(a ^ b));
    std::hint::black_box(diff) == 0
}

fn authorized(state: &SharedState, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    let s = &state.settings;
    if s.api_insecure {
        return true;
    }
    if s.api_key.is_empty() {
        return false;
    }
    let key = s.api_key.as_bytes();
    // Every source is compared, so the time does not tell which one carried the key.
    let from_auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
        .is_some_and(|(_, k)| key_matches(k.trim().as_bytes(), key));
    let from_header = headers
        .get("x-api-key")
        .is_some_and(|v| key_matches(v.as_bytes(), key));
    let from_query = query
        .get("api_key")
        .is_some_and(|k| key_matches(k.as_bytes(), key));
    from_auth | from_header | from_query
}

/// Runs one command in the endpoint's generation; `Ok(None)` is a success without a result
/// object (2.x).
async fn execute(
    state: &SharedState,
    cmd: ApiCommand,
    shape: Shape,
) -> Result<Option<Vec<u8>>, ApiError> {
    let generation = match shape {
        Shape::Legacy => ApiGeneration::V1,
        Shape::Current => ApiGeneration::V2,
    };
    let result = state
        .node
        .api_execute(generation, ApiProtocol::Http, cmd)
        .await?;
    Ok(encode_result(&result, shape))
}

/// The current endpoints' answer to a body that is not JSON of the method's shape.
fn bad_request() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Bad Request\n",
    )
        .into_response()
}

/// The answer to a body that could not be read: 413 over the router's body limit (2 MiB),
/// else 500 in plain text (§3.3). Handlers look at it after the key check, so an unauthorized
/// request is 401 whatever its body.
fn body_error(rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return rejection.into_response();
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Internal Server Error\n",
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A current body must be a JSON object (`null` reads as an empty one): serde would also take
/// an array as a struct, and `info` decodes no fields at all.
fn object_body(body: &[u8]) -> bool {
    use serde::de::IgnoredAny;
    serde_json::from_slice::<Option<std::collections::BTreeMap<String, IgnoredAny>>>(body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comparison() {
        assert!(key_matches(b"secret", b"secret"));
        assert!(!key_matches(b"secreT", b"secret"));
        assert!(!key_matches(b"secret1", b"secret"));
        assert!(!key_matches(b"", b"secret"));
    }

    #[test]
    fn body_shape() {
        assert!(object_body(b"{}"));
        assert!(object_body(b" {\"channel\":\"a\",\"data\":[1]} "));
        assert!(object_body(b"null"));
        assert!(!object_body(b""));
        assert!(!object_body(b"[]"));
        assert!(!object_body(b"[\"a\"]"));
        assert!(!object_body(b"{"));
        assert!(!object_body(b"{} x"));
        assert!(!object_body(b"\"x\""));
    }
}
