//! `POST /api/<method>`: the method's request object as body, `{"result":{..}}` or
//! `{"error":{..}}` back with status 200 (GRPC-API.md §3.2, §3.3). In the transport error mode
//! (`http_api.error_mode: "transport"`, or the request header `X-Centrifugo-Error-Mode:
//! transport`) an API error answers an HTTP status of its own with the bare error object.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rotor_core::api::ApiError;
use rotor_protocol::api::decode_api_params;

use super::json::{error_object, write_error, Shape};
use super::{authorized, bad_request, body_error, execute, json_response, object_body};
use crate::app::SharedState;

/// The request header that turns the transport error mode on for one call.
const ERROR_MODE_HEADER: &str = "x-centrifugo-error-mode";

/// The `http_api.error_mode` value (and header value) of the transport error mode.
pub const TRANSPORT_ERROR_MODE: &str = "transport";

/// One current-API call of `method` (a route's own name).
pub async fn call(
    method: &'static str,
    State(state): State<SharedState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !authorized(&state, &headers, &query) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_error(rejection),
    };
    if !object_body(&body) {
        return bad_request();
    }
    let cmd = match decode_api_params(method, &body) {
        Ok(Some(c)) => c,
        // Routes exist only for known methods.
        Ok(None) | Err(_) => return bad_request(),
    };
    let transport_errors = state.settings.api_error_mode == TRANSPORT_ERROR_MODE
        || headers
            .get(ERROR_MODE_HEADER)
            .is_some_and(|v| v.as_bytes() == TRANSPORT_ERROR_MODE.as_bytes());
    let mut out = Vec::new();
    match execute(&state, cmd, Shape::Current).await {
        Ok(r) => {
            out.extend_from_slice(b"{\"result\":");
            out.extend_from_slice(r.as_deref().unwrap_or(b"{}"));
            out.push(b'}');
        }
        Err(e) if transport_errors => {
            error_object(&mut out, e, Shape::Current);
            return json_response(transport_status(e), out);
        }
        Err(e) => {
            out.push(b'{');
            write_error(&mut out, e, Shape::Current);
            out.push(b'}');
        }
    }
    json_response(StatusCode::OK, out)
}

/// The HTTP status of an API error in the transport error mode.
pub fn transport_status(e: ApiError) -> StatusCode {
    match e.code {
        102 | 104 => StatusCode::NOT_FOUND,
        107 | 108 => StatusCode::BAD_REQUEST,
        112 => StatusCode::RANGE_NOT_SATISFIABLE,
        113 => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_statuses() {
        let s = |code| transport_status(ApiError { code }).as_u16();
        assert_eq!(
            [
                s(100),
                s(102),
                s(104),
                s(107),
                s(108),
                s(112),
                s(113),
                s(106)
            ],
            [500, 404, 404, 400, 400, 416, 409, 500]
        );
    }
}
