//! The server HTTP API: `POST /api` with 2.x command envelopes (newline-separated batches,
//! 2.x result shapes) and `POST /api/<method>` with the current per-method bodies and shapes.
//! Both accept `Authorization: apikey <key>`, `X-API-Key` and `?api_key=`.

use std::collections::HashMap;
use std::io::Write;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rotor_core::api::{ApiError, ApiGeneration, ApiProtocol, ApiResult, NodeInfo};
use rotor_core::engine::StreamPosition;
use rotor_protocol::api::{decode_api_params, decode_legacy_api_command, ApiCommand};
use rotor_protocol::json::{client_info, write_str, JsonEncoder};
use rotor_protocol::{Generation, PositionFormat, Publication};

use crate::app::SharedState;

/// Which endpoint answers: shapes and some messages differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Legacy,
    Current,
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
    let from_auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
        .map(|(_, k)| k.trim().as_bytes() == key);
    let from_header = headers.get("x-api-key").map(|v| v.as_bytes() == key);
    let from_query = query.get("api_key").map(|k| k.as_bytes() == key);
    from_auth == Some(true) || from_header == Some(true) || from_query == Some(true)
}

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

/// `POST /api/<method>`: the params object as body, `{"result":..}` or `{"error":..}` back.
pub async fn method(
    State(state): State<SharedState>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers, &query) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let cmd = match decode_api_params(&method, &body) {
        Ok(Some(c)) => c,
        Ok(None) => return (StatusCode::NOT_FOUND, "method not found").into_response(),
        Err(e) => return bad_request(&e.to_string()),
    };
    let mut out = Vec::new();
    match execute(&state, cmd, Shape::Current).await {
        Ok(r) => {
            out.extend_from_slice(b"{\"result\":");
            out.extend_from_slice(r.as_deref().unwrap_or(b"{}"));
            out.push(b'}');
        }
        Err(e) => {
            out.push(b'{');
            write_error(&mut out, e, Shape::Current);
            out.push(b'}');
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

fn write_error(out: &mut Vec<u8>, e: ApiError, shape: Shape) {
    let _ = write!(out, "\"error\":{{\"code\":{},\"message\":", e.code);
    write_str(out, e.message(shape == Shape::Legacy));
    out.push(b'}');
}

/// Runs one command; `Ok(None)` is a success without a result object.
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

/// The JSON of a result in `shape`; `None` where 2.x leaves the result out.
fn encode_result(result: &ApiResult, shape: Shape) -> Option<Vec<u8>> {
    let legacy = shape == Shape::Legacy;
    let empty = || (!legacy).then(|| b"{}".to_vec());
    match result {
        ApiResult::Publish(pos) => (!legacy).then(|| position_object(pos)),
        ApiResult::Broadcast(results) => {
            if legacy {
                return None;
            }
            let mut out = b"{\"responses\":[".to_vec();
            for (i, r) in results.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match r {
                    Ok(pos) => {
                        out.extend_from_slice(b"{\"result\":");
                        out.extend_from_slice(&position_object(pos));
                        out.push(b'}');
                    }
                    Err(e) => {
                        out.push(b'{');
                        write_error(&mut out, *e, shape);
                        out.push(b'}');
                    }
                }
            }
            out.extend_from_slice(b"]}");
            Some(out)
        }
        ApiResult::Subscribe
        | ApiResult::Unsubscribe
        | ApiResult::Disconnect
        | ApiResult::Refresh
        | ApiResult::HistoryRemove => empty(),
        ApiResult::Presence(list) => {
            let mut out = b"{\"presence\":{".to_vec();
            for (i, c) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(&mut out, &c.client);
                out.push(b':');
                client_info(&mut out, c);
            }
            out.extend_from_slice(b"}}");
            Some(out)
        }
        ApiResult::PresenceStats(s) => Some(
            format!(
                "{{\"num_clients\":{},\"num_users\":{}}}",
                s.num_clients, s.num_users
            )
            .into_bytes(),
        ),
        ApiResult::History(page) => Some(history_object(&page.publications, &page.position, shape)),
        ApiResult::Channels(list) => {
            let mut out = b"{\"channels\":".to_vec();
            if legacy {
                out.push(b'[');
                for (i, (ch, _)) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(&mut out, ch);
                }
                out.push(b']');
            } else {
                out.push(b'{');
                for (i, (ch, n)) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(&mut out, ch);
                    let _ = write!(out, ":{{\"num_clients\":{n}}}");
                }
                out.push(b'}');
            }
            out.push(b'}');
            Some(out)
        }
        ApiResult::Info(nodes) => Some(info_object(nodes, shape)),
        ApiResult::Rpc(data) => {
            let mut out = b"{\"data\":".to_vec();
            out.extend_from_slice(if data.is_empty() { b"null" } else { data });
            out.push(b'}');
            Some(out)
        }
    }
}

fn position_object(pos: &StreamPosition) -> Vec<u8> {
    if pos.offset == 0 && pos.epoch.is_empty() {
        return b"{}".to_vec();
    }
    let mut out = format!("{{\"offset\":{},\"epoch\":", pos.offset).into_bytes();
    write_str(&mut out, &pos.epoch);
    out.push(b'}');
    out
}

fn history_object(pubs: &[Publication], pos: &StreamPosition, shape: Shape) -> Vec<u8> {
    let enc = JsonEncoder::new(Generation::V2, PositionFormat::Offset);
    let mut out = b"{\"publications\":[".to_vec();
    for (i, p) in pubs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match shape {
            // 2.x API publications carry no positions.
            Shape::Legacy => {
                out.extend_from_slice(b"{\"data\":");
                out.extend_from_slice(if p.data.is_empty() { b"null" } else { &p.data });
                if let Some(info) = &p.info {
                    out.extend_from_slice(b",\"info\":");
                    client_info(&mut out, info);
                }
                out.push(b'}');
            }
            Shape::Current => enc.publication(&mut out, p),
        }
    }
    out.push(b']');
    if shape == Shape::Current {
        let _ = write!(out, ",\"offset\":{},\"epoch\":", pos.offset);
        write_str(&mut out, &pos.epoch);
    }
    out.push(b'}');
    out
}

fn info_object(nodes: &[NodeInfo], shape: Shape) -> Vec<u8> {
    let mut out = b"{\"nodes\":[".to_vec();
    for (i, info) in nodes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        node_object(&mut out, info, shape);
    }
    out.extend_from_slice(b"]}");
    out
}

fn node_object(out: &mut Vec<u8>, info: &NodeInfo, shape: Shape) {
    out.extend_from_slice(b"{\"uid\":");
    write_str(out, &info.uid);
    out.extend_from_slice(b",\"name\":");
    write_str(out, &info.name);
    out.extend_from_slice(b",\"version\":");
    write_str(out, &info.version);
    let _ = write!(
        out,
        ",\"num_clients\":{},\"num_users\":{},\"num_channels\":{},\"uptime\":{}",
        info.num_clients, info.num_users, info.num_channels, info.uptime_secs
    );
    if shape == Shape::Legacy {
        out.extend_from_slice(b",\"metrics\":{\"interval\":60,\"items\":{}}");
    }
    out.push(b'}');
}
