//! A broker that reports a gap (a reconnect, a dropped message) leaves no client silently
//! behind: on the next housekeeping tick a v2 subscription without a position is told to
//! resubscribe (unsubscribe push 2500), a v1 connection is closed with 3010 so that the client
//! reconnects, a positioned subscription whose stream did not move keeps going, and a gap
//! reported for one channel touches no other channel.

use std::time::Duration;

use rotor_core::auth::sign_hs256;
use rotor_core::writer::WriterStep;
use rotor_core::{ChannelOptions, Namespace, Node, NodeConfig, Session};
use rotor_protocol::{Encoding, Generation};
use serde_json::{json, Value};

fn node() -> Node {
    let cfg = NodeConfig {
        token_hmac_secret_key: "secret".into(),
        namespaces: vec![Namespace {
            name: "kept".into(),
            options: ChannelOptions {
                history_size: 10,
                history_lifetime: 300,
                history_recover: true,
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    let node = Node::new(cfg).expect("valid config");
    node.start();
    node
}

/// Everything queued to `s` within `wait`, as JSON values; `Err(reason)` once it is closed.
async fn lines(s: &Session, wait: Duration) -> (Vec<Value>, Option<String>) {
    let mut out = Vec::new();
    loop {
        let mut msgs = Vec::new();
        let Ok(step) = tokio::time::timeout(wait, s.shared().queue.next(&mut msgs)).await else {
            return (out, None);
        };
        for m in &msgs {
            for l in m.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                out.push(serde_json::from_slice(l).expect("JSON line"));
            }
        }
        match step {
            WriterStep::Data => {}
            WriterStep::Close(c) => return (out, Some(format!("{c:?}"))),
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn session(node: &Node, generation: Generation, user: &str) -> Session {
    let mut s = node.new_session(Some(generation), Encoding::Json);
    let token = sign_hs256("secret", &json!({ "sub": user }).to_string());
    let frame = match generation {
        Generation::V2 => json!({"id": 1, "connect": {"token": token}}),
        Generation::V1 => json!({"id": 1, "params": {"token": token}}),
    };
    assert!(s.handle_frame(frame.to_string().as_bytes()).await);
    let (got, closed) = lines(&s, Duration::from_millis(100)).await;
    assert!(closed.is_none() && !got.is_empty(), "{got:?}");
    s
}

async fn subscribe(s: &mut Session, id: u64, cmd: Value) {
    assert!(s.handle_frame(cmd.to_string().as_bytes()).await);
    let (got, _) = lines(s, Duration::from_millis(100)).await;
    let reply = got.iter().find(|v| v["id"] == json!(id)).expect("reply");
    assert!(reply.get("error").is_none(), "{reply}");
}

/// The housekeeping tick runs every 250 ms: wait for more than one.
const TICKS: Duration = Duration::from_millis(700);

#[tokio::test]
async fn a_gap_in_every_channel_signals_every_unpositioned_subscription() {
    let node = node();
    let mut v2 = session(&node, Generation::V2, "a").await;
    subscribe(
        &mut v2,
        2,
        json!({"id": 2, "subscribe": {"channel": "plain"}}),
    )
    .await;
    subscribe(
        &mut v2,
        3,
        json!({"id": 3, "subscribe": {"channel": "kept:x"}}),
    )
    .await;
    let mut v1 = session(&node, Generation::V1, "b").await;
    subscribe(
        &mut v1,
        2,
        json!({"id": 2, "method": 1, "params": {"channel": "plain"}}),
    )
    .await;

    node.check_positions_soon();

    let (got, closed) = lines(&v2, TICKS).await;
    assert!(closed.is_none(), "v2 connection stays open: {closed:?}");
    let unsubs: Vec<&Value> = got
        .iter()
        .filter(|v| v["push"]["unsubscribe"].is_object())
        .collect();
    assert_eq!(unsubs.len(), 1, "{got:?}");
    assert_eq!(unsubs[0]["push"]["channel"], json!("plain"));
    assert_eq!(unsubs[0]["push"]["unsubscribe"]["code"], json!(2500));

    let (_, closed) = lines(&v1, TICKS).await;
    let closed = closed.expect("the v1 connection is closed");
    assert!(closed.contains("3010"), "{closed}");
}

#[tokio::test]
async fn a_gap_in_one_channel_leaves_the_others_alone() {
    let node = node();
    let mut v2 = session(&node, Generation::V2, "a").await;
    subscribe(
        &mut v2,
        2,
        json!({"id": 2, "subscribe": {"channel": "one"}}),
    )
    .await;
    subscribe(
        &mut v2,
        3,
        json!({"id": 3, "subscribe": {"channel": "two"}}),
    )
    .await;

    node.gap(Some("two"));

    let (got, closed) = lines(&v2, TICKS).await;
    assert!(closed.is_none());
    let unsubs: Vec<&Value> = got
        .iter()
        .filter(|v| v["push"]["unsubscribe"].is_object())
        .collect();
    assert_eq!(unsubs.len(), 1, "{got:?}");
    assert_eq!(unsubs[0]["push"]["channel"], json!("two"));

    // Without a new gap, nothing more happens.
    let (got, closed) = lines(&v2, TICKS).await;
    assert!(got.is_empty() && closed.is_none(), "{got:?}");
}
