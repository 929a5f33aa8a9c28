//! The SockJS routes under `sockjs.handler_prefix` (TRANSPORTS.md §1.4 "Routes", "Headers"):
//! the welcome text, `/info`, the iframe page, and the session routes
//! `/<server>/<session>/<transport>` for xhr, xhr_streaming, xhr_send, eventsource, htmlfile,
//! jsonp, jsonp_send and websocket. A known path with another method gets 405 with `allow`;
//! anything else 404.
//!
//! Every answer but the iframe page and the WebSocket upgrade carries the CORS headers (the
//! exact Origin echoed with credentials, none for an Origin `allowed_origins` refuses: the
//! request is still served, the browser withholds the answer). `cf_protocol_version=v1|v2` on
//! any sub-URL fixes the session's generation (another value: 400).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rotor_protocol::Generation;

use super::frames::{self, Wrap};
use super::session::{Receiver, Registry};
use crate::app::SharedState;
use crate::transport::origin::{self, OriginCheck};

const JS: &str = "application/javascript; charset=UTF-8";
const TEXT: &str = "text/plain; charset=UTF-8";
const HTML: &str = "text/html; charset=UTF-8";
const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";
const YEAR_SECS: u64 = 31_536_000;

/// The session routes' transports and the methods each answers.
const TRANSPORTS: [(&str, &str); 8] = [
    ("xhr", "OPTIONS, POST"),
    ("xhr_streaming", "OPTIONS, POST"),
    ("xhr_send", "OPTIONS, POST"),
    ("jsonp", "OPTIONS, GET"),
    ("jsonp_send", "POST"),
    ("eventsource", "GET"),
    ("htmlfile", "GET"),
    ("websocket", "GET"),
];

/// The longest session id accepted (sockjs-client sends 8 characters).
const MAX_ID: usize = 128;

/// Serves one request below the prefix; `rest` is the path after `prefix/`.
pub(crate) async fn dispatch(
    state: SharedState,
    registry: Arc<Registry>,
    rest: String,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        return only(&method, "GET", welcome);
    }
    if rest == "info" {
        return match method {
            Method::GET => info(&state, req.headers()),
            Method::OPTIONS => options(&state, req.headers(), "OPTIONS, GET"),
            _ => not_allowed("OPTIONS, GET"),
        };
    }
    if is_iframe(rest) {
        return only(&method, "GET", || iframe(&state, req.headers()));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let [server, id, transport] = parts.as_slice() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !valid_segment(server) || !valid_segment(id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some((name, allow)) = TRANSPORTS.iter().find(|(t, _)| t == transport) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !allow.split(", ").any(|m| m == method.as_str()) {
        return not_allowed(allow);
    }
    let forced = match query_param(req.uri().query(), "cf_protocol_version").as_deref() {
        None => None,
        Some("v1") => Some(Generation::V1),
        Some("v2") => Some(Generation::V2),
        Some(_) => return (StatusCode::BAD_REQUEST, "unknown cf_protocol_version").into_response(),
    };
    if method == Method::OPTIONS {
        return options(&state, req.headers(), allow);
    }
    let id = id.to_string();
    match *name {
        "websocket" => super::websocket::handler(state, req).await,
        "xhr_send" | "jsonp_send" => send(&state, &registry, &id, *name == "jsonp_send", req).await,
        _ => receive(&state, &registry, &id, name, forced, req).await,
    }
}

/// `server` and `session` path segments: non-empty, no `.`.
fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID && !s.contains('.')
}

/// `iframe.html` and `iframe-<x>.html` (`[0-9-.a-z_]` in between).
fn is_iframe(rest: &str) -> bool {
    rest.strip_prefix("iframe")
        .and_then(|r| r.strip_suffix(".html"))
        .is_some_and(|mid| {
            mid.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"-._".contains(&b))
        })
}

fn only(method: &Method, allow: &'static str, f: impl FnOnce() -> Response) -> Response {
    if method.as_str() == allow {
        f()
    } else {
        not_allowed(allow)
    }
}

/// 405 with `allow`, an empty Content-Type and no body.
fn not_allowed(allow: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(allow) {
        h.insert(header::ALLOW, v);
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(""));
    r
}

fn welcome() -> Response {
    with_type(StatusCode::OK, TEXT, Body::from("Welcome to SockJS!\n"))
}

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The CORS headers: the exact Origin with credentials, `*` without an Origin, nothing for a
/// refused one.
fn cors(state: &SharedState, request: &HeaderMap, response: &mut HeaderMap) {
    let check = origin::check_headers(state, request);
    if check == OriginCheck::Absent {
        response.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if let Some(h) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            response.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        return;
    }
    origin::add_cors(check, request, response);
}

fn no_cache(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
}

fn cache_a_year(h: &mut HeaderMap) {
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    let expires = SystemTime::now() + Duration::from_secs(YEAR_SECS);
    if let Ok(v) = HeaderValue::from_str(&http_date(expires)) {
        h.insert(header::EXPIRES, v);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("31536000"),
    );
}

/// `Set-Cookie: JSESSIONID=<incoming or dummy>; Path=/` when `sockjs.jsessionid` is on.
fn jsessionid(state: &SharedState, request: &HeaderMap, response: &mut HeaderMap) {
    if !state.settings.transports.sockjs.jsessionid {
        return;
    }
    let incoming = request
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("JSESSIONID="))
        .find(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b';'));
    let value = format!("JSESSIONID={}; Path=/", incoming.unwrap_or("dummy"));
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.insert(header::SET_COOKIE, v);
    }
}

fn info(state: &SharedState, request: &HeaderMap) -> Response {
    let body = serde_json::json!({
        "websocket": true,
        "cookie_needed": state.settings.transports.sockjs.jsessionid,
        "origins": ["*:*"],
        "entropy": rand::random::<u32>() >> 1,
    });
    let mut r = with_type(
        StatusCode::OK,
        "application/json; charset=UTF-8",
        Body::from(format!("{body}\n")),
    );
    no_cache(r.headers_mut());
    cors(state, request, r.headers_mut());
    r
}

/// `OPTIONS`: 204 with the allowed methods, cacheable for a year.
fn options(state: &SharedState, request: &HeaderMap, allow: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(allow),
    );
    cache_a_year(h);
    cors(state, request, h);
    jsessionid(state, request, h);
    r
}

/// The iframe page that loads `sockjs_url` and bootstraps sockjs-client inside it.
fn iframe_page(url: &str) -> String {
    let mut escaped = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '"' => escaped.push_str("&quot;"),
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  <script src=\"{escaped}\"></script>\n  <script>\n    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n  <p>SockJS iframe transport page.</p>\n</body>\n</html>"
    )
}

fn iframe(state: &SharedState, request: &HeaderMap) -> Response {
    let page = iframe_page(&state.settings.transports.sockjs.url);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    page.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == etag || t == "*" || t.strip_prefix("W/") == Some(etag.as_str())
        });
    let mut r = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        with_type(StatusCode::OK, HTML, Body::from(page))
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    cache_a_year(h);
    r
}

/// The first value of `key` in a query string.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A receiving request: attaches to (or opens) the session and streams what it sends.
async fn receive(
    state: &SharedState,
    registry: &Arc<Registry>,
    id: &str,
    transport: &str,
    forced: Option<Generation>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let query = req.uri().query().map(str::to_string);
    // Our own bodies do not matter; the request body is not read.
    drop(req);
    let (wrap, streaming, content_type, prelude) = match transport {
        "xhr" => (Wrap::Xhr, false, JS, None),
        "xhr_streaming" => {
            let mut p = vec![b'h'; 2048];
            p.push(b'\n');
            (Wrap::Xhr, true, JS, Some(Bytes::from(p)))
        }
        "eventsource" => (
            Wrap::EventSource,
            true,
            "text/event-stream; charset=UTF-8",
            Some(Bytes::from_static(b"\r\n")),
        ),
        "htmlfile" => {
            let cb = query_param(query.as_deref(), "c").unwrap_or_default();
            if !frames::valid_callback(&cb) {
                return callback_error(state, &headers, StatusCode::BAD_REQUEST, &cb);
            }
            let prelude = frames::htmlfile_prelude(&cb);
            (Wrap::HtmlFile, true, HTML, Some(prelude))
        }
        "jsonp" => {
            let Some(cb) = query_param(query.as_deref(), "c") else {
                return callback_error(state, &headers, StatusCode::INTERNAL_SERVER_ERROR, "");
            };
            if !frames::valid_callback(&cb) {
                return callback_error(state, &headers, StatusCode::BAD_REQUEST, &cb);
            }
            (Wrap::Jsonp(cb), false, JS, None)
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let (receiver, rx) = Receiver::new(wrap, streaming);
    if !registry
        .receive(state, id, forced, &headers, receiver)
        .await
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many sessions").into_response();
    }
    let body = futures_util::stream::unfold((prelude, rx), |(prelude, mut rx)| async move {
        if let Some(p) = prelude {
            return Some((Ok::<_, std::convert::Infallible>(p), (None, rx)));
        }
        rx.recv().await.map(|b| (Ok(b), (None, rx)))
    });
    let mut r = with_type(StatusCode::OK, content_type, Body::from_stream(body));
    let h = r.headers_mut();
    no_cache(h);
    cors(state, &headers, h);
    jsessionid(state, &headers, h);
    r
}

fn callback_error(
    state: &SharedState,
    headers: &HeaderMap,
    status: StatusCode,
    cb: &str,
) -> Response {
    let text = if cb.is_empty() {
        "\"callback\" parameter required"
    } else {
        "invalid \"callback\" parameter"
    };
    let mut r = with_type(status, TEXT, Body::from(text));
    no_cache(r.headers_mut());
    cors(state, headers, r.headers_mut());
    r
}

/// `xhr_send` (204) and `jsonp_send` (200 `ok`): client messages into the session.
async fn send(
    state: &SharedState,
    registry: &Registry,
    id: &str,
    jsonp: bool,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let limit = state
        .node
        .config()
        .client_request_max_size
        .saturating_mul(4)
        .max(1024 * 1024);
    let answer = |status: StatusCode, body: &'static str| {
        let mut r = with_type(status, TEXT, Body::from(body));
        let h = r.headers_mut();
        no_cache(h);
        cors(state, &headers, h);
        jsessionid(state, &headers, h);
        r
    };
    let body = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => return answer(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large."),
    };
    let payload: Bytes = if jsonp && is_form(&headers) {
        match form_urlencoded::parse(&body).find(|(k, _)| k == "d") {
            Some((_, d)) => Bytes::from(d.into_owned()),
            None => Bytes::new(),
        }
    } else {
        body
    };
    let messages = match frames::parse_messages(&payload) {
        Ok(m) => m,
        Err(e) => return answer(StatusCode::BAD_REQUEST, e.text()),
    };
    match registry.send(id, messages).await {
        Ok(()) if jsonp => answer(StatusCode::OK, "ok"),
        Ok(()) => {
            let mut r = answer(StatusCode::NO_CONTENT, "");
            *r.body_mut() = Body::empty();
            r
        }
        Err(_) => {
            let mut r = answer(StatusCode::NOT_FOUND, "");
            *r.body_mut() = Body::empty();
            r
        }
    }
}

fn is_form(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_name = months.get((month - 1) as usize).copied().unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn paths() {
        assert!(is_iframe("iframe.html"));
        assert!(is_iframe("iframe-1.6.1.min.html"));
        assert!(!is_iframe("iframe.htm"));
        assert!(!is_iframe("iframeX.html"));
        assert!(valid_segment("abc"));
        assert!(!valid_segment(""));
        assert!(!valid_segment("a.b"));
    }

    #[test]
    fn iframe_escapes_url() {
        let p = iframe_page("https://x/\"><script>");
        assert!(p.contains("src=\"https://x/&quot;&gt;&lt;script&gt;\""));
    }
}
