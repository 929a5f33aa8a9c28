//! `POST /api`: Centrifugo 2.x command envelopes (`{"id","method","params"}`, several separated
//! by newlines), one reply line each in the 2.x shapes. Left as 2.x had it: a bad line fails the
//! whole request with 400 and a JSON error, the reply takes the request's `Content-Type`.

use std::collections::HashMap;
use std::io::Write;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rotor_core::api::ApiError;
use rotor_protocol::api::decode_legacy_api_command;
use rotor_protocol::json::write_str;

use super::json::{write_error, Shape};
use super::{authorized, execute};
use crate::app::SharedState;

fn bad_request(message: &str) -> Response {
    let mut body = b"{\"error\":".to_vec();
    write_str(&mut body, message);
    body.push(b'}');
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `POST /api`: one or more 2.x commands, one reply line each.
pub async fn legacy(
    State(state): State<SharedState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers, &query) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let lines: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return bad_request("empty request");
    }
    let mut commands = Vec::with_capacity(lines.len());
    for line in lines {
        match decode_legacy_api_command(line) {
            Ok(c) => commands.push(c),
            Err(e) => return bad_request(&e.to_string()),
        }
    }
    let mut out = Vec::new();
    for c in commands {
        out.push(b'{');
        let mut first = true;
        if c.id != 0 {
            let _ = write!(out, "\"id\":{}", c.id);
            first = false;
        }
        let result = match c.command {
            Some(cmd) => execute(&state, cmd, Shape::Legacy).await,
            None => Err(ApiError::METHOD_NOT_FOUND),
        };
        match result {
            Ok(None) => {}
            Ok(Some(r)) => {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"result\":");
                out.extend_from_slice(&r);
            }
            Err(e) => {
                if !first {
                    out.push(b',');
                }
                write_error(&mut out, e, Shape::Legacy);
            }
        }
        out.extend_from_slice(b"}\n");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/json"));
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], out).into_response()
}
