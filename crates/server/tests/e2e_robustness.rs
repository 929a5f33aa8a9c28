//! Bad input never crashes and never hangs the server: malformed and empty frames, invalid
//! UTF-8, binary garbage, oversized frames, huge and deeply nested tokens, floods of commands,
//! slow consumers, abrupt disconnects, bad config files. After each abuse the process must still
//! run and serve a fresh client. Also the self-tests of the harness's own SHA-2/HMAC/base64.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// harness self-tests (the JWTs every other test relies on)
// ---------------------------------------------------------------------------------------------

#[test]
fn harness_sha2_matches_fips_180_vectors() {
    let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(
        hex(&sha(Sha::S256, b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&sha(Sha::S256, two_blocks)),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    assert_eq!(
        hex(&sha(Sha::S256, &[b'a'; 1000])),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
    assert_eq!(
        hex(&sha(Sha::S384, b"abc")),
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
    );
    assert_eq!(
        hex(&sha(Sha::S512, b"abc")),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
    assert_eq!(
        hex(&sha(Sha::S512, &[b'a'; 1000])),
        "67ba5535a46e3f86dbfbed8cbbaf0125c76ed549ff8b0b9e03e0c88cf90fa634fa7b12b47d77b694de488ace8d9a65967dc96df599727d3292a8d9d447709c97"
    );
}

#[test]
fn harness_hmac_matches_rfc_4231_vectors() {
    let key = [0x0bu8; 20];
    assert_eq!(
        hex(&hmac(Sha::S256, &key, b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(
        hex(&hmac(Sha::S384, &key, b"Hi There")),
        "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"
    );
    assert_eq!(
        hex(&hmac(Sha::S512, &key, b"Hi There")),
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"
    );
    // test case 6: a key longer than the block is hashed first
    let long_key = [0xaau8; 131];
    let msg = b"Test Using Larger Than Block-Size Key - Hash Key First";
    assert_eq!(
        hex(&hmac(Sha::S256, &long_key, msg)),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    assert_eq!(
        hex(&hmac(Sha::S512, &long_key, msg)),
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"
    );
}

#[test]
fn harness_base64_and_jwt_match_known_values() {
    assert_eq!(base64_std(b"f"), "Zg==");
    assert_eq!(base64_std(b"fo"), "Zm8=");
    assert_eq!(base64_std(b"foob"), "Zm9vYg==");
    assert_eq!(base64_std(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64_url(&[0xff, 0xfe, 0xfd, 0x00, b'a']), "__79AGE");
    let token = jwt_raw(
        "HS256",
        b"your-256-bit-secret",
        r#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#,
    );
    assert_eq!(
        token,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    );
    assert!(is_uuid_v4("9a3c1f0e-5b7d-4c2a-8e6f-0123456789ab"));
    assert!(!is_uuid_v4("9a3c1f0e-5b7d-1c2a-8e6f-0123456789ab"));
    assert!(!is_uuid_v4("9a3c1f0e5b7d4c2a8e6f0123456789ab"));
}

// ---------------------------------------------------------------------------------------------
// malformed frames
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_first_frame_closes_3003() {
    let server = Server::start(json!({})).await;
    for first in [
        "{not json",
        "}{",
        "[1,2]",
        "\"text\"",
        "{\"id\":1,\"params\":{\"token\":",
    ] {
        let mut ws = Ws::open(&server.ws_url()).await;
        ws.send_text(first).await;
        let (c, r) = ws.expect_close().await;
        assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST), "after {first:?}");
    }
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn malformed_json_after_v1_connect_closes_3003() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_text("{\"id\":2,\"method\":1,\"params\":").await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn bad_line_inside_a_multi_command_frame_closes_3003() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_text("{\"id\":2,\"method\":7}\n{oops\n{\"id\":3,\"method\":7}")
        .await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn empty_frame_closes_3003() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text("").await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST), "empty first frame");
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_text("").await;
    let (c, r) = ws.expect_close().await;
    assert_eq!(
        (c, r.as_str()),
        (3003, V1_BAD_REQUEST),
        "empty frame after connect"
    );
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn empty_frame_after_v2_connect_closes_3501() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    ws.send_text("").await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3501, "bad request"));
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn invalid_utf8_text_frame_is_closed_with_a_code_and_server_keeps_serving() {
    let server = Server::start(json!({})).await;
    let (mut bystander, _) = server.v1_client("bystander").await;
    assert_eq!(bystander.subscribe_v1("calm").await["result"], json!({}));
    let mut ws = Ws::open(&server.ws_url()).await;
    let mut bad = br#"{"id":1,"#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0x80]);
    bad.extend_from_slice(b"}");
    ws.send_raw_text_frame(bad).await;
    let (c, r) = ws.expect_close().await;
    assert!(
        c == 3003 || c == 1007,
        "a close with a code (3003 expected, 1007 tolerated): {c} {r:?}"
    );
    if c == 3003 {
        assert_eq!(r, V1_BAD_REQUEST);
    }
    // invalid UTF-8 after connect, too
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_raw_text_frame(vec![0xc0, 0xaf, b'{', 0xed, 0xa0, 0x80])
        .await;
    let (c, _) = ws.expect_close().await;
    assert!(c == 3003 || c == 1007, "after connect: {c}");
    api_publish(&server, "calm", json!({"still": "here"})).await;
    assert_eq!(
        bystander.push().await["result"]["data"]["data"],
        json!({"still": "here"})
    );
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn binary_garbage_frame_closes_3003() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_binary(vec![0x00, 0xff, 0x13, 0x37, 0x80, 0x81, 0x82, 0x7f, 0x01])
        .await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_binary((0..=255u8).rev().cycle().take(3000).collect())
        .await;
    let (c, _) = ws.expect_close().await;
    assert_eq!(c, 3003, "binary garbage after connect");
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn silent_connection_without_protocol_hint_is_closed_stale() {
    // No command, no query: the generation is unknown; either table's stale close is accepted.
    let server = Server::start(json!({"client_stale_close_delay": 1})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let (c, r) = ws.close_within(Duration::from_secs(6)).await;
    assert!(
        (c, r.as_str()) == (3007, V1_STALE) || (c, r.as_str()) == (3502, "stale"),
        "stale close expected: {c} {r:?}"
    );
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn plain_http_request_on_websocket_path_is_refused_and_server_survives() {
    let server = Server::start(json!({})).await;
    let resp = http()
        .get(server.http_url("/connection/websocket"))
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    assert!(
        (400..500).contains(&status),
        "a client error status: {status}"
    );
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn abrupt_disconnects_mid_handshake_and_mid_frame_do_not_hurt_the_server() {
    let server = Server::start(json!({})).await;
    for i in 0..50 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("tcp connect");
        let half = if i % 2 == 0 {
            "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websock".to_string()
        } else {
            "\u{0}\u{1}garbage\r\n\r\n".to_string()
        };
        let _ = s.write_all(half.as_bytes());
        drop(s);
    }
    for _ in 0..50 {
        let (ws, _) = server.v1_client("alice").await;
        drop(ws); // TCP dropped without a close frame
    }
    server.assert_serves_fresh_client().await;
}

// ---------------------------------------------------------------------------------------------
// sizes and nesting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_frame_closes_1009() {
    let server = Server::start(json!({"client_request_max_size": 4096})).await;
    let big = format!(r#"{{"id":1,"params":{{"token":"{}"}}}}"#, "a".repeat(5000));
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(&big).await;
    let (c, _) = ws.expect_close().await;
    assert_eq!(c, 1009, "oversized first frame");
    let (mut ws, _) = server.v1_client("alice").await;
    let big = format!(
        r#"{{"id":2,"method":1,"params":{{"channel":"{}"}}}}"#,
        "c".repeat(6000)
    );
    let _ = ws
        .try_send(tokio_tungstenite::tungstenite::Message::text(big))
        .await;
    let (c, _) = ws.expect_close().await;
    assert_eq!(c, 1009, "oversized frame after connect");
    server.assert_serves_fresh_client().await;
}

/// A connect frame of about `target` bytes whose token carries `info` padded to fit.
fn connect_frame_near(target: usize, valid: bool) -> String {
    let mut pad = target * 3 / 4;
    loop {
        let claims = json!({"sub": "big", "info": {"pad": "p".repeat(pad)}});
        let token = if valid {
            jwt(&claims)
        } else {
            jwt_with("HS256", b"wrong", &claims)
        };
        let frame = json!({"id": 1, "params": {"token": token}}).to_string();
        if frame.len() < target {
            return frame;
        }
        pad -= (frame.len() - target) / 2 + 1;
    }
}

#[tokio::test]
async fn token_just_under_the_size_limit_is_answered() {
    let server = Server::start(json!({"client_request_max_size": 4096})).await;
    let frame = connect_frame_near(4090, true);
    assert!(
        frame.len() > 4000 && frame.len() < 4096,
        "frame of {} bytes",
        frame.len()
    );
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(&frame).await;
    let rep = ws.reply(1).await;
    assert!(
        is_uuid_v4(rep["result"]["client"].as_str().unwrap_or("")),
        "a normal connect reply: {rep}"
    );
    // the same size with a bad signature: the ordinary invalid-token close, nothing worse
    let frame = connect_frame_near(4090, false);
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(&frame).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3002, V1_INVALID_TOKEN));
    server.assert_serves_fresh_client().await;
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deeply_nested_info_in_connection_token_closes_3002_and_server_survives() {
    let server = Server::start(json!({"client_request_max_size": 1_000_000})).await;
    let claims = format!(r#"{{"sub":"deep","info":{}}}"#, nested(100_000));
    let token = jwt_raw("HS256", SECRET.as_bytes(), &claims);
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(&format!(r#"{{"id":1,"params":{{"token":"{token}"}}}}"#))
        .await;
    let (c, r) = ws.close_within(Duration::from_secs(10)).await;
    assert_eq!((c, r.as_str()), (3002, V1_INVALID_TOKEN), "v1");
    server.assert_alive();
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(&format!(r#"{{"id":1,"connect":{{"token":"{token}"}}}}"#))
        .await;
    let (c, r) = ws.close_within(Duration::from_secs(10)).await;
    assert_eq!((c, r.as_str()), (3500, "invalid token"), "v2");
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn deeply_nested_info_in_subscription_token_gets_103_and_server_survives() {
    let server = Server::start(json!({"client_request_max_size": 1_000_000})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let claims = format!(
        r#"{{"client":"{client}","channel":"$deep","info":{}}}"#,
        nested(100_000)
    );
    let token = jwt_raw("HS256", SECRET.as_bytes(), &claims);
    let rep = ws.subscribe_v1_token("$deep", &token).await;
    assert_eq!(
        rep,
        json!({"id": 2, "error": {"code": 103, "message": "permission denied"}})
    );
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn deeply_nested_command_json_does_not_crash_the_server() {
    let server =
        Server::start(json!({"client_request_max_size": 1_000_000, "publish": true})).await;
    // before connect
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(&format!(
        r#"{{"id":1,"params":{{"data":{}}}}}"#,
        nested(100_000)
    ))
    .await;
    let (c, _) = ws.close_within(Duration::from_secs(10)).await;
    assert!(c >= 1000, "closed with a code: {c}");
    server.assert_alive();
    // as publication data after connect: answered or closed, never a crash
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_text(&format!(
        r#"{{"id":2,"method":3,"params":{{"channel":"x","data":{}}}}}"#,
        nested(100_000)
    ))
    .await;
    match ws.next_event_within(Duration::from_secs(10)).await {
        Some(Event::Value(v)) => assert_eq!(v["id"], 2, "a reply to the command: {v}"),
        Some(Event::Closed(c, r)) => assert!(c >= 1000, "closed with a code: {c} {r}"),
        None => panic!("neither a reply nor a close within 10 s"),
    }
    server.assert_serves_fresh_client().await;
}

// ---------------------------------------------------------------------------------------------
// floods and slow consumers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn flood_of_10000_commands_is_answered_or_closed_and_others_still_served() {
    let server = Server::start(json!({})).await;
    let (mut bystander, _) = server.v1_client("bystander").await;
    assert_eq!(bystander.subscribe_v1("calm").await["result"], json!({}));
    let (mut ws, _) = server.v1_client("flooder").await;
    let mut id = 2u64;
    let mut sent_all = true;
    for _frame in 0..100 {
        let lines: Vec<String> = (0..100)
            .map(|i| {
                let this = id + i;
                if i % 10 == 9 {
                    format!(r#"{{"id":{this},"method":5,"params":{{"channel":"c{this}"}}}}"#)
                } else {
                    format!(r#"{{"id":{this},"method":7}}"#)
                }
            })
            .collect();
        id += 100;
        if ws
            .try_send(tokio_tungstenite::tungstenite::Message::text(
                lines.join("\n"),
            ))
            .await
            .is_err()
        {
            sent_all = false;
            break;
        }
    }
    let mut replies = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed = None;
    while replies < 10_000 && Instant::now() < deadline {
        match ws.next_event_within(Duration::from_secs(5)).await {
            Some(Event::Value(v)) => {
                assert!(v.get("id").is_some(), "only replies expected: {v}");
                replies += 1;
            }
            Some(Event::Closed(c, r)) => {
                closed = Some((c, r));
                break;
            }
            None => break,
        }
    }
    match &closed {
        Some((c, r)) => assert!(*c >= 1000, "closed with a code: {c} {r}"),
        None => assert!(
            sent_all && replies == 10_000,
            "all 10,000 commands answered: {replies}"
        ),
    }
    // the rest of the server is fine
    api_publish(&server, "calm", json!({"after": "flood"})).await;
    assert_eq!(
        bystander.push().await["result"]["data"]["data"],
        json!({"after": "flood"})
    );
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn flood_of_subscribes_beyond_channel_limit_gets_106_without_harm() {
    let server = Server::start(json!({"client_channel_limit": 10})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    let lines: Vec<Value> = (0..500)
        .map(|i| json!({"id": i + 2, "method": 1, "params": {"channel": format!("ch{i}")}}))
        .collect();
    ws.send_lines(&lines).await;
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..500u64 {
        let rep = ws.reply(i + 2).await;
        if rep.get("result").is_some() {
            ok += 1;
        } else {
            assert_eq!(rep["error"]["code"], 106, "{rep}");
            limited += 1;
        }
    }
    assert_eq!((ok, limited), (10, 490));
    server.assert_serves_fresh_client().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_closed_3008_without_delaying_others() {
    // 1 MB queue per connection; 640 publications of 32 KB (~20 MB) go to two subscribers. The
    // fast one reads all the time (the publisher never gets more than 20 publications ahead of
    // it, so its queue stays far below 1 MB); the slow one reads nothing, so once its socket
    // buffers (a few MB) are full its queue overflows.
    // A long write timeout: the slow client reads nothing until the end, so with the default
    // 1 s the server would (rightly) give up on the blocked socket before the close frame can
    // go out, and the client would see 1006 instead of the 3008 this test is about.
    let server = Server::start(json!({
        "client_queue_max_size": 1_048_576,
        "websocket_write_timeout": 60
    }))
    .await;
    let (mut slow, _) = server.v1_client("slow").await;
    assert_eq!(slow.subscribe_v1("firehose").await["result"], json!({}));
    let (mut fast, _) = server.v1_client("fast").await;
    assert_eq!(fast.subscribe_v1("firehose").await["result"], json!({}));
    const N: usize = 640;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        let deadline = Instant::now() + Duration::from_secs(90);
        while got < N && Instant::now() < deadline {
            match fast.push_within(Duration::from_secs(10)).await {
                Some(p) => {
                    assert_eq!(p["result"]["data"]["data"]["n"], got, "in order");
                    got += 1;
                    counter.store(got, Ordering::SeqCst);
                }
                None => break,
            }
        }
        (got, fast.closed())
    });
    let pad = "x".repeat(32 * 1024);
    for batch in 0..(N / 10) {
        let wait_until = Instant::now() + Duration::from_secs(20);
        while batch * 10 > received.load(Ordering::SeqCst) + 20 && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let body: Vec<String> = (0..10)
            .map(|i| {
                json!({"method": "publish", "params": {"channel": "firehose", "data": {"n": batch * 10 + i, "pad": pad}}})
                    .to_string()
            })
            .collect();
        let r = api_v1_raw(&server, &body.join("\n")).await;
        assert_eq!(r.status, 200, "{:?}", &r.body[..r.body.len().min(200)]);
    }
    let (got, fast_closed) = reader.await.expect("reader task");
    assert_eq!(
        (got, fast_closed),
        (N, None),
        "the reading subscriber gets everything and stays connected"
    );
    let (c, r) = slow.close_within(Duration::from_secs(30)).await;
    assert_eq!((c, r.as_str()), (3008, V1_SLOW));
    server.assert_serves_fresh_client().await;
}

/// The value of `centrifugo_client_num_server_disconnects{code}` on `server`'s `/metrics`.
async fn server_disconnects(server: &Server, code: u16) -> u64 {
    let text = http()
        .get(server.http_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let key = format!("centrifugo_client_num_server_disconnects{{code=\"{code}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_cut_by_the_write_timeout_counts_as_write_error_3009() {
    // A queue too large to overflow (256 MB) and the default 1 s write timeout: once the
    // socket buffers of a subscriber that reads nothing are full, a write waits past 1 s and
    // the connection is cut. The cut is counted as a write error (3009), not as slow (3008),
    // and not lost from the accounting; the node goes on serving.
    let server = Server::start(json!({
        "client_queue_max_size": 268_435_456,
        "prometheus": true
    }))
    .await;
    let (mut slow, _) = server.v1_client("slow").await;
    assert_eq!(slow.subscribe_v1("firehose").await["result"], json!({}));
    let pad = "x".repeat(32 * 1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut published = 0usize;
    // Up to ~64 MB: far beyond what loopback socket buffers hold.
    while server_disconnects(&server, 3009).await == 0 && published < 2_000 {
        assert!(
            Instant::now() < deadline,
            "no write-timeout cut within 60 s"
        );
        let body: Vec<String> = (0..20)
            .map(|i| {
                json!({"method": "publish", "params": {"channel": "firehose", "data": {"n": published + i, "pad": pad}}})
                    .to_string()
            })
            .collect();
        let r = api_v1_raw(&server, &body.join("\n")).await;
        assert_eq!(r.status, 200);
        published += 20;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last write may still be waiting out its second.
    let wait = Instant::now() + Duration::from_secs(5);
    while server_disconnects(&server, 3009).await == 0 && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (
            server_disconnects(&server, 3009).await,
            server_disconnects(&server, 3008).await
        ),
        (1, 0),
        "one write-timeout cut, counted as 3009, after {published} publications"
    );
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn sigterm_closes_clients_with_3001_shutdown_and_exits() {
    let server = Server::start(json!({})).await;
    let (mut v1, _) = server.v1_client("alice").await;
    let (mut v2, _) = server.v2_client("bob").await;
    server.terminate();
    let (c, r) = v1.close_within(Duration::from_secs(10)).await;
    assert_eq!((c, r.as_str()), (3001, V1_SHUTDOWN), "v1");
    let (c, r) = v2.close_within(Duration::from_secs(10)).await;
    assert_eq!((c, r.as_str()), (3001, "shutdown"), "v2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.exit_status().is_none() {
        assert!(
            Instant::now() < deadline,
            "rotor did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// config files
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn config_with_unknown_key_still_starts_and_warns_about_it() {
    let server = Server::start(json!({"totally_unknown_key_xyz": 1})).await;
    server.assert_serves_fresh_client().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !server.output().contains("totally_unknown_key_xyz") {
        assert!(
            Instant::now() < deadline,
            "the warning names the unknown key; output:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn config_with_wrong_type_is_rejected_naming_the_key() {
    let port = free_port();
    let text = format!(
        r#"{{"address":"127.0.0.1","port":{port},"token_hmac_secret_key":"secret","presence":"yes"}}"#
    );
    let (status, out) = run_rotor_with_config_text(&text, Duration::from_secs(10));
    let status =
        status.unwrap_or_else(|| panic!("rotor kept running with a bad config; output:\n{out}"));
    assert!(!status.success(), "non-zero exit expected; output:\n{out}");
    assert!(
        out.contains("presence"),
        "the error names the key; output:\n{out}"
    );
}

#[test]
fn config_file_that_is_not_json_is_rejected() {
    let (status, out) = run_rotor_with_config_text("{ this is not json", Duration::from_secs(10));
    let status =
        status.unwrap_or_else(|| panic!("rotor kept running with a broken config; output:\n{out}"));
    assert!(!status.success(), "non-zero exit expected; output:\n{out}");
}
