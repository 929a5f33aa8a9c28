//! `POST /api/batch`: `{"commands":[{"publish":{..}},..],"parallel":bool}` runs every command
//! (in order, or up to the node's parallelism at once) and answers HTTP 200
//! `{"replies":[{"publish":{..}},{"error":{..}}]}` in command order: each reply keyed by its
//! method with the result, or only `error`. A command with no known method (empty, or a PRO
//! one) is error 104, a `null` command 107; the transport error mode never applies here. The
//! call counts once as method `batch` in the API metrics, each command under its own method.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rotor_core::api::{ApiError, ApiProtocol, ApiResult};
use rotor_protocol::api::decode_batch;
use rotor_protocol::json::write_str;

use super::json::{encode_result, method_name, write_error, Shape};
use super::{authorized, bad_request, body_error, json_response, object_body};
use crate::app::SharedState;

pub async fn batch(
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
    let Ok(req) = decode_batch(&body) else {
        return bad_request();
    };
    let replies = state
        .node
        .api_batch(ApiProtocol::Http, req.commands, req.parallel)
        .await;
    json_response(StatusCode::OK, encode_replies(&replies))
}

fn encode_replies(replies: &[Result<ApiResult, ApiError>]) -> Vec<u8> {
    let mut out = b"{\"replies\":[".to_vec();
    for (i, r) in replies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        match r {
            Ok(result) => {
                write_str(&mut out, method_name(result));
                out.push(b':');
                let body = encode_result(result, Shape::Current);
                out.extend_from_slice(body.as_deref().unwrap_or(b"{}"));
            }
            Err(e) => write_error(&mut out, *e, Shape::Current),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::engine::StreamPosition;

    #[test]
    fn replies_keyed_by_method() {
        let out = encode_replies(&[
            Ok(ApiResult::Publish(StreamPosition::default())),
            Err(ApiError::METHOD_NOT_FOUND),
            Ok(ApiResult::Refresh),
        ]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"replies":[{"publish":{}},{"error":{"code":104,"message":"not found"}},{"refresh":{}}]}"#
        );
    }
}
