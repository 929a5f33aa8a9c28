//! The session on each transport shape, through the public API as the server's transports drive
//! it: unidirectional connects (bare request in, connect push first, the disconnect Centrifugo
//! maps a failure to), emulation connects (`session` and `node` in the result) and emulation
//! requests delivered through a session's inbox. The transports themselves are tested on real
//! sockets in `rotor-server`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rotor_core::auth::sign_hs256;
use rotor_core::emulation::EmulationError;
use rotor_core::transport::{HTTP_STREAM, UNI_GRPC, UNI_SSE};
use rotor_core::writer::{CloseFrame, WriterStep};
use rotor_core::{ChannelOptions, Namespace, Node, NodeConfig, Session};
use rotor_protocol::command::SubscribeRequest;
use rotor_protocol::{ConnectRequest, Encoding, Generation};
use serde_json::Value;

fn node() -> Node {
    let node = Node::new(NodeConfig {
        token_hmac_secret_key: "secret".into(),
        channel_options: ChannelOptions {
            publish: true,
            ..Default::default()
        },
        namespaces: vec![Namespace {
            name: "chat".into(),
            options: ChannelOptions::default(),
        }],
        ..Default::default()
    })
    .expect("valid config");
    node.start();
    node
}

fn token(claims: &str) -> String {
    sign_hs256("secret", claims)
}

/// Everything queued within 100 ms: JSON lines, and the close if one came.
async fn drain(s: &Session) -> (Vec<Value>, Option<Option<CloseFrame>>) {
    let mut lines = Vec::new();
    loop {
        let mut out = Vec::new();
        let step =
            tokio::time::timeout(Duration::from_millis(100), s.shared().queue.next(&mut out));
        let Ok(step) = step.await else {
            return (lines, None);
        };
        for m in &out {
            for l in m.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_slice(l).expect("JSON line"));
            }
        }
        if let WriterStep::Close(f) = step {
            return (lines, Some(f));
        }
    }
}

fn subs(channels: &[&str]) -> BTreeMap<String, SubscribeRequest> {
    channels
        .iter()
        .map(|c| (c.to_string(), SubscribeRequest::default()))
        .collect()
}

#[tokio::test]
async fn unidirectional_connect_pushes_the_result_and_subscribes_allowed_requested_channels() {
    let node = node();
    let mut s = node.new_session_on(&UNI_SSE, Some(Generation::V2), Encoding::Json);
    let req = ConnectRequest {
        token: token(r#"{"sub":"42"}"#),
        // Private and user-limited channels need more than a request: skipped.
        subs: subs(&["news", "chat:room", "$secret", "dialog#42,43"]),
        ..Default::default()
    };
    assert!(s.connect_unidirectional(req).await.is_ok());
    let (lines, close) = drain(&s).await;
    assert!(close.is_none(), "{close:?}");
    let connect = &lines[0]["push"]["connect"];
    assert_eq!(connect["client"], s.shared().id());
    let session = connect["session"].as_str().expect("a session id");
    assert_eq!(Some(session), s.shared().session_id());
    assert!(connect.get("node").is_none(), "no node on uni: {connect}");
    assert!(
        connect.get("pong").is_none(),
        "uni clients do not pong: {connect}"
    );
    assert_eq!(connect["ping"], 25);
    let mut got: Vec<&str> = connect["subs"]
        .as_object()
        .expect("subs")
        .keys()
        .map(String::as_str)
        .collect();
    got.sort();
    assert_eq!(got, ["chat:room", "news"]);

    node.api_publish_data("news", Bytes::from_static(b"{\"n\":1}"))
        .await
        .expect("published");
    let (lines, _) = drain(&s).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["push"]["channel"], "news");
    assert_eq!(lines[0]["push"]["pub"]["data"]["n"], 1);
    s.close().await;
}

#[tokio::test]
async fn unidirectional_connect_failures_map_to_disconnects() {
    let node = node();
    let cases = [
        // An expired token: 3005, as Centrifugo maps error 109 (which the caller gets).
        (
            token(r#"{"sub":"1","exp":1000}"#),
            subs(&[]),
            3005,
            Some(109),
        ),
        // A bad token: the connect's own disconnect (invalid token).
        ("not-a-jwt".to_string(), subs(&[]), 3500, None),
        // A channel of an unknown namespace: bad request.
        (token(r#"{"sub":"1"}"#), subs(&["nope:x"]), 3501, None),
    ];
    for (tok, subs, code, error) in cases {
        let mut s = node.new_session_on(&UNI_SSE, Some(Generation::V2), Encoding::Json);
        let req = ConnectRequest {
            token: tok,
            subs,
            ..Default::default()
        };
        let got = s
            .connect_unidirectional(req)
            .await
            .map_err(|e| e.map(|e| e.code));
        assert_eq!(got, Err(error));
        let (lines, close) = drain(&s).await;
        assert!(lines.is_empty(), "{lines:?}");
        let frame = close.flatten().expect("a close frame");
        assert_eq!(frame.code, code, "{frame:?}");
        s.close().await;
    }
}

#[tokio::test]
async fn uni_grpc_gets_no_application_pings() {
    let node = node();
    let mut s = node.new_session_on(&UNI_GRPC, Some(Generation::V2), Encoding::Protobuf);
    let req = ConnectRequest {
        token: token(r#"{"sub":"42"}"#),
        ..Default::default()
    };
    assert!(s.connect_unidirectional(req).await.is_ok());
    let mut out = Vec::new();
    s.shared().queue.next(&mut out).await;
    let mut pushes = Vec::new();
    for m in &out {
        rotor_protocol::codec::unwrap_pushes(Encoding::Protobuf, m, &mut pushes);
    }
    use prost::Message;
    let push = rotor_protocol::protobuf::v2::Push::decode(&pushes[0][..]).expect("a Push");
    let c = push.connect.expect("connect push");
    assert_eq!((c.ping, c.pong), (0, false));
    assert!(!c.session.is_empty());
    s.close().await;
}

#[tokio::test]
async fn emulation_requests_reach_the_session_through_its_inbox() {
    let node = node();
    let mut s = node.new_session_on(&HTTP_STREAM, Some(Generation::V2), Encoding::Json);
    let connect = format!(
        r#"{{"id":1,"connect":{{"token":"{}"}}}}"#,
        token(r#"{"sub":"42"}"#)
    );
    assert!(s.handle_frame(connect.as_bytes()).await);
    let (lines, _) = drain(&s).await;
    let result = &lines[0]["connect"];
    assert_eq!(result["node"], node.uid());
    assert_eq!(result["pong"], true);
    let session = result["session"].as_str().expect("session").to_string();

    // The stream task: feeds inbox frames to the session.
    let mut inbox = node.emulation_inbox(&session);
    let shared = s.shared().clone();
    let task = tokio::spawn(async move {
        while let Some(f) = inbox.recv().await {
            s.handle_frame(&f.data).await;
            let _ = f.done.send(());
        }
        s
    });
    let cmd = Bytes::from_static(br#"{"id":2,"subscribe":{"channel":"news"}}"#);
    node.emulate(node.uid(), &session, cmd)
        .await
        .expect("delivered");
    // Handled before `emulate` returned: the reply is already queued.
    let mut out = Vec::new();
    let step = tokio::time::timeout(Duration::from_millis(10), shared.queue.next(&mut out)).await;
    assert!(matches!(step, Ok(WriterStep::Data)), "{step:?}");
    let reply: Value = serde_json::from_slice(out[0].trim_ascii()).expect("JSON");
    assert_eq!(reply["id"], 2);
    assert!(reply.get("subscribe").is_some(), "{reply}");

    // An unknown session on this node: accepted (Centrifugo answers 204); an unknown node: 404.
    assert_eq!(
        node.emulate(node.uid(), "nobody", Bytes::new()).await,
        Ok(())
    );
    assert_eq!(
        node.emulate("another-node", &session, Bytes::new()).await,
        Err(EmulationError::UnknownNode)
    );
    task.abort();
}

#[tokio::test]
async fn an_inbox_that_goes_away_releases_its_waiting_senders() {
    let node = node();
    let inbox = node.emulation_inbox("s1");
    let n = node.clone();
    let sender =
        tokio::spawn(async move { n.emulate(n.uid(), "s1", Bytes::from_static(b"{}")).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!sender.is_finished(), "waits for the frame to be handled");
    drop(inbox);
    let result = tokio::time::timeout(Duration::from_secs(1), sender)
        .await
        .expect("released at once, not after the 10 s bound");
    assert_eq!(result.expect("joined"), Ok(()));
}
