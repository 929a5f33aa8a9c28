//! The wire forms of Fossil delta subscriptions (CHANNELS-MODERN.md §1.3, §1.4): on JSON every
//! publication's `data` is a JSON string of the raw bytes and a patch carries `"delta":true`; on
//! Protobuf the bytes are raw and a patch sets field 8; v1 never sees any of it.

use bytes::Bytes;
use prost::Message as _;

use super::*;
use crate::fossil;
use crate::reply::{ReplyBody, SubscribeResult};
use crate::types::Publication;

fn v2(encoding: Encoding) -> Encoder {
    Encoder::new(Generation::V2, encoding, PositionFormat::Offset)
}

fn publication(data: &'static [u8], offset: u64, delta: bool) -> Publication {
    Publication {
        data: Bytes::from_static(data),
        offset,
        delta,
        ..Publication::default()
    }
}

fn json_push(e: Encoder, push: &Push<'_>) -> String {
    let mut buf = Vec::new();
    e.push(&mut buf, push);
    String::from_utf8(buf).unwrap()
}

#[test]
fn json_delta_publication_carries_data_as_a_string() {
    let full = publication(br#"{"t":"a\"b","n":1}"#, 5, false);
    let s = json_push(
        v2(Encoding::Json),
        &Push::DeltaPublication {
            channel: "d:1",
            publication: &full,
        },
    );
    assert_eq!(
        s,
        "{\"push\":{\"channel\":\"d:1\",\"pub\":{\"data\":\"{\\\"t\\\":\\\"a\\\\\\\"b\\\",\\\"n\\\":1}\",\"offset\":5}}}\n"
    );
    // What centrifuge-js does with it: JSON.parse(pub.data).
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    let inner: serde_json::Value =
        serde_json::from_str(v["push"]["pub"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(inner, serde_json::json!({"t": "a\"b", "n": 1}));
    assert!(v["push"]["pub"].get("delta").is_none());

    // The same publication to a subscriber without delta: raw JSON, as before.
    let plain = json_push(
        v2(Encoding::Json),
        &Push::Publication {
            channel: "d:1",
            publication: &full,
        },
    );
    assert_eq!(
        plain,
        "{\"push\":{\"channel\":\"d:1\",\"pub\":{\"data\":{\"t\":\"a\\\"b\",\"n\":1},\"offset\":5}}}\n"
    );
}

#[test]
fn json_patch_is_a_string_marked_delta_that_applies_to_the_held_bytes() {
    let base =
        "{\"text\":\"Привет, мир — 你好世界 🎉🎉\",\"n\":1,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}";
    let next =
        "{\"text\":\"Привет, мар — 你好世界 🎊🎉\",\"n\":2,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}";
    let patch = fossil::delta_utf8_safe(base.as_bytes(), next.as_bytes()).unwrap();
    let p = Publication {
        data: Bytes::from(patch.clone()),
        offset: 6,
        delta: true,
        ..Publication::default()
    };
    let s = json_push(
        v2(Encoding::Json),
        &Push::DeltaPublication {
            channel: "d:1",
            publication: &p,
        },
    );
    assert!(s.ends_with(",\"offset\":6,\"delta\":true}}}\n"), "{s}");
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    let wire = v["push"]["pub"]["data"].as_str().unwrap();
    // TextEncoder(pub.data) gives back the patch bytes exactly, and they rebuild `next`.
    assert_eq!(wire.as_bytes(), &patch[..]);
    let rebuilt = fossil::apply(base.as_bytes(), wire.as_bytes()).unwrap();
    assert_eq!(rebuilt, next.as_bytes());
}

#[test]
fn json_data_that_is_not_text_goes_as_a_lossy_string_not_a_broken_frame() {
    let p = publication(&[b'{', 0xff, b'}'], 1, false);
    let s = json_push(
        v2(Encoding::Json),
        &Push::DeltaPublication {
            channel: "c",
            publication: &p,
        },
    );
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    assert_eq!(v["push"]["pub"]["data"], "{\u{fffd}}");
}

#[test]
fn json_subscribe_result_with_delta_has_string_data_and_the_flag() {
    let r = SubscribeResult {
        recoverable: true,
        epoch: "e".into(),
        offset: 3,
        publications: vec![
            publication(br#"{"n":2}"#, 2, false),
            publication(b"7\nPATCH;", 3, true),
        ],
        recovered: true,
        was_recovering: true,
        delta: true,
        ..Default::default()
    };
    let mut buf = Vec::new();
    v2(Encoding::Json).reply(&mut buf, 4, &Ok(ReplyBody::Subscribe(r.clone())));
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "{\"id\":4,\"subscribe\":{\"recoverable\":true,\"epoch\":\"e\",\"publications\":[{\"data\":\"{\\\"n\\\":2}\",\"offset\":2},{\"data\":\"7\\nPATCH;\",\"offset\":3,\"delta\":true}],\"recovered\":true,\"offset\":3,\"was_recovering\":true,\"delta\":true}}\n"
    );
    // Without delta the recovered data stay raw JSON and no flag appears.
    let plain = SubscribeResult {
        delta: false,
        publications: vec![publication(br#"{"n":2}"#, 2, false)],
        ..r.clone()
    };
    let mut buf = Vec::new();
    v2(Encoding::Json).reply(&mut buf, 4, &Ok(ReplyBody::Subscribe(plain)));
    let s = String::from_utf8(buf).unwrap();
    assert!(
        s.contains("\"publications\":[{\"data\":{\"n\":2},\"offset\":2}]"),
        "{s}"
    );
    assert!(!s.contains("delta"), "{s}");
    // v1 has no delta field at all, and raw data.
    let mut buf = Vec::new();
    Encoder::new(Generation::V1, Encoding::Json, PositionFormat::Offset).reply(
        &mut buf,
        4,
        &Ok(ReplyBody::Subscribe(r)),
    );
    let s = String::from_utf8(buf).unwrap();
    assert!(
        !s.contains("delta") && s.contains("{\"data\":{\"n\":2}"),
        "{s}"
    );
}

#[test]
fn protobuf_delta_publication_is_raw_bytes_with_field_8() {
    let e = v2(Encoding::Protobuf);
    let full = publication(br#"{"n":1}"#, 5, false);
    let patch = publication(b"7\n3@0,4:ABCD2Nn;", 6, true);
    let mut a = Vec::new();
    e.push(
        &mut a,
        &Push::DeltaPublication {
            channel: "d:1",
            publication: &full,
        },
    );
    let mut b = Vec::new();
    e.push(
        &mut b,
        &Push::Publication {
            channel: "d:1",
            publication: &full,
        },
    );
    // Full data to a delta subscriber is byte for byte the normal push.
    assert_eq!(a, b);
    let mut buf = Vec::new();
    e.push(
        &mut buf,
        &Push::DeltaPublication {
            channel: "d:1",
            publication: &patch,
        },
    );
    let frames: Vec<_> = crate::protobuf::split_frame(&buf)
        .collect::<Result<_, _>>()
        .unwrap();
    let reply = crate::protobuf::v2::Reply::decode(frames[0]).unwrap();
    let push = reply.push.unwrap();
    let p = push.r#pub.unwrap();
    assert_eq!(push.channel, "d:1");
    assert!(p.delta);
    assert_eq!((&p.data[..], p.offset), (&b"7\n3@0,4:ABCD2Nn;"[..], 6));

    // A subscribe result says delta (field 13); its publications keep raw bytes.
    let r = SubscribeResult {
        recoverable: true,
        offset: 6,
        publications: vec![full.clone(), patch.clone()],
        recovered: true,
        delta: true,
        ..Default::default()
    };
    let mut buf = Vec::new();
    e.reply(&mut buf, 2, &Ok(ReplyBody::Subscribe(r.clone())));
    let frames: Vec<_> = crate::protobuf::split_frame(&buf)
        .collect::<Result<_, _>>()
        .unwrap();
    let s = crate::protobuf::v2::Reply::decode(frames[0])
        .unwrap()
        .subscribe
        .unwrap();
    assert!(s.delta);
    assert_eq!(&s.publications[0].data[..], br#"{"n":1}"#);
    assert!(!s.publications[0].delta && s.publications[1].delta);

    // v1 Protobuf: no delta field even when set; bytes as a plain publication's.
    let v1 = Encoder::new(Generation::V1, Encoding::Protobuf, PositionFormat::Offset);
    let mut marked = Vec::new();
    v1.push(
        &mut marked,
        &Push::DeltaPublication {
            channel: "d:1",
            publication: &patch,
        },
    );
    let unmarked = Publication {
        delta: false,
        ..patch
    };
    let mut plain = Vec::new();
    v1.push(
        &mut plain,
        &Push::Publication {
            channel: "d:1",
            publication: &unmarked,
        },
    );
    assert_eq!(marked, plain);
}

#[test]
fn v1_json_delta_publication_is_plain() {
    let p = publication(br#"{"n":1}"#, 0, true);
    let s = json_push(
        Encoder::new(Generation::V1, Encoding::Json, PositionFormat::SeqGen),
        &Push::DeltaPublication {
            channel: "c",
            publication: &p,
        },
    );
    assert_eq!(
        s,
        "{\"result\":{\"channel\":\"c\",\"data\":{\"data\":{\"n\":1}}}}\n"
    );
}

#[test]
fn a_stray_delta_flag_never_reaches_a_plain_subscriber() {
    // Publication.delta set where it should not be (an engine bug): plain pushes, history and a
    // subscribe result without delta still carry no flag, in both encodings.
    let p = publication(br#"{"n":1}"#, 3, true);
    let s = json_push(
        v2(Encoding::Json),
        &Push::Publication {
            channel: "c",
            publication: &p,
        },
    );
    assert!(!s.contains("delta"), "{s}");
    let r = SubscribeResult {
        recoverable: true,
        offset: 3,
        publications: vec![p.clone()],
        recovered: true,
        ..Default::default()
    };
    let h = crate::reply::HistoryResult {
        publications: vec![p.clone()],
        epoch: "e".into(),
        offset: 3,
    };
    for body in [ReplyBody::Subscribe(r), ReplyBody::History(h)] {
        let mut buf = Vec::new();
        v2(Encoding::Json).reply(&mut buf, 1, &Ok(body.clone()));
        let s = String::from_utf8(buf).unwrap();
        assert!(!s.contains("delta"), "{s}");
        let mut buf = Vec::new();
        v2(Encoding::Protobuf).reply(&mut buf, 1, &Ok(body));
        let frames: Vec<_> = crate::protobuf::split_frame(&buf)
            .collect::<Result<_, _>>()
            .unwrap();
        let reply = crate::protobuf::v2::Reply::decode(frames[0]).unwrap();
        let pubs = match (reply.subscribe, reply.history) {
            (Some(s), None) => s.publications,
            (None, Some(h)) => h.publications,
            other => panic!("{other:?}"),
        };
        assert!(!pubs[0].delta);
    }
    let mut buf = Vec::new();
    v2(Encoding::Protobuf).push(
        &mut buf,
        &Push::Publication {
            channel: "c",
            publication: &p,
        },
    );
    let frames: Vec<_> = crate::protobuf::split_frame(&buf)
        .collect::<Result<_, _>>()
        .unwrap();
    let reply = crate::protobuf::v2::Reply::decode(frames[0]).unwrap();
    assert!(!reply.push.unwrap().r#pub.unwrap().delta);
}
