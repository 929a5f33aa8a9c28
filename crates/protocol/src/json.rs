//! JSON encoding of replies and pushes for both generations.
//!
//! Written by hand rather than through serde structs: key order and `omitempty` follow the Go
//! reference exactly, raw payloads are copied as bytes, and one output buffer is reused. Every
//! encoded message ends with `\n`, so messages can be concatenated into one WebSocket frame.

use std::io::Write;

use crate::codes::ErrorCode;
use crate::reply::{
    ConnectResult, HistoryResult, Push, RefreshResult, ReplyBody, ReplyOutcome, SubscribeResult,
};
use crate::types::{seq_gen, ClientInfo, PositionFormat, Publication};
use crate::Generation;

/// Encodes for one (generation, position format) pair; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonEncoder {
    pub generation: Generation,
    /// Applies to v1 only; v2 always uses offsets.
    pub positions: PositionFormat,
}

/// A JSON object being written: tracks whether a comma is needed.
struct Obj<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(buf: &'a mut Vec<u8>) -> Self {
        buf.push(b'{');
        Obj { buf, first: true }
    }
    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.buf
    }
    fn str(&mut self, k: &str, v: &str) {
        let b = self.key(k);
        write_str(b, v);
    }
    fn str_nonempty(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.str(k, v);
        }
    }
    fn num(&mut self, k: &str, v: u64) {
        let b = self.key(k);
        let _ = write!(b, "{v}");
    }
    fn num_nonzero(&mut self, k: &str, v: u64) {
        if v != 0 {
            self.num(k, v);
        }
    }
    fn bool_true(&mut self, k: &str, v: bool) {
        if v {
            self.key(k).extend_from_slice(b"true");
        }
    }
    fn raw(&mut self, k: &str, v: &[u8]) {
        self.key(k).extend_from_slice(v);
    }
    fn raw_opt(&mut self, k: &str, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.raw(k, v);
        }
    }
    fn close(self) {
        self.buf.push(b'}');
    }
}

/// Writes `s` as a JSON string literal.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct and fast; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

impl JsonEncoder {
    pub fn new(generation: Generation, positions: PositionFormat) -> Self {
        Self {
            generation,
            positions,
        }
    }

    fn seq_mode(&self) -> bool {
        self.generation == Generation::V1 && self.positions == PositionFormat::SeqGen
    }

    /// Appends one reply (and its trailing newline) to `buf`.
    pub fn reply(&self, buf: &mut Vec<u8>, id: u32, outcome: &ReplyOutcome) {
        let mut o = Obj::open(buf);
        o.num_nonzero("id", u64::from(id));
        match outcome {
            Err(e) => {
                let b = o.key("error");
                self.error(b, e);
            }
            Ok(body) => self.body(&mut o, body),
        }
        o.close();
        buf.push(b'\n');
    }

    fn error(&self, buf: &mut Vec<u8>, e: &ErrorCode) {
        let mut o = Obj::open(buf);
        o.num("code", u64::from(e.code));
        o.str("message", &e.message);
        if self.generation == Generation::V2 {
            o.bool_true("temporary", e.temporary());
        }
        o.close();
    }

    fn body(&self, o: &mut Obj<'_>, body: &ReplyBody) {
        let v2 = self.generation == Generation::V2;
        // v1 puts every result under "result"; v2 names it after the command.
        let key = |v2_name: &'static str| if v2 { v2_name } else { "result" };
        match body {
            ReplyBody::Ping => {
                if v2 {
                    o.raw("ping", b"{}");
                }
            }
            ReplyBody::Unsubscribe => o.raw(key("unsubscribe"), b"{}"),
            ReplyBody::Publish => o.raw(key("publish"), b"{}"),
            ReplyBody::Connect(r) => {
                let b = o.key(key("connect"));
                self.connect(b, r);
            }
            ReplyBody::Subscribe(r) => {
                let b = o.key(key("subscribe"));
                self.subscribe(b, r);
            }
            ReplyBody::Presence(clients) => {
                let b = o.key(key("presence"));
                let mut r = Obj::open(b);
                let pb = r.key("presence");
                let mut p = Obj::open(pb);
                for c in clients {
                    let cb = p.key(&escape_key(&c.client));
                    client_info(cb, c);
                }
                p.close();
                r.close();
            }
            ReplyBody::PresenceStats {
                num_clients,
                num_users,
            } => {
                let b = o.key(key("presence_stats"));
                let mut r = Obj::open(b);
                r.num("num_clients", u64::from(*num_clients));
                r.num("num_users", u64::from(*num_users));
                r.close();
            }
            ReplyBody::History(h) => {
                let b = o.key(key("history"));
                self.history(b, h);
            }
            ReplyBody::Rpc(data) => {
                let b = o.key(key("rpc"));
                let mut r = Obj::open(b);
                r.raw_opt("data", data.as_deref());
                r.close();
            }
            ReplyBody::Refresh(r) => {
                let b = o.key(key("refresh"));
                self.refresh(b, r);
            }
            ReplyBody::SubRefresh { expires, ttl } => {
                let b = o.key(key("sub_refresh"));
                let mut r = Obj::open(b);
                r.bool_true("expires", *expires);
                r.num_nonzero("ttl", u64::from(*ttl));
                r.close();
            }
        }
    }

    fn connect(&self, buf: &mut Vec<u8>, r: &ConnectResult) {
        let mut o = Obj::open(buf);
        o.str("client", &r.client);
        o.str("version", &r.version);
        o.bool_true("expires", r.expires);
        o.num_nonzero("ttl", u64::from(r.ttl));
        o.raw_opt("data", r.data.as_deref());
        if !r.subs.is_empty() {
            let b = o.key("subs");
            let mut s = Obj::open(b);
            for (ch, sr) in &r.subs {
                let sb = s.key(&escape_key(ch));
                self.subscribe(sb, sr);
            }
            s.close();
        }
        if self.generation == Generation::V2 {
            o.num_nonzero("ping", u64::from(r.ping));
            o.bool_true("pong", r.pong);
            o.str_nonempty("session", &r.session);
            o.str_nonempty("node", &r.node);
        }
        o.close();
    }

    fn position(&self, o: &mut Obj<'_>, offset: u64) {
        if self.seq_mode() {
            let (seq, gen) = seq_gen(offset);
            o.num_nonzero("seq", u64::from(seq));
            o.num_nonzero("gen", u64::from(gen));
        }
    }

    fn subscribe(&self, buf: &mut Vec<u8>, r: &SubscribeResult) {
        let mut o = Obj::open(buf);
        o.bool_true("expires", r.expires);
        o.num_nonzero("ttl", u64::from(r.ttl));
        o.bool_true("recoverable", r.recoverable);
        if r.recoverable {
            self.position(&mut o, r.offset);
        }
        o.str_nonempty("epoch", &r.epoch);
        if !r.publications.is_empty() {
            let b = o.key("publications");
            // A delta subscription (v2 only) gets every recovered data as a JSON string.
            let delta_form = r.delta && self.generation == Generation::V2;
            if self.seq_mode() {
                self.publications_as(b, r.publications.iter().rev(), delta_form);
            } else {
                self.publications_as(b, r.publications.iter(), delta_form);
            }
        }
        o.bool_true("recovered", r.recovered);
        let v2 = self.generation == Generation::V2;
        if !self.seq_mode() && (r.recoverable || (v2 && r.positioned)) {
            o.num_nonzero("offset", r.offset);
        }
        if v2 {
            o.bool_true("positioned", r.positioned);
            o.bool_true("was_recovering", r.was_recovering);
            o.raw_opt("data", r.data.as_deref());
            o.bool_true("delta", r.delta);
        }
        o.close();
    }

    fn history(&self, buf: &mut Vec<u8>, h: &HistoryResult) {
        let mut o = Obj::open(buf);
        let b = o.key("publications");
        self.publications(b, h.publications.iter());
        if self.generation == Generation::V2 {
            o.str_nonempty("epoch", &h.epoch);
            o.num_nonzero("offset", h.offset);
        }
        o.close();
    }

    fn refresh(&self, buf: &mut Vec<u8>, r: &RefreshResult) {
        let mut o = Obj::open(buf);
        if self.generation == Generation::V1 {
            o.str("client", &r.client);
            o.str("version", &r.version);
        }
        o.bool_true("expires", r.expires);
        o.num_nonzero("ttl", u64::from(r.ttl));
        o.close();
    }

    fn publications<'p>(&self, buf: &mut Vec<u8>, pubs: impl Iterator<Item = &'p Publication>) {
        self.publications_as(buf, pubs, false);
    }

    fn publications_as<'p>(
        &self,
        buf: &mut Vec<u8>,
        pubs: impl Iterator<Item = &'p Publication>,
        delta_form: bool,
    ) {
        buf.push(b'[');
        for (i, p) in pubs.enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            self.publication_as(buf, p, delta_form);
        }
        buf.push(b']');
    }

    /// Writes a publication object (no newline).
    pub fn publication(&self, buf: &mut Vec<u8>, p: &Publication) {
        self.publication_as(buf, p, false);
    }

    /// Writes a publication object. `delta_form` (delta subscriptions): `data` as a JSON string of
    /// the raw bytes and `delta` when it is a patch; else `data` as the raw JSON it is, and never
    /// a `delta` flag (a subscriber that did not negotiate deltas cannot apply a patch).
    fn publication_as(&self, buf: &mut Vec<u8>, p: &Publication, delta_form: bool) {
        let mut o = Obj::open(buf);
        self.position(&mut o, p.offset);
        let b = o.key("data");
        if delta_form {
            write_bytes_str(b, &p.data);
        } else {
            write_payload(b, &p.data);
        }
        if let Some(info) = &p.info {
            let b = o.key("info");
            client_info(b, info);
        }
        if !self.seq_mode() {
            o.num_nonzero("offset", p.offset);
        }
        if let (Generation::V2, Some(tags)) = (self.generation, &p.tags) {
            if !tags.is_empty() {
                // Keys come from the publisher: escaped, unlike the encoder's own keys.
                let b = o.key("tags");
                b.push(b'{');
                for (i, (k, v)) in tags.iter().enumerate() {
                    if i > 0 {
                        b.push(b',');
                    }
                    write_str(b, k);
                    b.push(b':');
                    write_str(b, v);
                }
                b.push(b'}');
            }
        }
        if delta_form {
            o.bool_true("delta", p.delta);
        }
        o.close();
    }

    /// Appends one push (and its trailing newline) to `buf`.
    pub fn push(&self, buf: &mut Vec<u8>, push: &Push<'_>) {
        match self.generation {
            // v1 has no connect or disconnect push (its transports close with a frame).
            Generation::V1 if push.is_v2_only() => return,
            Generation::V1 => self.push_v1(buf, push),
            Generation::V2 => self.push_v2(buf, push),
        }
        buf.push(b'\n');
    }

    fn push_v1(&self, buf: &mut Vec<u8>, push: &Push<'_>) {
        let (ty, channel) = match push {
            // v1 never negotiates deltas: a delta publication goes as a plain one.
            Push::Publication { channel, .. } | Push::DeltaPublication { channel, .. } => {
                (0, *channel)
            }
            Push::Join { channel, .. } => (1, *channel),
            Push::Leave { channel, .. } => (2, *channel),
            Push::Unsubscribe { channel, .. } => (3, *channel),
            Push::Message { .. } => (4, ""),
            Push::Subscribe { channel, .. } => (5, *channel),
            Push::Connect(_) | Push::Disconnect { .. } | Push::Refresh { .. } => return,
        };
        let mut outer = Obj::open(buf);
        let rb = outer.key("result");
        let mut o = Obj::open(rb);
        o.num_nonzero("type", ty);
        o.str_nonempty("channel", channel);
        let b = o.key("data");
        match push {
            Push::Publication { publication, .. } | Push::DeltaPublication { publication, .. } => {
                self.publication(b, publication)
            }
            Push::Join { info, .. } | Push::Leave { info, .. } => {
                let mut d = Obj::open(b);
                let ib = d.key("info");
                client_info(ib, info);
                d.close();
            }
            Push::Unsubscribe { .. } => b.extend_from_slice(b"{}"),
            Push::Message { data } => {
                let mut d = Obj::open(b);
                d.raw("data", data);
                d.close();
            }
            Push::Connect(_) | Push::Disconnect { .. } | Push::Refresh { .. } => {
                b.extend_from_slice(b"{}")
            }
            Push::Subscribe {
                recoverable,
                epoch,
                offset,
                ..
            } => {
                let mut d = Obj::open(b);
                d.bool_true("recoverable", *recoverable);
                self.position(&mut d, *offset);
                d.str_nonempty("epoch", epoch);
                if !self.seq_mode() {
                    d.num_nonzero("offset", *offset);
                }
                d.close();
            }
        }
        o.close();
        outer.close();
    }

    fn push_v2(&self, buf: &mut Vec<u8>, push: &Push<'_>) {
        let mut outer = Obj::open(buf);
        let pb = outer.key("push");
        let mut o = Obj::open(pb);
        match push {
            Push::Publication {
                channel,
                publication,
            } => {
                o.str("channel", channel);
                let b = o.key("pub");
                self.publication(b, publication);
            }
            Push::DeltaPublication {
                channel,
                publication,
            } => {
                o.str("channel", channel);
                let b = o.key("pub");
                self.publication_as(b, publication, true);
            }
            Push::Join { channel, info } | Push::Leave { channel, info } => {
                o.str("channel", channel);
                let name = if matches!(push, Push::Join { .. }) {
                    "join"
                } else {
                    "leave"
                };
                let b = o.key(name);
                let mut d = Obj::open(b);
                let ib = d.key("info");
                client_info(ib, info);
                d.close();
            }
            Push::Unsubscribe { channel, code } => {
                o.str("channel", channel);
                let b = o.key("unsubscribe");
                let mut d = Obj::open(b);
                d.num("code", u64::from(code.code));
                d.str("reason", code.reason);
                d.close();
            }
            Push::Message { data } => {
                let b = o.key("message");
                let mut d = Obj::open(b);
                d.raw("data", data);
                d.close();
            }
            Push::Subscribe {
                channel,
                recoverable,
                epoch,
                offset,
                positioned,
                data,
            } => {
                o.str("channel", channel);
                let b = o.key("subscribe");
                let mut d = Obj::open(b);
                d.bool_true("recoverable", *recoverable);
                d.str_nonempty("epoch", epoch);
                d.num_nonzero("offset", *offset);
                d.bool_true("positioned", *positioned);
                if let Some(data) = data.filter(|d| !d.is_empty()) {
                    d.raw("data", data);
                }
                d.close();
            }
            Push::Connect(r) => {
                let b = o.key("connect");
                self.connect(b, r);
            }
            Push::Disconnect { code, reason } => {
                let b = o.key("disconnect");
                let mut d = Obj::open(b);
                d.num("code", u64::from(*code));
                d.str("reason", reason);
                d.close();
            }
            Push::Refresh { expires, ttl } => {
                let b = o.key("refresh");
                let mut d = Obj::open(b);
                d.bool_true("expires", *expires);
                d.num_nonzero("ttl", u64::from(*ttl));
                d.close();
            }
        }
        o.close();
        outer.close();
    }

    /// The v2 server ping: an empty reply.
    pub fn ping(buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{}\n");
    }
}

/// Writes a raw payload. Payloads from JSON publishers are JSON text and go out as they came;
/// bytes a Protobuf client published that are not UTF-8 cannot be JSON, so JSON subscribers get
/// them as a base64 string rather than a frame that would break their whole connection.
fn write_payload(buf: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        buf.extend_from_slice(b"null");
    } else if std::str::from_utf8(data).is_ok() {
        buf.extend_from_slice(data);
    } else {
        use base64::Engine as _;
        buf.push(b'"');
        buf.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(data)
                .as_bytes(),
        );
        buf.push(b'"');
    }
}

/// Writes raw bytes as a JSON string of their text (a delta subscription's data: the client
/// JSON-parses it, or applies it as a patch to the UTF-8 bytes it holds). Patches sent on JSON
/// are valid UTF-8 by construction; data that is not (binary a Protobuf client published) cannot
/// be carried as text, and goes with U+FFFD in place of the invalid bytes.
fn write_bytes_str(buf: &mut Vec<u8>, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(s) => write_str(buf, s),
        Err(_) => write_str(buf, &String::from_utf8_lossy(data)),
    }
}

/// Writes a ClientInfo object.
pub fn client_info(buf: &mut Vec<u8>, c: &ClientInfo) {
    let mut o = Obj::open(buf);
    o.str("user", &c.user);
    o.str("client", &c.client);
    // b64info may carry bytes that are not JSON text.
    if let Some(i) = &c.conn_info {
        write_payload(o.key("conn_info"), i);
    }
    if let Some(i) = &c.chan_info {
        write_payload(o.key("chan_info"), i);
    }
    o.close();
}

/// Object keys go through `Obj::key` unescaped, so user-controlled keys are escaped first.
fn escape_key(k: &str) -> String {
    let mut v = Vec::with_capacity(k.len() + 2);
    write_str(&mut v, k);
    // Strip the quotes write_str added; Obj::key adds its own.
    String::from_utf8_lossy(&v[1..v.len() - 1]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::UnsubscribeCode;
    use bytes::Bytes;
    use std::sync::Arc;

    const V1: JsonEncoder = JsonEncoder {
        generation: Generation::V1,
        positions: PositionFormat::SeqGen,
    };
    const V1O: JsonEncoder = JsonEncoder {
        generation: Generation::V1,
        positions: PositionFormat::Offset,
    };
    const V2: JsonEncoder = JsonEncoder {
        generation: Generation::V2,
        positions: PositionFormat::Offset,
    };

    fn reply(e: JsonEncoder, id: u32, o: ReplyOutcome) -> String {
        let mut b = Vec::new();
        e.reply(&mut b, id, &o);
        String::from_utf8(b).unwrap()
    }

    fn push(e: JsonEncoder, p: Push<'_>) -> String {
        let mut b = Vec::new();
        e.push(&mut b, &p);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn v1_ping_reply_is_bare_id() {
        assert_eq!(reply(V1, 7, Ok(ReplyBody::Ping)), "{\"id\":7}\n");
    }

    #[test]
    fn errors() {
        assert_eq!(
            reply(V1, 1, Err(ErrorCode::TOKEN_EXPIRED)),
            "{\"id\":1,\"error\":{\"code\":109,\"message\":\"token expired\"}}\n"
        );
        assert_eq!(
            reply(V2, 1, Err(ErrorCode::INTERNAL)),
            "{\"id\":1,\"error\":{\"code\":100,\"message\":\"internal server error\",\"temporary\":true}}\n"
        );
    }

    #[test]
    fn connect_results() {
        let r = ConnectResult {
            client: "c1".into(),
            version: "1.0".into(),
            expires: true,
            ttl: 60,
            ping: 25,
            pong: true,
            ..Default::default()
        };
        assert_eq!(
            reply(V1, 1, Ok(ReplyBody::Connect(r.clone()))),
            "{\"id\":1,\"result\":{\"client\":\"c1\",\"version\":\"1.0\",\"expires\":true,\"ttl\":60}}\n"
        );
        assert_eq!(
            reply(V2, 1, Ok(ReplyBody::Connect(r))),
            "{\"id\":1,\"connect\":{\"client\":\"c1\",\"version\":\"1.0\",\"expires\":true,\"ttl\":60,\"ping\":25,\"pong\":true}}\n"
        );
    }

    #[test]
    fn subscribe_recovery_orders() {
        let pubs: Vec<Publication> = (2..=4)
            .map(|o| Publication {
                tags: None,
                delta: false,
                prev_data: None,
                offset: o,
                data: Bytes::from_static(b"{}"),
                info: None,
            })
            .collect();
        let r = SubscribeResult {
            recoverable: true,
            epoch: "e".into(),
            offset: 4,
            publications: pubs,
            recovered: true,
            ..Default::default()
        };
        assert_eq!(
            reply(V1, 2, Ok(ReplyBody::Subscribe(r.clone()))),
            "{\"id\":2,\"result\":{\"recoverable\":true,\"seq\":4,\"epoch\":\"e\",\"publications\":[{\"seq\":4,\"data\":{}},{\"seq\":3,\"data\":{}},{\"seq\":2,\"data\":{}}],\"recovered\":true}}\n"
        );
        assert_eq!(
            reply(V1O, 2, Ok(ReplyBody::Subscribe(r))),
            "{\"id\":2,\"result\":{\"recoverable\":true,\"epoch\":\"e\",\"publications\":[{\"data\":{},\"offset\":2},{\"data\":{},\"offset\":3},{\"data\":{},\"offset\":4}],\"recovered\":true,\"offset\":4}}\n"
        );
        assert_eq!(
            reply(V2, 2, Ok(ReplyBody::Subscribe(SubscribeResult::default()))),
            "{\"id\":2,\"subscribe\":{}}\n"
        );
    }

    #[test]
    fn pushes() {
        let info = ClientInfo {
            user: "42".into(),
            client: "u".into(),
            conn_info: None,
            chan_info: Some(Bytes::from_static(b"{\"r\":1}")),
        };
        let p = Publication {
            tags: None,
            delta: false,
            prev_data: None,
            offset: 0,
            data: Bytes::from_static(b"{\"t\":\"hi\"}"),
            info: Some(Arc::new(info.clone())),
        };
        assert_eq!(
            push(V1, Push::Publication { channel: "news", publication: &p }),
            "{\"result\":{\"channel\":\"news\",\"data\":{\"data\":{\"t\":\"hi\"},\"info\":{\"user\":\"42\",\"client\":\"u\",\"chan_info\":{\"r\":1}}}}}\n"
        );
        assert_eq!(
            push(V2, Push::Publication { channel: "news", publication: &p }),
            "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"t\":\"hi\"},\"info\":{\"user\":\"42\",\"client\":\"u\",\"chan_info\":{\"r\":1}}}}}\n"
        );
        assert_eq!(
            push(V1, Push::Join { channel: "c", info: &info }),
            "{\"result\":{\"type\":1,\"channel\":\"c\",\"data\":{\"info\":{\"user\":\"42\",\"client\":\"u\",\"chan_info\":{\"r\":1}}}}}\n"
        );
        assert_eq!(
            push(
                V1,
                Push::Unsubscribe {
                    channel: "c",
                    code: UnsubscribeCode::SERVER
                }
            ),
            "{\"result\":{\"type\":3,\"channel\":\"c\",\"data\":{}}}\n"
        );
        assert_eq!(
            push(V2, Push::Unsubscribe { channel: "c", code: UnsubscribeCode::EXPIRED }),
            "{\"push\":{\"channel\":\"c\",\"unsubscribe\":{\"code\":2501,\"reason\":\"subscription expired\"}}}\n"
        );
    }

    #[test]
    fn binary_payload_becomes_a_base64_string_for_json_subscribers() {
        let p = Publication {
            tags: None,
            delta: false,
            prev_data: None,
            offset: 0,
            data: Bytes::from_static(&[0xff, 0x00, 0x80]),
            info: None,
        };
        let s = push(
            V2,
            Push::Publication {
                channel: "c",
                publication: &p,
            },
        );
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
        assert_eq!(v["push"]["pub"]["data"], "/wCA");
    }

    #[test]
    fn keys_are_escaped() {
        let info = ClientInfo {
            client: "a\"b".into(),
            ..Default::default()
        };
        let s = reply(V1, 1, Ok(ReplyBody::Presence(vec![info])));
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
        assert!(v["result"]["presence"]["a\"b"].is_object());
    }
}
