//! The documents of the `delta` scenario and how a subscriber rebuilds them.
//!
//! [`DocGen`] writes a JSON document of a chosen size (an order with line items) in which only a
//! few fields change from one publication to the next: the publisher's counter, the send time
//! (latency) and two short values. Every publisher writes the same static part, so consecutive
//! publications of a channel differ in a few dozen bytes whoever sent them.
//!
//! [`Rebuild`] is one subscriber's side, as a real client does it: a publication's data is the
//! full document or, when it is marked `delta`, a Fossil patch against the previous document of
//! the subscription (applied with `rotor_protocol::fossil`). On JSON a delta subscription carries
//! every `data` as a JSON string; a server that ignored the delta request embeds the raw JSON
//! document; both are accepted. Each rebuilt document must parse and carry the next counter of
//! its publisher; anything else is counted as an error (bad patch, bad document, wrong counter).

use prost::Message as _;
use rotor_protocol::fossil;
use rotor_protocol::protobuf::{split_frame, v2};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::proto::push_uint;

/// Largest document a patch may declare (the bench's documents are a few KB).
const MAX_DOC: usize = 16 << 20;

/// Publisher numbers accepted in a document (a larger one is a bad document).
const MAX_PUBLISHERS: u64 = 4096;

/// Room left for the changing head of a document when sizing its static part.
const HEAD_MAX: usize = 128;

const STATES: [&str; 5] = ["new", "paid", "packed", "shipped", "delivered"];

/// Writes the scenario's documents: `{"rb":[publisher,seq,ts_ns],"state":..,"total":..,
/// "order":{..static..},"pad":"x.."}`, padded to the requested size when it can be.
pub struct DocGen {
    order: Vec<u8>,
    size: usize,
}

impl DocGen {
    pub fn new(size: usize) -> Self {
        let mut order = Vec::with_capacity(size);
        order.extend_from_slice(
            br#"{"id":"ORD-2026-004217","customer":{"name":"Ada Lovelace","email":"ada@example.com","city":"London","tier":"gold"},"currency":"EUR","items":["#,
        );
        let mut i = 0usize;
        loop {
            let item = format!(
                r#"{{"sku":"SKU-{:05}","name":"Item number {}","qty":{},"unit":"{}.{:02}","tags":["stock","eu"]}}"#,
                1000 + i * 37,
                i + 1,
                1 + i % 7,
                3 + i % 20,
                (i * 13) % 100
            );
            if i > 0 && order.len() + item.len() + 3 + HEAD_MAX > size {
                break;
            }
            if i > 0 {
                order.push(b',');
            }
            order.extend_from_slice(item.as_bytes());
            i += 1;
        }
        order.extend_from_slice(b"]}");
        Self { order, size }
    }

    /// Appends publisher `publisher`'s document number `seq`, sent at `ts_ns`.
    pub fn write(&self, out: &mut Vec<u8>, publisher: usize, seq: u64, ts_ns: u64) {
        let start = out.len();
        out.extend_from_slice(b"{\"rb\":[");
        push_uint(out, publisher as u64);
        out.push(b',');
        push_uint(out, seq);
        out.push(b',');
        push_uint(out, ts_ns);
        out.extend_from_slice(b"],\"state\":\"");
        out.extend_from_slice(STATES[(seq % STATES.len() as u64) as usize].as_bytes());
        out.extend_from_slice(b"\",\"total\":\"");
        let cents = seq.wrapping_mul(7919) % 100_000;
        push_uint(out, 100 + cents / 100);
        out.push(b'.');
        out.push(b'0' + (cents % 100 / 10) as u8);
        out.push(b'0' + (cents % 10) as u8);
        out.extend_from_slice(b"\",\"order\":");
        out.extend_from_slice(&self.order);
        out.extend_from_slice(b",\"pad\":\"");
        let used = out.len() - start + 2;
        out.extend(std::iter::repeat_n(b'x', self.size.saturating_sub(used)));
        out.extend_from_slice(b"\"}");
    }
}

/// The fields a subscriber checks in a rebuilt document (the rest is parsed and skipped).
#[derive(Deserialize)]
struct DocView {
    rb: (u64, u64, u64),
}

/// How a publication's data arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Raw JSON embedded in the frame (a plain subscription).
    Raw,
    /// A JSON string holding the payload bytes (a JSON delta subscription).
    Str,
    /// Protobuf bytes.
    Binary,
}

/// One connection's counts since they were last taken.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Publication pushes received.
    pub pubs: u64,
    /// Documents rebuilt, parsed, with the expected counter.
    pub good: u64,
    pub patches: u64,
    pub full_raw: u64,
    pub full_str: u64,
    pub full_bin: u64,
    pub bad_patch: u64,
    pub bad_doc: u64,
    pub bad_seq: u64,
    pub pings: u64,
}

/// What one message line or Protobuf reply was.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A server ping (answer with a pong).
    Ping,
    /// A publication; the send time when its document was good.
    Pub(Option<u64>),
    /// The server unsubscribed or disconnected us (the reason).
    Gone(String),
    /// A reply or another push.
    Other,
}

/// One subscriber's document state.
#[derive(Default)]
pub struct Rebuild {
    /// The last document: the base of the next patch.
    prev: Option<Vec<u8>>,
    /// Last counter seen per publisher.
    last_seq: Vec<u64>,
    pub tally: Tally,
    pub first_err: Option<String>,
}

#[derive(Deserialize)]
struct JLine<'a> {
    #[serde(borrow, default)]
    push: Option<JPush<'a>>,
}

#[derive(Deserialize)]
struct JPush<'a> {
    #[serde(borrow, rename = "pub", default)]
    publication: Option<JPub<'a>>,
    #[serde(default)]
    unsubscribe: Option<IgnoredAny>,
    #[serde(default)]
    disconnect: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct JPub<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    delta: bool,
}

impl Rebuild {
    fn error(&mut self, e: String) {
        if self.first_err.is_none() {
            self.first_err = Some(e);
        }
    }

    /// One publication: rebuild, parse, check the counter; the send time when all is well.
    pub fn publication(&mut self, data: &[u8], delta: bool, form: Form) -> Option<u64> {
        self.tally.pubs += 1;
        let doc = if delta {
            self.tally.patches += 1;
            let Some(base) = self.prev.take() else {
                self.tally.bad_patch += 1;
                self.error("a patch with no previous document".into());
                return None;
            };
            match fossil::apply_limited(&base, data, MAX_DOC) {
                Ok(d) => d,
                Err(e) => {
                    // The base is lost: the following patches fail too, as in a real client.
                    self.tally.bad_patch += 1;
                    self.error(format!("patch: {e}"));
                    return None;
                }
            }
        } else {
            match form {
                Form::Raw => self.tally.full_raw += 1,
                Form::Str => self.tally.full_str += 1,
                Form::Binary => self.tally.full_bin += 1,
            }
            data.to_vec()
        };
        let view = serde_json::from_slice::<DocView>(&doc);
        // The next patch is against these bytes, whatever they hold.
        self.prev = Some(doc);
        let (p, seq, ts) = match view {
            Ok(v) if v.rb.0 < MAX_PUBLISHERS => v.rb,
            Ok(v) => {
                self.tally.bad_doc += 1;
                self.error(format!("publisher {} out of range", v.rb.0));
                return None;
            }
            Err(e) => {
                self.tally.bad_doc += 1;
                self.error(format!("document: {e}"));
                return None;
            }
        };
        let p = p as usize;
        if self.last_seq.len() <= p {
            self.last_seq.resize(p + 1, 0);
        }
        let want = self.last_seq[p] + 1;
        self.last_seq[p] = seq;
        if seq != want {
            self.tally.bad_seq += 1;
            self.error(format!("publisher {p}: counter {seq}, expected {want}"));
            return None;
        }
        self.tally.good += 1;
        Some(ts)
    }

    /// One JSON line of a v2 connection.
    pub fn json_line(&mut self, line: &[u8]) -> Event {
        let line = line.trim_ascii();
        if line == b"{}" {
            self.tally.pings += 1;
            return Event::Ping;
        }
        if line.is_empty() {
            return Event::Other;
        }
        let parsed = match serde_json::from_slice::<JLine<'_>>(line) {
            Ok(l) => l,
            Err(e) => {
                self.tally.bad_doc += 1;
                self.error(format!("frame: {e}"));
                return Event::Other;
            }
        };
        let Some(push) = parsed.push else {
            return Event::Other;
        };
        if push.unsubscribe.is_some() || push.disconnect.is_some() {
            return Event::Gone(String::from_utf8_lossy(line).into_owned());
        }
        let Some(p) = push.publication else {
            return Event::Other;
        };
        let raw = p.data.map_or("null", |d| d.get());
        if raw.starts_with('"') {
            match serde_json::from_str::<String>(raw) {
                Ok(s) => Event::Pub(self.publication(s.as_bytes(), p.delta, Form::Str)),
                Err(e) => {
                    self.tally.pubs += 1;
                    self.tally.bad_doc += 1;
                    self.error(format!("data string: {e}"));
                    Event::Pub(None)
                }
            }
        } else {
            Event::Pub(self.publication(raw.as_bytes(), p.delta, Form::Raw))
        }
    }

    /// Every line of one JSON WebSocket message.
    pub fn json_message(&mut self, msg: &[u8], mut f: impl FnMut(Event)) {
        for line in msg.split(|b| *b == b'\n') {
            f(self.json_line(line));
        }
    }

    /// Every reply of one Protobuf WebSocket message.
    pub fn proto_message(&mut self, msg: &[u8], mut f: impl FnMut(Event)) {
        for frame in split_frame(msg) {
            let ev = match frame {
                Ok([]) => {
                    self.tally.pings += 1;
                    Event::Ping
                }
                Ok(b) => match v2::Reply::decode(b) {
                    Ok(r) => match r.push {
                        Some(push) if push.unsubscribe.is_some() || push.disconnect.is_some() => {
                            Event::Gone(format!("{push:?}"))
                        }
                        Some(v2::Push { r#pub: Some(p), .. }) => {
                            Event::Pub(self.publication(&p.data, p.delta, Form::Binary))
                        }
                        _ => Event::Other,
                    },
                    Err(e) => {
                        self.tally.bad_doc += 1;
                        self.error(format!("reply: {e}"));
                        Event::Other
                    }
                },
                Err(e) => {
                    self.tally.bad_doc += 1;
                    self.error(format!("framing: {e}"));
                    Event::Other
                }
            };
            f(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn doc(g: &DocGen, p: usize, seq: u64) -> Vec<u8> {
        let mut d = Vec::new();
        g.write(&mut d, p, seq, 1_700_000_000_000_000_000 + seq);
        d
    }

    fn json_push(data_json: &str, delta: bool, offset: u64) -> String {
        format!(
            r#"{{"push":{{"channel":"delta:rb","pub":{{"data":{data_json},"offset":{offset}{}}}}}}}"#,
            if delta { r#","delta":true"# } else { "" }
        )
    }

    fn json_string(b: &[u8]) -> String {
        serde_json::to_string(std::str::from_utf8(b).unwrap()).unwrap()
    }

    #[test]
    fn documents_have_the_size_parse_and_differ_in_a_few_bytes() {
        for size in [2048usize, 700, 8192] {
            let g = DocGen::new(size);
            let a = doc(&g, 3, 41);
            let b = doc(&g, 3, 42);
            assert_eq!(a.len(), size, "{}", String::from_utf8_lossy(&a));
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["rb"][1], 42);
            assert!(v["order"]["items"].as_array().unwrap().len() > 1);
            // Fossil turns one into the next with a patch far smaller than the document.
            let patch = fossil::delta(&a, &b);
            assert!(patch.len() * 5 < b.len(), "patch {} bytes", patch.len());
            assert_eq!(fossil::apply(&a, &patch).unwrap(), b);
        }
        // Too small to pad: still valid JSON.
        let tiny = doc(&DocGen::new(10), 0, 1);
        assert!(serde_json::from_slice::<serde_json::Value>(&tiny).is_ok());
    }

    /// A JSON delta subscription: the first publication full in a JSON string, then patches
    /// from two publishers interleaved; then what a server that ignored the request sends.
    #[test]
    fn json_full_then_patches_then_raw() {
        let g = DocGen::new(2048);
        let mut r = Rebuild::default();
        let order = [(0usize, 1u64), (1, 1), (0, 2), (0, 3), (1, 2)];
        let mut prev: Option<Vec<u8>> = None;
        let mut msg = String::new();
        for (k, (p, seq)) in order.iter().enumerate() {
            let d = doc(&g, *p, *seq);
            let line = match &prev {
                None => json_push(&json_string(&d), false, k as u64 + 1),
                Some(b) => {
                    let patch = fossil::delta_utf8_safe(b, &d).unwrap();
                    json_push(&json_string(&patch), true, k as u64 + 1)
                }
            };
            msg.push_str(&line);
            msg.push('\n');
            prev = Some(d);
        }
        msg.push_str("{}");
        let mut evs = Vec::new();
        r.json_message(msg.as_bytes(), |e| evs.push(e));
        assert_eq!(evs.len(), 6);
        assert_eq!(
            evs[0],
            Event::Pub(Some(1_700_000_000_000_000_001)),
            "{:?}",
            r.first_err
        );
        assert_eq!(evs[5], Event::Ping);
        assert_eq!(r.tally.good, 5, "{:?}", r.first_err);
        assert_eq!((r.tally.patches, r.tally.full_str), (4, 1));
        assert_eq!(r.tally.bad_patch + r.tally.bad_doc + r.tally.bad_seq, 0);

        // Plain data (raw JSON) continues the counters; then a gap and a broken patch count.
        let raw = String::from_utf8(doc(&g, 1, 3)).unwrap();
        assert!(matches!(
            r.json_line(json_push(&raw, false, 6).as_bytes()),
            Event::Pub(Some(_))
        ));
        let gap = String::from_utf8(doc(&g, 1, 5)).unwrap();
        assert_eq!(
            r.json_line(json_push(&gap, false, 7).as_bytes()),
            Event::Pub(None)
        );
        assert_eq!(r.tally.bad_seq, 1);
        assert_eq!(r.tally.full_raw, 2);
        let good = fossil::delta(&doc(&g, 1, 5), &doc(&g, 1, 6));
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 2] ^= 1; // the checksum
        let bad = json_push(&json_string(&bad), true, 8);
        assert_eq!(r.json_line(bad.as_bytes()), Event::Pub(None));
        assert_eq!(r.tally.bad_patch, 1);
        // The base is gone: even a correct patch fails now.
        let next = json_push(&json_string(&good), true, 9);
        assert_eq!(r.json_line(next.as_bytes()), Event::Pub(None));
        assert_eq!(r.tally.bad_patch, 2);
        assert!(r
            .first_err
            .as_deref()
            .unwrap()
            .contains("counter 5, expected 4"));
        let unsub = br#"{"push":{"channel":"delta:rb","unsubscribe":{"code":2500}}}"#;
        assert!(matches!(r.json_line(unsub), Event::Gone(_)));
    }

    #[test]
    fn protobuf_full_then_patch() {
        let g = DocGen::new(2048);
        let (a, b) = (doc(&g, 0, 1), doc(&g, 0, 2));
        let mut msg = Vec::new();
        for (data, delta) in [(a.clone(), false), (fossil::delta(&a, &b), true)] {
            let reply = v2::Reply {
                push: Some(v2::Push {
                    channel: "delta:rb".into(),
                    r#pub: Some(v2::Publication {
                        data: Bytes::from(data),
                        delta,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            reply.encode_length_delimited(&mut msg).unwrap();
        }
        msg.push(0); // a ping
        let mut r = Rebuild::default();
        let mut evs = Vec::new();
        r.proto_message(&msg, |e| evs.push(e));
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[1], Event::Pub(Some(1_700_000_000_000_000_002)));
        assert_eq!(evs[2], Event::Ping);
        assert_eq!((r.tally.good, r.tally.full_bin, r.tally.patches), (2, 1, 1));
    }
}
