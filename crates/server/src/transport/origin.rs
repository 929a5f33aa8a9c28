//! `allowed_origins` for every browser-reachable transport, and the CORS answer of the HTTP
//! transports (TRANSPORTS.md §1.4 "Headers", §2.1).
//!
//! * No `allowed_origins` configured (Centrifugo 2.x leaves it unset): every Origin passes.
//!   A configuration written with nested (Centrifugo 4+) keys gets an empty list instead, as
//!   Centrifugo 4+ does (`crate::config`): browsers are refused until origins are listed.
//! * A list: the request's Origin must match one pattern (`*` matches any run of characters,
//!   case-insensitive); an empty list admits only requests without an Origin.
//! * A request without an Origin (not a browser) always passes.
//!
//! What a refusal means differs by transport, as in Centrifugo: the WebSocket upgrades (client
//! WebSocket, SockJS's WebSocket, `uni_websocket`) are answered 403; the HTTP transports
//! (SockJS XHR/streaming routes, HTTP-streaming, SSE, `/emulation`, `uni_sse`,
//! `uni_http_stream`) are served without CORS headers, so the browser withholds the answer from
//! the page (a same-origin page, whose requests carry an Origin but need no CORS, still works).
//!
//! An admitted cross-origin request gets the exact Origin echoed with credentials allowed (the
//! browsers' credentialed XHRs and fetches refuse `*`), and the requested headers echoed.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::app::AppState;

/// What the Origin check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginCheck<'a> {
    /// No Origin header: not a browser, allowed.
    Absent,
    /// A browser's Origin that `allowed_origins` admits.
    Allowed(&'a str),
    /// A browser's Origin that `allowed_origins` does not admit.
    Refused,
}

impl OriginCheck<'_> {
    pub(crate) fn is_refused(self) -> bool {
        self == OriginCheck::Refused
    }
}

/// Checks the request's `Origin` against `allowed_origins`.
pub(crate) fn check<'a>(state: &AppState, origin: Option<&'a [u8]>) -> OriginCheck<'a> {
    let origin = origin
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    if origin.is_empty() {
        return OriginCheck::Absent;
    }
    match &state.settings.allowed_origins {
        None => OriginCheck::Allowed(origin),
        Some(patterns) if origin_allowed(patterns, origin) => OriginCheck::Allowed(origin),
        Some(_) => OriginCheck::Refused,
    }
}

/// [`check`] on a header map.
pub(crate) fn check_headers<'a>(state: &AppState, headers: &'a HeaderMap) -> OriginCheck<'a> {
    check(
        state,
        headers.get(header::ORIGIN).map(HeaderValue::as_bytes),
    )
}

/// Adds the CORS headers for an admitted Origin: `Access-Control-Allow-Origin` = the Origin,
/// `Access-Control-Allow-Credentials: true`, and `Access-Control-Allow-Headers` echoing
/// `Access-Control-Request-Headers`. Nothing for an absent or refused Origin (the request is
/// still served; the browser then withholds the answer from the page).
pub(crate) fn add_cors(check: OriginCheck<'_>, request: &HeaderMap, response: &mut HeaderMap) {
    let OriginCheck::Allowed(origin) = check else {
        return;
    };
    let Ok(origin) = HeaderValue::from_str(origin) else {
        return;
    };
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    response.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    if let Some(h) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        response.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
    }
    response.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// `allowed_origins` patterns: `*` anywhere matches any run of characters.
pub(crate) fn origin_allowed(patterns: &[String], origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.split_once('*') {
            None => p == origin,
            Some((pre, post)) => {
                origin.len() >= pre.len() + post.len()
                    && origin.starts_with(pre)
                    && origin.ends_with(post)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let p = vec![
            "https://*.example.com".to_string(),
            "http://localhost:3000".to_string(),
        ];
        assert!(origin_allowed(&p, "https://app.example.com"));
        assert!(origin_allowed(&p, "http://LOCALHOST:3000"));
        assert!(!origin_allowed(&p, "https://evil.com"));
        assert!(origin_allowed(&["*".to_string()], "anything"));
        assert!(!origin_allowed(&[], "https://app.example.com"));
    }
}
