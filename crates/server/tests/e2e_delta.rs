//! Fossil delta compression on the wire (CHANNELS-MODERN.md §1): negotiation (`delta:
//! "fossil"` → `delta: true` where `allowed_delta_types` has it, silently none elsewhere, 3501 for
//! an unknown type), the JSON form (every publication's `data` a JSON string, patches marked
//! `"delta":true`), the Protobuf form (raw bytes, field 8), plain data for subscribers without
//! delta and for a 2.x client in the same channel, recovery chained first full, no patch right
//! after a recovery that returned nothing (centrifuge#629), and `delta_publish` marking client
//! publications. Real binary, memory engine, raw WebSocket clients.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use rotor_protocol::fossil;
use rotor_protocol::protobuf::v2 as pb;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn config() -> Value {
    json!({
        "namespaces": [
            {"name": "docs", "history_size": 50, "history_ttl": "300s", "force_recovery": true,
             "allowed_delta_types": ["fossil"]},
            {"name": "dp", "history_size": 50, "history_ttl": "300s", "force_recovery": true,
             "allowed_delta_types": ["fossil"], "delta_publish": true, "publish": true},
            {"name": "plain", "history_size": 50, "history_ttl": "300s", "force_recovery": true}
        ]
    })
}

/// A ~2 KB JSON document with Cyrillic, CJK and emoji text; `n` changes a few fields.
fn doc(n: u64) -> Value {
    let words = [
        "Привет, мир",
        "你好，世界",
        "🎉🚀✨🔥",
        "Grüße aus Köln",
        "東京タワー",
    ];
    let items: Vec<Value> = (0..16)
        .map(|i| {
            json!({
                "id": i,
                "title": format!("{} {}", words[(i % 5) as usize], i),
                "note": format!("заметка {i} — 備考 💬 {}", if i == n % 16 { "изменено" } else { "" }),
                "count": i * 7 + if i == n % 16 { n } else { 0 },
            })
        })
        .collect();
    json!({"version": n, "status": words[(n % 5) as usize], "items": items})
}

async fn publish(s: &Server, channel: &str, data: &Value) -> Value {
    let r = api_v2(
        s,
        "publish",
        json!({"channel": channel, "data": data, "delta": true}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    r
}

/// A delta subscriber's view: the client's held bytes, updated by each publication.
#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    patches: usize,
    fulls: usize,
}

impl Held {
    /// Decodes `pub` as centrifuge-js does (string data; apply when `delta`).
    fn take(&mut self, p: &Value) -> Value {
        let data = p["data"]
            .as_str()
            .unwrap_or_else(|| panic!("delta subscriber got non-string data: {p}"));
        if p["delta"] == json!(true) {
            self.bytes = fossil::apply(&self.bytes, data.as_bytes()).expect("patch applies");
            self.patches += 1;
        } else {
            assert!(p.get("delta").is_none(), "{p}");
            self.bytes = data.as_bytes().to_vec();
            self.fulls += 1;
        }
        serde_json::from_slice(&self.bytes).expect("decoded data is JSON")
    }
}

#[tokio::test]
async fn json_delta_subscriber_beside_plain_and_v1_subscribers() {
    let s = Server::start(config()).await;
    let (mut delta, _) = s.v2_client("a").await;
    let r = delta
        .call_v2(
            "subscribe",
            json!({"channel": "docs:doc", "delta": "fossil", "flag": 1}),
        )
        .await;
    assert_eq!(r["subscribe"]["delta"], true, "{r}");
    let (mut plain, _) = s.v2_client("b").await;
    let r = plain.subscribe_v2("docs:doc").await;
    assert!(r["subscribe"].get("delta").is_none(), "{r}");
    let (mut v1, _) = s.v1_client("c").await;
    let r = v1.subscribe_v1("docs:doc").await;
    assert!(r.get("error").is_none(), "{r}");

    let mut held = Held::default();
    for n in 1..=6 {
        let d = doc(n);
        publish(&s, "docs:doc", &d).await;
        let p = delta.push().await;
        assert_eq!(held.take(&p["push"]["pub"]), d, "{p}");
        // Without delta: raw JSON data as always, never a delta flag.
        let q = plain.push().await;
        assert_eq!(q["push"]["pub"]["data"], d);
        assert!(q["push"]["pub"].get("delta").is_none(), "{q}");
        let w = v1.push().await;
        assert_eq!(w["result"]["data"]["data"], d, "{w}");
    }
    // The first one full, every next one a patch (the documents change a little each time).
    assert_eq!((held.fulls, held.patches), (1, 5));
    let raw: String = delta.frames.concat();
    assert_eq!(
        raw.matches("\"delta\":true").count(),
        6,
        "result + 5 patches"
    );
    let patch_frame = delta
        .frames
        .iter()
        .rev()
        .find(|f| f.contains("\"delta\":true"))
        .unwrap();
    let full_frame = plain.frames.last().unwrap();
    assert!(
        patch_frame.len() * 3 < full_frame.len(),
        "patch {} bytes vs full {} bytes",
        patch_frame.len(),
        full_frame.len()
    );
    assert!(plain.frames.iter().all(|f| !f.contains("\"delta\"")));
    assert!(v1.frames.iter().all(|f| !f.contains("\"delta\"")));

    // Recovery from offset 2: 3..6 come chained, the first full; the live ones continue.
    let epoch = r_epoch(&s, "docs:doc").await;
    let (mut again, _) = s.v2_client("a").await;
    let r = again
        .call_v2(
            "subscribe",
            json!({"channel": "docs:doc", "delta": "fossil", "recover": true,
                   "offset": 2, "epoch": epoch, "flag": 1}),
        )
        .await;
    let sub = &r["subscribe"];
    assert_eq!(
        (&sub["recovered"], &sub["delta"]),
        (&json!(true), &json!(true)),
        "{r}"
    );
    let pubs = sub["publications"].as_array().unwrap();
    assert_eq!(pubs.len(), 4, "{r}");
    let mut held = Held::default();
    for (p, n) in pubs.iter().zip(3..) {
        assert_eq!(held.take(p), doc(n));
    }
    assert_eq!((held.fulls, held.patches), (1, 3));
    // The client holds 6: the next live publication is a patch.
    publish(&s, "docs:doc", &doc(7)).await;
    let p = again.push().await;
    assert_eq!(p["push"]["pub"]["delta"], true, "{p}");
    assert_eq!(held.take(&p["push"]["pub"]), doc(7));

    // A recovery that returns nothing (#629): the next live publication goes in full.
    let (mut idle, _) = s.v2_client("a").await;
    let r = idle
        .call_v2(
            "subscribe",
            json!({"channel": "docs:doc", "delta": "fossil", "recover": true,
                   "offset": 7, "epoch": epoch, "flag": 1}),
        )
        .await;
    assert_eq!(r["subscribe"]["recovered"], true, "{r}");
    assert!(r["subscribe"].get("publications").is_none(), "{r}");
    publish(&s, "docs:doc", &doc(8)).await;
    let p = idle.push().await;
    assert!(p["push"]["pub"].get("delta").is_none(), "{p}");
    let mut held = Held::default();
    assert_eq!(held.take(&p["push"]["pub"]), doc(8));
    publish(&s, "docs:doc", &doc(9)).await;
    let p = idle.push().await;
    assert_eq!(p["push"]["pub"]["delta"], true, "{p}");
    assert_eq!(held.take(&p["push"]["pub"]), doc(9));
    s.assert_alive();
}

async fn r_epoch(s: &Server, channel: &str) -> String {
    let r = api_v2(s, "history", json!({"channel": channel})).await;
    r["result"]["epoch"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn negotiation_refusals_and_unmarked_publications() {
    let s = Server::start(config()).await;
    let (mut c, _) = s.v2_client("n").await;
    // Not allowed in the namespace: no delta in the result, plain data, no error.
    let r = c
        .call_v2(
            "subscribe",
            json!({"channel": "plain:x", "delta": "fossil", "flag": 1}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    assert!(r["subscribe"].get("delta").is_none(), "{r}");
    for n in 1..=2 {
        publish(&s, "plain:x", &doc(n)).await;
        let p = c.push().await;
        assert_eq!(p["push"]["pub"]["data"], doc(n), "{p}");
    }
    // Allowed, but the publisher did not mark them: full every time (as strings).
    let r = c
        .call_v2(
            "subscribe",
            json!({"channel": "docs:unmarked", "delta": "fossil", "flag": 1}),
        )
        .await;
    assert_eq!(r["subscribe"]["delta"], true, "{r}");
    for n in 1..=3 {
        let r = api_v2(
            &s,
            "publish",
            json!({"channel": "docs:unmarked", "data": doc(n)}),
        )
        .await;
        assert!(r.get("error").is_none(), "{r}");
        let p = c.push().await;
        assert!(p["push"]["pub"].get("delta").is_none(), "{p}");
        let text = p["push"]["pub"]["data"].as_str().expect("string data");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), doc(n));
    }
    // An unknown delta type closes the connection with 3501.
    c.cmd_v2("subscribe", json!({"channel": "docs:z", "delta": "xdelta"}))
        .await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 3501);
    s.assert_alive();
}

#[tokio::test]
async fn delta_publish_marks_client_publications() {
    let s = Server::start(config()).await;
    let (mut sub, _) = s.v2_client("s").await;
    let r = sub
        .call_v2(
            "subscribe",
            json!({"channel": "dp:room", "delta": "fossil", "flag": 1}),
        )
        .await;
    assert_eq!(r["subscribe"]["delta"], true, "{r}");
    let (mut publisher, _) = s.v2_client("p").await;
    let mut held = Held::default();
    for n in 1..=3 {
        let r = publisher
            .call_v2("publish", json!({"channel": "dp:room", "data": doc(n)}))
            .await;
        assert!(r.get("error").is_none(), "{r}");
        let p = sub.push().await;
        assert_eq!(held.take(&p["push"]["pub"]), doc(n));
    }
    assert_eq!((held.fulls, held.patches), (1, 2));
    // The API without `delta` is marked too in a delta_publish namespace.
    let r = api_v2(&s, "publish", json!({"channel": "dp:room", "data": doc(4)})).await;
    assert!(r.get("error").is_none(), "{r}");
    let p = sub.push().await;
    assert_eq!(p["push"]["pub"]["delta"], true, "{p}");
    assert_eq!(held.take(&p["push"]["pub"]), doc(4));
    s.assert_alive();
}

// ----- Protobuf -----

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn pb_send(ws: &mut Stream, cmd: pb::Command) {
    let mut buf = Vec::new();
    cmd.encode_length_delimited(&mut buf).unwrap();
    ws.send(Message::binary(buf)).await.unwrap();
}

/// The next binary message's replies (a message may hold several).
async fn pb_recv(ws: &mut Stream) -> Vec<pb::Reply> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message within 5 s")
            .expect("stream open")
            .expect("no error");
        if let Message::Binary(b) = msg {
            let mut rest = &b[..];
            let mut out = Vec::new();
            while !rest.is_empty() {
                out.push(pb::Reply::decode_length_delimited(&mut rest).unwrap());
            }
            return out;
        }
    }
}

async fn pb_push(ws: &mut Stream) -> pb::Publication {
    loop {
        for r in pb_recv(ws).await {
            if let Some(p) = r.push.and_then(|p| p.r#pub) {
                return p;
            }
        }
    }
}

#[tokio::test]
async fn protobuf_delta_subscriber_gets_raw_patches() {
    let s = Server::start(config()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url_with("format=protobuf"))
        .await
        .unwrap();
    pb_send(
        &mut ws,
        pb::Command {
            id: 1,
            connect: Some(pb::ConnectRequest {
                token: conn_token("pb"),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert!(pb_recv(&mut ws).await[0].connect.is_some());
    pb_send(
        &mut ws,
        pb::Command {
            id: 2,
            subscribe: Some(pb::SubscribeRequest {
                channel: "docs:pb".into(),
                delta: "fossil".into(),
                flag: 1,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let r = pb_recv(&mut ws).await;
    let sub = r[0].subscribe.clone().expect("subscribe result");
    assert!(sub.delta, "{sub:?}");
    // A Protobuf client without delta in the same channel.
    let (mut plain, _) = tokio_tungstenite::connect_async(s.ws_url_with("format=protobuf"))
        .await
        .unwrap();
    pb_send(
        &mut plain,
        pb::Command {
            id: 1,
            connect: Some(pb::ConnectRequest {
                token: conn_token("pb2"),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    pb_recv(&mut plain).await;
    pb_send(
        &mut plain,
        pb::Command {
            id: 2,
            subscribe: Some(pb::SubscribeRequest {
                channel: "docs:pb".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert!(
        !pb_recv(&mut plain).await[0]
            .subscribe
            .clone()
            .unwrap()
            .delta
    );

    let mut held: Vec<u8> = Vec::new();
    let mut patches = 0;
    for n in 1..=4 {
        let d = doc(n);
        publish(&s, "docs:pb", &d).await;
        let p = pb_push(&mut ws).await;
        if p.delta {
            patches += 1;
            assert!(
                p.data.len() * 3 < held.len(),
                "patch of {} bytes",
                p.data.len()
            );
            held = fossil::apply(&held, &p.data).unwrap();
        } else {
            assert_eq!(n, 1, "only the first is full");
            held = p.data.to_vec();
        }
        assert_eq!(serde_json::from_slice::<Value>(&held).unwrap(), d);
        let q = pb_push(&mut plain).await;
        assert!(!q.delta);
        assert_eq!(serde_json::from_slice::<Value>(&q.data).unwrap(), d);
    }
    assert_eq!(patches, 3);
    s.assert_alive();
}
