//! The entry points the targets use reach the real parsers: a known-good input of each kind is
//! accepted and a known-bad one refused (so a target that silently tests nothing fails here).

use rotor_server::fuzz as srv;

fn head(extra: &str, method: &str) -> Vec<u8> {
    format!(
        "{method} /connection/websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

#[test]
fn websocket_upgrade_runs_the_handshake_checks() {
    let ok = srv::websocket_upgrade(&head("Sec-WebSocket-Version: 13\r\n", "GET"));
    let (accept, protobuf, _, deflate) = ok.expect("complete head").expect("accepted");
    assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert!(!protobuf && !deflate);
    let deflated = srv::websocket_upgrade(&head(
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
        "GET",
    ));
    assert!(
        deflated.expect("head").expect("accepted").3,
        "compression is configured"
    );
    assert_eq!(
        srv::websocket_upgrade(&head("Sec-WebSocket-Version: 13\r\n", "POST")),
        Some(Err(405))
    );
    assert_eq!(srv::websocket_upgrade(&head("", "GET")), Some(Err(426)));
    let evil = head(
        "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.com\r\n",
        "GET",
    );
    assert_eq!(srv::websocket_upgrade(&evil), Some(Err(403)));
    let good = head(
        "Sec-WebSocket-Version: 13\r\nOrigin: https://a.example.com\r\n",
        "GET",
    );
    assert!(matches!(srv::websocket_upgrade(&good), Some(Ok(_))));
    assert_eq!(srv::websocket_upgrade(b"GET / HTTP/1.1\r\n"), None);
}

#[test]
fn config_text_loads_and_validates() {
    assert!(srv::config_text(br#"{"token_hmac_secret_key":"s"}"#, "json").is_ok());
    assert!(srv::config_text(b"client:\n  token:\n    hmac_secret_key: s\n", "yaml").is_ok());
    assert!(srv::config_text(b"[client.token]\nhmac_secret_key = \"s\"\n", "toml").is_ok());
    assert!(srv::config_text(br#"{"engine":"nope"}"#, "json").is_err());
    assert!(srv::config_text(b"[1,2]", "json").is_err());
}

#[test]
fn sockjs_and_emulation_entries_parse() {
    assert_eq!(
        srv::sockjs_payload(br#"["a","b"]"#),
        Some(vec!["a".into(), "b".into()])
    );
    assert_eq!(srv::sockjs_payload(b"[1]"), None);
    let (node, session, data, _) =
        srv::emulation_body(br#"{"node":"n","session":"s","data":"x"}"#, false).expect("json");
    assert_eq!(
        (node.as_str(), session.as_str(), &data[..]),
        ("n", "s", &b"x"[..])
    );
    assert!(srv::emulation_body(br#"{"data":1}"#, false).is_none());
}

#[test]
fn proxy_answers_are_decoded() {
    assert!(rotor_proxy::fuzz_http_answer(br#"{"result":{"user":"u"}}"#, false) > 0);
    assert_eq!(rotor_proxy::fuzz_http_answer(b"nope", false), 0);
}
