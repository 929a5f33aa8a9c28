//! The delivery rules of delta subscriptions, through the real fan-out entry point
//! (`ClientShared::deliver_publication` with one `PreparedPush` per broadcast), the buffered
//! hand-over (`Node::activate_subscription`) and the recovery chain; each message read back as a
//! client decodes it (JSON string or Protobuf bytes, then Fossil applied to the held bytes).

use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use rotor_protocol::codec::Encoder;
use rotor_protocol::protobuf::v2 as pb;
use rotor_protocol::{fossil, Encoding, Generation, PositionFormat, Publication, Push};
use serde_json::Value;

use super::{chain_recovered, for_subscriber, patch_for};
use crate::client::{ClientShared, SubState, SubStatus};
use crate::hub::PreparedPush;

const CH: &str = "d:doc";

fn encoders() -> [Encoder; 4] {
    [
        Encoder::new(Generation::V1, Encoding::Json, PositionFormat::Offset),
        Encoder::new(Generation::V1, Encoding::Protobuf, PositionFormat::Offset),
        Encoder::new(Generation::V2, Encoding::Json, PositionFormat::Offset),
        Encoder::new(Generation::V2, Encoding::Protobuf, PositionFormat::Offset),
    ]
}

fn sub_state(delta: bool, positioned: bool, offset: u64) -> SubState {
    SubState {
        status: SubStatus::Subscribed,
        chan_info: None,
        expire_at: None,
        push_join_leave: false,
        emit_join_leave: false,
        presence: false,
        positioned,
        offset,
        epoch: "e".into(),
        position_failures: 0,
        refresh_proxy: None,
        server_side: false,
        filter: None,
        delta,
        delta_ready: false,
    }
}

/// A connection subscribed to [`CH`] at `offset`.
fn client(g: Generation, e: Encoding, delta: bool, positioned: bool, offset: u64) -> ClientShared {
    let c = ClientShared::new(1 << 20, &crate::transport::WEBSOCKET, Some(g), e);
    c.state.lock().connected = true;
    c.state
        .lock()
        .subs
        .insert(CH.into(), sub_state(delta, positioned, offset));
    c
}

fn ready(c: &ClientShared) -> bool {
    c.state.lock().subs[CH].delta_ready
}

/// A publication at `offset` whose predecessor (when marked) had `prev`.
fn publication(offset: u64, data: &str, prev: Option<&str>) -> Publication {
    Publication {
        offset,
        data: Bytes::from(data.to_owned()),
        prev_data: prev.map(|p| Bytes::from(p.to_owned())),
        ..Publication::default()
    }
}

/// One broadcast to every client; returns whether the delta forms were created.
fn broadcast(clients: &[&ClientShared], p: &Publication) -> bool {
    let enc = encoders();
    let prepared = PreparedPush::new(
        Push::Publication {
            channel: CH,
            publication: p,
        },
        &enc,
    );
    for c in clients {
        c.deliver_publication(CH, p, &prepared);
    }
    prepared.has_delta_forms()
}

fn take(c: &ClientShared) -> Vec<Bytes> {
    let mut out = Vec::new();
    c.queue.take_more(&mut out);
    out
}

/// What a client gets: the `pub` object's data (JSON: the string or the raw value as text;
/// Protobuf: the bytes) and its delta flag.
#[derive(Debug, PartialEq)]
struct Got {
    data: Vec<u8>,
    delta: bool,
    /// JSON: `data` came as a JSON string.
    string: bool,
}

fn got(c: &ClientShared) -> Got {
    let msgs = take(c);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    decode(c.encoding(), &msgs[0])
}

fn decode(e: Encoding, msg: &[u8]) -> Got {
    match e {
        Encoding::Json => {
            let v: Value = serde_json::from_slice(msg).unwrap();
            let p = v
                .pointer("/push/pub")
                .or_else(|| v.pointer("/result/data"))
                .unwrap_or_else(|| panic!("{v}"));
            let (data, string) = match &p["data"] {
                Value::String(s) => (s.as_bytes().to_vec(), true),
                other => (other.to_string().into_bytes(), false),
            };
            Got {
                data,
                delta: p.get("delta") == Some(&Value::Bool(true)),
                string,
            }
        }
        Encoding::Protobuf => {
            let frames: Vec<_> = rotor_protocol::protobuf::split_frame(msg)
                .collect::<Result<_, _>>()
                .unwrap();
            let p = pb::Reply::decode(frames[0])
                .unwrap()
                .push
                .unwrap()
                .r#pub
                .unwrap();
            Got {
                data: p.data.to_vec(),
                delta: p.delta,
                string: false,
            }
        }
    }
}

/// A ~1 KB JSON document with multi-byte text; `n` changes a few fields.
fn doc(n: u32) -> String {
    let words = ["Привет, мир", "你好世界", "🎉🚀✨", "Grüße", "naïve café"];
    let items: Vec<String> = (0..12)
        .map(|i| {
            let w = words[((i + n) % 5) as usize];
            format!(
                r#"{{"id":{i},"title":"{w} {i}","count":{},"ok":true}}"#,
                i * 7
            )
        })
        .collect();
    format!(r#"{{"version":{n},"items":[{}]}}"#, items.join(","))
}

#[test]
fn first_publication_is_full_then_patches_follow() {
    let c = client(Generation::V2, Encoding::Json, true, true, 1);
    let (d1, d2, d3) = (doc(1), doc(2), doc(3));
    // Marked, with a base, but the subscriber holds nothing yet: full, as a JSON string.
    assert!(broadcast(&[&c], &publication(2, &d2, Some(&d1))));
    let g = got(&c);
    assert_eq!(
        g,
        Got {
            data: d2.clone().into_bytes(),
            delta: false,
            string: true
        }
    );
    assert!(ready(&c));
    // Now the subscriber holds 2: 3 goes as a patch that rebuilds it from 2's bytes.
    broadcast(&[&c], &publication(3, &d3, Some(&d2)));
    let g = got(&c);
    assert!(g.delta && g.string, "{g:?}");
    assert!(g.data.len() < d3.len());
    assert_eq!(
        fossil::apply(d2.as_bytes(), &g.data).unwrap(),
        d3.as_bytes()
    );
}

#[test]
fn full_when_not_positioned_not_marked_or_not_worth_it() {
    let (d1, d2) = (doc(1), doc(2));
    // Not positioned: no guarantee the client holds the base.
    let loose = client(Generation::V2, Encoding::Json, true, false, 0);
    loose.state.lock().subs.get_mut(CH).unwrap().delta_ready = true;
    broadcast(&[&loose], &publication(2, &d2, Some(&d1)));
    assert_eq!(
        got(&loose),
        Got {
            data: d2.clone().into_bytes(),
            delta: false,
            string: true
        }
    );

    // Not marked by the publisher (no base shipped).
    let c = client(Generation::V2, Encoding::Json, true, true, 1);
    c.state.lock().subs.get_mut(CH).unwrap().delta_ready = true;
    broadcast(&[&c], &publication(2, &d2, None));
    assert_eq!(
        got(&c),
        Got {
            data: d2.clone().into_bytes(),
            delta: false,
            string: true
        }
    );

    // A patch not smaller than the data (unrelated short payloads).
    let (a, b) = (r#"{"a":"0123456789abcdef"}"#, r#"{"z":"QWERTYUIOPASDFGH"}"#);
    assert!(patch_for(Encoding::Json, a.as_bytes(), b.as_bytes()).is_none());
    broadcast(&[&c], &publication(3, b, Some(a)));
    assert_eq!(
        got(&c),
        Got {
            data: b.as_bytes().to_vec(),
            delta: false,
            string: true
        }
    );
}

#[test]
fn non_delta_and_v1_subscribers_get_plain_data_and_cost_nothing() {
    let (d1, d2) = (doc(1), doc(2));
    let plain = client(Generation::V2, Encoding::Json, false, true, 1);
    let v1 = client(Generation::V1, Encoding::Json, false, true, 1);
    let p = publication(2, &d2, Some(&d1));
    // No delta subscriber reached: no delta form created, no patch computed.
    assert!(!broadcast(&[&plain, &v1], &p));
    let value: Value = serde_json::from_str(&d2).unwrap();
    for c in [&plain, &v1] {
        let g = got(c);
        assert!(!g.string && !g.delta);
        assert_eq!(serde_json::from_slice::<Value>(&g.data).unwrap(), value);
    }
    // Mixed with delta subscribers in one broadcast, they still get plain data.
    let delta = client(Generation::V2, Encoding::Json, true, true, 2);
    delta.state.lock().subs.get_mut(CH).unwrap().delta_ready = true;
    let p3 = publication(3, &doc(3), Some(&d2));
    assert!(broadcast(&[&plain, &v1, &delta], &p3));
    assert!(got(&delta).delta);
    for c in [&plain, &v1] {
        let g = got(c);
        assert!(!g.string && !g.delta, "{g:?}");
    }
}

#[test]
fn protobuf_patch_is_raw_and_full_is_the_normal_push() {
    let (d1, d2, d3) = (doc(1), doc(2), doc(3));
    let delta = client(Generation::V2, Encoding::Protobuf, true, true, 1);
    let plain = client(Generation::V2, Encoding::Protobuf, false, true, 1);
    broadcast(&[&delta, &plain], &publication(2, &d2, Some(&d1)));
    let (a, b) = (take(&delta), take(&plain));
    assert_eq!(a, b, "full data to a delta subscriber is the plain push");
    broadcast(&[&delta, &plain], &publication(3, &d3, Some(&d2)));
    let g = got(&delta);
    assert!(g.delta);
    assert_eq!(
        fossil::apply(d2.as_bytes(), &g.data).unwrap(),
        d3.as_bytes()
    );
    assert_eq!(
        got(&plain),
        Got {
            data: d3.into_bytes(),
            delta: false,
            string: false
        }
    );
}

#[test]
fn split_characters_never_reach_json_but_protobuf_keeps_the_raw_patch() {
    // "è" (C3 A8) becomes "é" (C3 A9) in a long text: Fossil's own patch copies the C3 and
    // inserts the lone A9, which no JSON string can carry.
    let base = format!(r#"{{"text":"{}è{}"}}"#, "a".repeat(40), "b".repeat(40));
    let next = format!(r#"{{"text":"{}é{}"}}"#, "a".repeat(40), "b".repeat(40));
    let raw = fossil::delta(base.as_bytes(), next.as_bytes());
    assert!(
        std::str::from_utf8(&raw).is_err(),
        "the case must split a character"
    );
    let j = client(Generation::V2, Encoding::Json, true, true, 1);
    let p = client(Generation::V2, Encoding::Protobuf, true, true, 1);
    for c in [&j, &p] {
        c.state.lock().subs.get_mut(CH).unwrap().delta_ready = true;
    }
    broadcast(&[&j, &p], &publication(2, &next, Some(&base)));
    let gj = got(&j);
    assert!(gj.delta && gj.string);
    assert!(std::str::from_utf8(&gj.data).is_ok());
    assert_eq!(
        fossil::apply(base.as_bytes(), &gj.data).unwrap(),
        next.as_bytes()
    );
    let gp = got(&p);
    assert_eq!((gp.data, gp.delta), (raw, true));

    // A base that is not text at all: JSON cannot carry a patch of it, so full; Protobuf patches.
    let mut bin = vec![0xffu8; 40];
    bin.extend_from_slice(b"tail-of-the-payload-0123456789");
    let mut bin2 = bin.clone();
    bin2.extend_from_slice(b"-more");
    let pbin = Publication {
        offset: 3,
        data: Bytes::from(bin2.clone()),
        prev_data: Some(Bytes::from(bin.clone())),
        ..Publication::default()
    };
    broadcast(&[&j, &p], &pbin);
    let gj = got(&j);
    assert!(!gj.delta && gj.string);
    let gp = got(&p);
    assert!(gp.delta);
    assert_eq!(fossil::apply(&bin, &gp.data).unwrap(), bin2);
}

#[test]
fn a_gap_or_a_duplicate_never_gets_a_patch() {
    let (d1, d2) = (doc(1), doc(2));
    let c = client(Generation::V2, Encoding::Json, true, true, 5);
    c.state.lock().subs.get_mut(CH).unwrap().delta_ready = true;
    // Offset 5 again (already held): dropped.
    broadcast(&[&c], &publication(5, &d2, Some(&d1)));
    assert!(take(&c).is_empty());
    // Offset 7 after 5: the position is lost (unsubscribe push), nothing patched.
    broadcast(&[&c], &publication(7, &d2, Some(&d1)));
    let msgs = take(&c);
    assert_eq!(msgs.len(), 1);
    let v: Value = serde_json::from_slice(&msgs[0]).unwrap();
    assert_eq!(v["push"]["unsubscribe"]["code"], 2500, "{v}");
}

#[test]
fn recovered_publications_are_chained_first_full() {
    let docs: Vec<String> = (1..=4).map(doc).collect();
    for e in [Encoding::Json, Encoding::Protobuf] {
        let mut pubs: Vec<Publication> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| publication(i as u64 + 1, d, None))
            .collect();
        // The last one unrelated and short: not worth a patch, stays full.
        pubs.push(publication(5, r#"{"z":1}"#, None));
        chain_recovered(&mut pubs, e);
        assert!(!pubs[0].delta);
        assert_eq!(&pubs[0].data[..], docs[0].as_bytes());
        let mut held = pubs[0].data.to_vec();
        for (i, p) in pubs.iter().enumerate().skip(1).take(3) {
            assert!(p.delta, "{e:?} {i}");
            held = fossil::apply(&held, &p.data).unwrap();
            assert_eq!(held, docs[i].as_bytes());
        }
        assert!(!pubs[4].delta);
        assert_eq!(&pubs[4].data[..], br#"{"z":1}"#);
    }
    // One publication: full; none: nothing to do.
    let mut one = vec![publication(1, &docs[0], None)];
    chain_recovered(&mut one, Encoding::Json);
    assert!(!one[0].delta);
    chain_recovered(&mut [], Encoding::Json);
}

#[test]
fn for_subscriber_patches_only_when_allowed() {
    let (d1, d2) = (doc(1), doc(2));
    let p = publication(2, &d2, Some(&d1));
    assert!(!for_subscriber(&p, false, Encoding::Json).delta);
    let patched = for_subscriber(&p, true, Encoding::Json);
    assert!(patched.delta && patched.prev_data.is_none());
    assert_eq!(
        fossil::apply(d1.as_bytes(), &patched.data).unwrap(),
        d2.as_bytes()
    );
    let unmarked = publication(2, &d2, None);
    assert!(!for_subscriber(&unmarked, true, Encoding::Protobuf).delta);
}

#[tokio::test]
async fn buffered_publications_follow_the_same_rules() {
    let node = crate::Node::new(crate::NodeConfig::default()).unwrap();
    let docs: Vec<String> = (1..=4).map(doc).collect();
    let c = Arc::new(client(Generation::V2, Encoding::Json, true, true, 1));
    // Subscribing: live publications 2..4 (marked) were buffered.
    c.state.lock().subs.get_mut(CH).unwrap().status = SubStatus::Subscribing(
        (1..4)
            .map(|i| publication(i as u64 + 1, &docs[i], Some(&docs[i - 1])))
            .collect(),
    );
    node.activate_subscription(&c, CH).await;
    let msgs = take(&c);
    assert_eq!(msgs.len(), 3);
    let got: Vec<Got> = msgs.iter().map(|m| decode(Encoding::Json, m)).collect();
    // 2 full (the subscriber held nothing), 3 and 4 patches; all as strings.
    assert!(!got[0].delta && got.iter().all(|g| g.string));
    assert_eq!(got[0].data, docs[1].as_bytes());
    let mut held = got[0].data.clone();
    for (i, g) in got.iter().enumerate().skip(1) {
        assert!(g.delta);
        held = fossil::apply(&held, &g.data).unwrap();
        assert_eq!(held, docs[i + 1].as_bytes());
    }
    assert!(ready(&c));
}
