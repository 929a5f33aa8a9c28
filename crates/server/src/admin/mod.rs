//! The admin web UI (`admin: true`), served at `/` as Centrifugo serves its own: a login page,
//! then nodes and counters (polled), connections, channels, publish, presence and history.
//!
//! The page, script and stylesheet are embedded in the binary and need no login; every data
//! endpoint under `/admin/api/` does. Logging in with `admin_password` returns a token (an
//! HS256 JWT signed with `admin_secret`, valid for a day) as an `HttpOnly; SameSite=Strict`
//! cookie and in the body, for scripts (`Authorization: token <t>`). A wrong password is
//! answered after a delay, and failed logins are rate-limited per client address
//! ([`login_limit`]: 429 with `Retry-After`); the login body is at most [`LOGIN_BODY_MAX`]
//! bytes (413). `admin_insecure` turns all checks off.

mod login_limit;

use crate::api::http::key_matches;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rotor_core::api::ApiGeneration;
use rotor_core::metrics::{MessageType, METRICS};
use serde_json::{json, value::RawValue, Value};

use crate::app::SharedState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// How long a login lasts.
const TOKEN_TTL_SECS: i64 = 24 * 3600;
/// The answer to a wrong password waits this long (slows down guessing).
const WRONG_PASSWORD_DELAY: Duration = Duration::from_secs(1);
const COOKIE: &str = "rotor_admin";
/// History entries the UI shows.
const HISTORY_LIMIT: usize = 100;
/// The largest login body read (`{"password":"..."}`); 413 beyond.
pub(crate) const LOGIN_BODY_MAX: usize = 4096;

/// The per-address login buckets of this process.
static LOGIN_LIMIT: std::sync::LazyLock<login_limit::LoginLimit> =
    std::sync::LazyLock::new(Default::default);

/// The UI's routes; mount them only when `admin` is on.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/", get(index))
        .route("/admin/app.js", get(app_js))
        .route("/admin/style.css", get(style_css))
        .route(
            "/admin/auth",
            post(login).layer(axum::extract::DefaultBodyLimit::max(LOGIN_BODY_MAX)),
        )
        .route("/admin/logout", post(logout))
        .route("/admin/api/info", get(info))
        .route("/admin/api/connections", get(connections))
        .route("/admin/api/channels", get(channels))
        .route("/admin/api/publish", post(publish))
        .route("/admin/api/presence", get(presence))
        .route("/admin/api/history", get(history))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The key admin tokens are signed with: `admin_secret`, or a random one for this run.
fn secret(state: &SharedState) -> &str {
    static RANDOM: OnceLock<String> = OnceLock::new();
    let s = &state.settings.admin_secret;
    if !s.is_empty() {
        return s;
    }
    RANDOM.get_or_init(|| {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

fn issue_token(state: &SharedState) -> String {
    let exp = rotor_core::node::unix_now() + TOKEN_TTL_SECS;
    let claims = json!({ "sub": "admin", "exp": exp }).to_string();
    rotor_core::auth::sign_hs256(secret(state), &claims)
}

fn token_valid(state: &SharedState, token: &str) -> bool {
    let verifier = rotor_core::auth::TokenVerifier::new(secret(state));
    verifier
        .verify_connect(token, rotor_core::node::unix_now(), true)
        .is_ok_and(|c| c.user == "admin" && c.exp.is_some())
}

/// The token from `Authorization: token <t>` or the login cookie.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token"))
        .map(|(_, t)| t.trim().to_string());
    from_header.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_string())
    })
}

fn authorized(state: &SharedState, headers: &HeaderMap) -> bool {
    state.settings.admin_insecure
        || presented_token(headers).is_some_and(|t| token_valid(state, &t))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "unauthorized" })),
    )
        .into_response()
}

async fn login(
    State(state): State<SharedState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Bytes,
) -> Response {
    let attempt = if state.settings.admin_insecure {
        None
    } else {
        match LOGIN_LIMIT.try_attempt(peer.map(|p| p.0 .0)) {
            Ok(a) => Some(a),
            Err(wait) => {
                let secs = login_limit::retry_after_secs(wait);
                tracing::warn!(retry_after = secs, "admin login rate limit reached");
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, secs.to_string())],
                    Json(json!({ "error": "too many login attempts" })),
                )
                    .into_response();
            }
        }
    };
    let password = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("password").and_then(Value::as_str).map(String::from))
        .unwrap_or_default();
    let expected = &state.settings.admin_password;
    let ok = state.settings.admin_insecure
        || (!expected.is_empty() && key_matches(password.as_bytes(), expected.as_bytes()));
    if !ok {
        tracing::warn!("admin login with a wrong password");
        tokio::time::sleep(WRONG_PASSWORD_DELAY).await;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "wrong password" })),
        )
            .into_response();
    }
    if let Some(a) = attempt {
        LOGIN_LIMIT.refund(a);
    }
    let token = issue_token(&state);
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={TOKEN_TTL_SECS}{}",
        if state.settings.tls { "; Secure" } else { "" }
    );
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "token": token })),
    )
        .into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Json(json!({}))).into_response()
}

async fn info(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let node = &state.node;
    let nodes: Vec<Value> = node
        .api_info()
        .into_iter()
        .map(|n| {
            json!({
                "uid": n.uid,
                "name": n.name,
                "version": n.version,
                "num_clients": n.num_clients,
                "num_users": n.num_users,
                "num_channels": n.num_channels,
                "uptime": n.uptime_secs,
                "messages_sent": n.messages_sent,
            })
        })
        .collect();
    let m = &METRICS;
    let sent: u64 = m.transport_sent.iter().map(|c| c.get()).sum();
    let received: u64 = m.transport_received.iter().map(|c| c.get()).sum();
    Json(json!({
        "build": crate::build_info::json(),
        "this_node": node.uid(),
        "engine": state.settings.engine,
        "nodes": nodes,
        "counters": {
            "num_subscriptions": m.subscriptions.get().max(0),
            "publications": m.messages_received[MessageType::Publication as usize].get(),
            "messages_sent": sent,
            "messages_received": received,
            "broker_healthy": node.engine_healthy(),
            "draining": state.draining.is_cancelled(),
        },
    }))
    .into_response()
}

async fn connections(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let mut list = Vec::new();
    state.node.hub().for_each_client(|c| {
        list.push(json!({
            "client": c.id(),
            "user": c.user(),
            "protocol": match c.generation() {
                rotor_protocol::Generation::V1 => "v1",
                rotor_protocol::Generation::V2 => "v2",
            },
            "encoding": if c.encoding().is_binary() { "protobuf" } else { "json" },
            "channels": c.channels(),
            "queued_bytes": c.queue.queued_bytes(),
        }))
    });
    list.sort_by(|a, b| {
        let key = |v: &Value| (v["user"].to_string(), v["client"].to_string());
        key(a).cmp(&key(b))
    });
    Json(json!({ "connections": list })).into_response()
}

async fn channels(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let list: Vec<Value> = state
        .node
        .api_channels("")
        .unwrap_or_default()
        .into_iter()
        .map(|(name, n)| json!({ "channel": name, "num_clients": n }))
        .collect();
    Json(json!({ "channels": list })).into_response()
}

fn api_error(e: rotor_core::api::ApiError) -> Response {
    Json(json!({ "error": { "code": e.code, "message": e.message(false) } })).into_response()
}

async fn publish(State(state): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "bad JSON"}))).into_response();
    };
    let channel = req["channel"].as_str().unwrap_or_default();
    let data = match &req["data"] {
        Value::Null => None,
        v => Some(Bytes::from(v.to_string())),
    };
    let fields = rotor_protocol::api::PublishFields {
        data,
        ..Default::default()
    };
    match state
        .node
        .api_publish(ApiGeneration::V2, channel, &fields)
        .await
    {
        Ok(pos) => {
            Json(json!({ "result": { "offset": pos.offset, "epoch": pos.epoch } })).into_response()
        }
        Err(e) => api_error(e),
    }
}

/// Publication data as JSON when it is JSON (it always is for JSON clients), else as text.
fn data_value(data: &[u8]) -> Value {
    let text = String::from_utf8_lossy(data).into_owned();
    match RawValue::from_string(text.clone()) {
        Ok(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::String(text)),
        Err(_) => Value::String(text),
    }
}

async fn presence(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let channel = q.get("channel").map(String::as_str).unwrap_or_default();
    match state.node.api_presence(channel).await {
        Ok(list) => {
            let list: Vec<Value> = list
                .iter()
                .map(|c| {
                    json!({
                        "client": c.client,
                        "user": c.user,
                        "conn_info": c.conn_info.as_deref().map(data_value),
                        "chan_info": c.chan_info.as_deref().map(data_value),
                    })
                })
                .collect();
            Json(json!({ "result": { "presence": list } })).into_response()
        }
        Err(e) => api_error(e),
    }
}

async fn history(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let channel = q.get("channel").map(String::as_str).unwrap_or_default();
    let req = rotor_protocol::api::HistoryParams {
        channel: channel.to_string(),
        limit: HISTORY_LIMIT as i64,
        since: None,
        reverse: true,
    };
    match state.node.api_history(ApiGeneration::V2, &req).await {
        Ok(page) => {
            let pubs: Vec<Value> = page
                .publications
                .iter()
                .map(|p| {
                    json!({
                        "offset": p.offset,
                        "data": data_value(&p.data),
                        "user": p.info.as_ref().map(|i| i.user.clone()),
                    })
                })
                .collect();
            Json(json!({ "result": {
                "publications": pubs,
                "offset": page.position.offset,
                "epoch": page.position.epoch,
            }}))
            .into_response()
        }
        Err(e) => api_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_header_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; rotor_admin=xyz".parse().unwrap());
        assert_eq!(presented_token(&h).as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, "token abc".parse().unwrap());
        assert_eq!(presented_token(&h).as_deref(), Some("abc"));
        assert!(
            key_matches(b"pw", b"pw") && !key_matches(b"pw", b"px") && !key_matches(b"pw", b"pw2")
        );
    }
}
