//! The transport keys of every generation: 2.x `sockjs_*`, 5.x flat, 6.x sections, env.

use super::*;

#[test]
fn sockjs_keys_of_centrifugo_2() {
    let c = ok(
        r#"{"sockjs_handler_prefix": "/sock/", "sockjs_url": "https://x/sockjs.js",
        "sockjs_heartbeat_delay": 7}"#,
    );
    let s = &c.server.transports.sockjs;
    assert!(s.enabled);
    assert_eq!(s.handler_prefix, "/sock");
    assert_eq!(s.url, "https://x/sockjs.js");
    assert_eq!(s.heartbeat_delay, secs(7));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = ok(r#"{"sockjs_disable": true}"#);
    assert!(!c.server.transports.sockjs.enabled);
}

#[test]
fn modern_transports_are_off_by_default() {
    let t = run(None, &[]).unwrap().server.transports;
    assert!(t.sockjs.enabled);
    assert!(!t.http_stream.enabled && !t.sse.enabled);
    assert!(!t.uni_websocket.enabled && !t.uni_sse.enabled && !t.uni_http_stream.enabled);
    assert!(!t.uni_grpc.enabled);
    assert_eq!(t.sse.handler_prefix, "/connection/sse");
    assert_eq!(t.http_stream.handler_prefix, "/connection/http_stream");
    assert_eq!(t.emulation.handler_prefix, "/emulation");
    assert_eq!(t.uni_grpc.port, 11000);
}

#[test]
fn centrifugo_6_sections() {
    let c = ok(r#"{
        "http_stream": {"enabled": true, "max_request_body_size": 1000},
        "sse": {"enabled": true, "handler_prefix": "/events"},
        "emulation": {"handler_prefix": "/emu", "max_request_body_size": 2000},
        "uni_websocket": {"enabled": true, "message_size_limit": 3000, "join_push_messages": true,
            "disable_closing_handshake": true, "write_timeout": "2s"},
        "uni_sse": {"enabled": true, "connect_code_to_http_response": {"enabled": true,
            "transforms": [{"code": 3500, "to": {"status_code": 401, "body": "no"}}]}},
        "uni_http_stream": {"enabled": true, "handler_prefix": "/uni"},
        "uni_grpc": {"enabled": true, "port": 12000, "max_receive_message_size": 4000}
    }"#);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let t = &c.server.transports;
    assert!(t.http_stream.enabled && t.sse.enabled);
    assert_eq!(t.http_stream.max_request_body_size, 1000);
    assert_eq!(t.sse.handler_prefix, "/events");
    assert_eq!(t.emulation.handler_prefix, "/emu");
    assert_eq!(t.emulation.max_request_body_size, 2000);
    let w = &t.uni_websocket;
    assert!(w.enabled && w.join_push_messages && w.disable_closing_handshake);
    assert_eq!((w.message_size_limit, w.write_timeout), (3000, secs(2)));
    let transforms = t.uni_sse.connect_code_to_http_response.as_ref().unwrap();
    assert_eq!(
        transforms,
        &vec![crate::config::transports::CodeToHttp {
            code: 3500,
            status_code: 401,
            body: "no".into()
        }]
    );
    assert_eq!(t.uni_http_stream.handler_prefix, "/uni");
    assert!(t.uni_http_stream.connect_code_to_http_response.is_none());
    assert_eq!(
        (t.uni_grpc.port, t.uni_grpc.max_receive_message_size),
        (12000, 4000)
    );
}

#[test]
fn centrifugo_5_flat_keys_and_env() {
    let c = ok(
        r#"{"http_stream": true, "sse": true, "sse_handler_prefix": "/s",
        "uni_sse": true, "uni_grpc": true, "uni_grpc_port": "11500"}"#,
    );
    let t = &c.server.transports;
    assert!(t.http_stream.enabled && t.sse.enabled && t.uni_sse.enabled && t.uni_grpc.enabled);
    assert_eq!(
        (t.sse.handler_prefix.as_str(), t.uni_grpc.port),
        ("/s", 11500)
    );
    let c = run(
        None,
        &[
            ("CENTRIFUGO_HTTP_STREAM_ENABLED", "true"),
            ("CENTRIFUGO_UNI_WEBSOCKET", "true"),
            ("CENTRIFUGO_UNI_HTTP_STREAM_HANDLER_PREFIX", "/u"),
            ("CENTRIFUGO_SOCKJS_DISABLE", "1"),
        ],
    )
    .unwrap();
    let t = &c.server.transports;
    assert!(t.http_stream.enabled && t.uni_websocket.enabled && !t.sockjs.enabled);
    assert_eq!(t.uni_http_stream.handler_prefix, "/u");
}

#[test]
fn transport_errors_name_the_key() {
    has(&fail(r#"{"uni_grpc": {"port": "x"}}"#), "uni_grpc");
    has(
        &fail(r#"{"sse": {"enabled": true, "handler_prefix": "/connection/websocket"}}"#),
        "already used",
    );
    has(
        &fail(r#"{"uni_sse": {"connect_code_to_http_response": {"transforms": [{"code": 1}]}}}"#),
        "connect_code_to_http_response",
    );
    has(
        &fail(r#"{"uni_grpc": {"enabled": true, "tls": {"enabled": true}}}"#),
        "uni_grpc_tls_cert",
    );
    // Still unsupported parts warn.
    let c =
        ok(r#"{"uni_websocket": {"read_buffer_size": 1024}, "webtransport": {"enabled": true}}"#);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
}
