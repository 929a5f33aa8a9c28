//! Fossil deltas through the node (hub, sessions, memory engine), driven as the transport drives
//! them: negotiation in the subscribe reply, client publications marked by `delta_publish`, the
//! first live publication full and the next ones patches, a recovery chained first full, and a
//! recovery that returned nothing followed by a full publication (centrifuge#629). Each message
//! is decoded as centrifuge-js decodes it: the string data parsed, or the patch applied to the
//! bytes held.

use std::time::Duration;

use rotor_core::auth::sign_hs256;
use rotor_core::writer::WriterStep;
use rotor_core::{ChannelOptions, Namespace, Node, NodeConfig, Session};
use rotor_protocol::{fossil, Encoding, Generation};
use serde_json::{json, Value};

const CH: &str = "docs:1";

fn node() -> Node {
    let cfg = NodeConfig {
        token_hmac_secret_key: "secret".into(),
        namespaces: vec![Namespace {
            name: "docs".into(),
            options: ChannelOptions {
                history_size: 20,
                history_lifetime: 300,
                history_recover: true,
                publish: true,
                delta_fossil: true,
                delta_publish: true,
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    let node = Node::new(cfg).expect("valid config");
    node.start();
    node
}

async fn lines(s: &Session) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let mut msgs = Vec::new();
        let step =
            tokio::time::timeout(Duration::from_millis(100), s.shared().queue.next(&mut msgs));
        let Ok(step) = step.await else {
            return out;
        };
        for m in &msgs {
            for l in m.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                out.push(serde_json::from_slice(l).expect("JSON line"));
            }
        }
        assert_eq!(step, WriterStep::Data);
    }
}

async fn session(node: &Node, user: &str) -> Session {
    let mut s = node.new_session(Some(Generation::V2), Encoding::Json);
    let token = sign_hs256("secret", &json!({ "sub": user }).to_string());
    let frame = json!({"id": 1, "connect": {"token": token}});
    assert!(s.handle_frame(frame.to_string().as_bytes()).await);
    let got = lines(&s).await;
    assert!(got[0]["connect"].is_object(), "{got:?}");
    s
}

async fn command(s: &mut Session, cmd: Value) -> Value {
    assert!(s.handle_frame(cmd.to_string().as_bytes()).await);
    let got = lines(s).await;
    got.into_iter()
        .find(|v| v.get("id") == cmd.get("id"))
        .expect("a reply")
}

fn doc(n: u64) -> Value {
    let notes: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "строка {i} — 行 {i} 🌟{}",
                if i == n % 10 { " новое" } else { "" }
            )
        })
        .collect();
    json!({"n": n, "notes": notes})
}

/// The client's held bytes and what it saw.
#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    kinds: Vec<&'static str>,
}

impl Held {
    fn take(&mut self, p: &Value) -> Value {
        let data = p["data"]
            .as_str()
            .unwrap_or_else(|| panic!("not a string: {p}"));
        if p["delta"] == json!(true) {
            self.bytes = fossil::apply(&self.bytes, data.as_bytes()).expect("patch applies");
            self.kinds.push("patch");
        } else {
            self.bytes = data.as_bytes().to_vec();
            self.kinds.push("full");
        }
        serde_json::from_slice(&self.bytes).unwrap()
    }
}

async fn publish(publisher: &mut Session, id: u64, n: u64) {
    let r = command(
        publisher,
        json!({"id": id, "publish": {"channel": CH, "data": doc(n)}}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
}

#[tokio::test]
async fn live_recovered_and_after_an_empty_recovery() {
    let node = node();
    let mut publisher = session(&node, "p").await;
    let mut a = session(&node, "a").await;
    let r = command(
        &mut a,
        json!({"id": 2, "subscribe": {"channel": CH, "delta": "fossil"}}),
    )
    .await;
    assert_eq!(r["subscribe"]["delta"], true, "{r}");
    let mut held = Held::default();
    for n in 1..=4 {
        publish(&mut publisher, 10 + n, n).await;
        let got = lines(&a).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(held.take(&got[0]["push"]["pub"]), doc(n));
    }
    // Client publications on a delta_publish channel are marked: patches after the first.
    assert_eq!(held.kinds, ["full", "patch", "patch", "patch"]);

    // Recovery from offset 1: 2..4 chained, the first full.
    let epoch = r["subscribe"]["epoch"].as_str().unwrap().to_string();
    let mut b = session(&node, "b").await;
    let r = command(
        &mut b,
        json!({"id": 2, "subscribe": {"channel": CH, "delta": "fossil", "recover": true,
                                      "offset": 1, "epoch": epoch}}),
    )
    .await;
    assert_eq!(r["subscribe"]["recovered"], true, "{r}");
    let mut held = Held::default();
    let pubs = r["subscribe"]["publications"].as_array().unwrap();
    for (p, n) in pubs.iter().zip(2..) {
        assert_eq!(held.take(p), doc(n));
    }
    assert_eq!(held.kinds, ["full", "patch", "patch"]);

    // Recovery at the top: nothing returned, so the next live one is full (#629).
    let mut c = session(&node, "c").await;
    let r = command(
        &mut c,
        json!({"id": 2, "subscribe": {"channel": CH, "delta": "fossil", "recover": true,
                                      "offset": 4, "epoch": epoch}}),
    )
    .await;
    assert_eq!(r["subscribe"]["recovered"], true, "{r}");
    assert!(r["subscribe"].get("publications").is_none(), "{r}");
    publish(&mut publisher, 20, 5).await;
    publish(&mut publisher, 21, 6).await;
    let mut held_c = Held::default();
    for (p, n) in lines(&c).await.iter().zip(5..) {
        assert_eq!(held_c.take(&p["push"]["pub"]), doc(n));
    }
    assert_eq!(held_c.kinds, ["full", "patch"]);
    // b, recovered with publications, holds 4: both live ones are patches.
    for (p, n) in lines(&b).await.iter().zip(5..) {
        assert_eq!(held.take(&p["push"]["pub"]), doc(n));
    }
    assert_eq!(held.kinds, ["full", "patch", "patch", "patch", "patch"]);

    // Client history never carries deltas: raw JSON data.
    let r = command(
        &mut c,
        json!({"id": 3, "history": {"channel": CH, "limit": 10}}),
    )
    .await;
    let pubs = r["history"]["publications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(pubs.len(), 6, "{r}");
    assert!(
        pubs.iter()
            .all(|p| p["data"].is_object() && p.get("delta").is_none()),
        "{r}"
    );
}
