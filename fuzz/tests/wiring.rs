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

#[test]
fn grpc_messages_are_decoded_and_converted() {
    // ConnectResponse { result: ConnectResult { user: "42" } }.
    let answer = rotor_proxy::fuzz_grpc_answer(0, b"\x0a\x04\x0a\x0242", false).expect("prost");
    assert!(
        answer[1].contains("Ok(Some(Ok(ConnectGrant") && answer[1].contains("\"42\""),
        "{answer:?}"
    );
    // ConnectResponse { disconnect: { code: 4501 } }: the disconnect wins.
    let gone = rotor_proxy::fuzz_grpc_answer(0, b"\x1a\x03\x08\x95\x23", false).expect("prost");
    assert!(
        gone[0].contains("Disconnect") && gone[0].contains("4501"),
        "{gone:?}"
    );
    assert_eq!(
        rotor_proxy::fuzz_grpc_answer(0, b"\x0a\x05\x0a", false),
        None
    );
    // v6 PublishRequest { channel: "news" } (method 1) and a Batch (method 0) of two entries.
    let publish = srv::grpc_api_request(1, b"\x0a\x04news").expect("prost");
    assert_eq!(publish.commands.len(), 1);
    assert_eq!(
        publish.commands[0].as_ref().map(|c| c.method()),
        Some("publish")
    );
    assert_eq!(publish.via_batch, Some(publish.commands[0].clone()));
    let batch = srv::grpc_api_request(0, b"\x0a\x06\x22\x04\x0a\x02ch\x0a\x00").expect("prost");
    assert_eq!(batch.commands.len(), 2);
    assert!(
        batch.commands[1].is_none(),
        "an empty Command names no method"
    );
    assert_eq!(srv::grpc_api_request(1, b"\x0a\x09news"), None);
}

#[test]
fn deflate_and_uni_entries_reach_their_parsers() {
    let packed = srv::ws_deflate(b"hello hello hello", 6);
    let (out, _) = srv::ws_inflate(&packed, 100).expect("inflates");
    assert_eq!(out, b"hello hello hello");
    assert_eq!(srv::ws_inflate(&packed, 5), Err(Some(6)));
    assert_eq!(srv::ws_inflate(b"\xff\xff\xff", 100), Err(None));
    // A masked text frame "hi" (mask 0), then end of stream.
    let read = srv::ws_deflate_stream(b"\x81\x82\x00\x00\x00\x00hi", 1024, 1024);
    assert_eq!(read, vec![Ok((1, b"hi".to_vec()))]);
    assert!(srv::uni_json_connect(br#"{"token":"t"}"#).is_some_and(|r| r.token == "t"));
    assert_eq!(srv::uni_json_connect(b""), None);
    let q = srv::uni_query_connect("cf_connect=%7B%22name%22%3A%22js%22%7D");
    assert!(q.is_some_and(|r| r.is_some_and(|r| r.name == "js")));
    assert_eq!(srv::uni_query_connect("cf_connect=nope"), Some(None));
    assert_eq!(srv::uni_query_connect("a=1"), None);
    assert!(srv::uni_grpc_connect(b"\x0a\x01t").is_some_and(|r| r.token == "t"));
}

#[test]
fn redis_replies_are_read() {
    use rotor_engine_redis::fuzz as redis;
    let (publish, _) =
        redis::script_reply(0, b"*3\r\n$1\r\n5\r\n$1\r\nE\r\n$2\r\nok\r\n").expect("RESP");
    assert!(publish.expect("position").contains("offset: 5"));
    let history = b"*4\r\n$1\r\n1\r\n$1\r\nE\r\n$1\r\n1\r\n$3\r\n0{}\r\n";
    let (page, pubs) = redis::script_reply(1, history).expect("RESP");
    assert!(page.is_ok() && pubs.len() == 1 && &pubs[0].data[..] == b"{}");
    let bad = b"*4\r\n$1\r\n1\r\n$1\r\nE\r\n$1\r\n1\r\n$1\r\n9\r\n";
    assert!(redis::script_reply(1, bad).expect("RESP").0.is_err());
    assert_eq!(redis::script_reply(1, b"*4\r\n"), None);
    let (control, msg) = redis::pubsub_payload(b"j2:421:c--");
    assert!(control.is_none() && msg.is_some(), "{msg:?}");
    let (of, own, back) = redis::pubsub_channel("P", 0, b"P.client.{news}", "news");
    assert_eq!(
        (of.as_deref(), own.as_str(), back.as_deref()),
        (Some("news"), "P.client.{news}", Some("news"))
    );
}
