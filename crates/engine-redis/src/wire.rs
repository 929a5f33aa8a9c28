//! What Rotor nodes send each other through Redis, and what history and presence store: a
//! compact, binary-safe format of our own (not Centrifugo's), cheap to build in Lua.
//!
//! * A *field* is `<decimal length>:<bytes>`; an absent optional field is `-`.
//! * A client *info* is four fields: user, client, conn_info (optional), chan_info (optional).
//!   The user comes first so that a Lua script can count unique users.
//! * A publication *body* is a one-digit header, then the publisher info when the header says
//!   so, then the tags when it says so, then the data, which runs to the end (so it is never
//!   copied into a field): `0<data>` (neither), `1<info><data>`, `2<tags><data>`,
//!   `3<info><tags><data>`. *Tags* are `<count>:` and then `count` pairs of fields (name,
//!   value), in name order. A publication without tags costs no byte for them, and bodies
//!   written before tags existed (`0`/`1`) read unchanged; an older node reading a `2`/`3` body
//!   rejects it as malformed rather than misreading it.
//! * Messages on a channel's PUB/SUB channel start with a one-letter kind:
//!   `p<offset>:<epoch>:<body>` (offset 0 and an empty epoch when the channel keeps no history;
//!   the publish script writes offset and epoch), `j<info>` (join), `l<info>` (leave). Control
//!   messages, on their own PUB/SUB channel, are `c<data>`.
//! * A publication marked for delta delivery whose predecessor is still in the stream goes as
//!   `d<offset>:<epoch>:<previous body as a field><body>`: the previous stream entry's body,
//!   read by the publish script in the same step as the append, so every node gets the exact
//!   base; the receiver hands its data on as `Publication::prev_data`. Everything else
//!   (unmarked, no history, first publication of an epoch, history expired) is the plain `p`
//!   message, byte for byte as before `d` existed. A node older than `d` does not know the kind
//!   and drops the message as malformed (a warning; never a misread): its subscribers miss
//!   that publication, and recoverable ones see the offset gap on the next one and recover it
//!   from history. So mark publications for delta only once every node reads `d`.
//!
//! Redis delivers the messages of one PUB/SUB channel over one connection in publish order, so
//! a node receives each channel's publications in offset order.

use std::sync::Arc;

use bytes::Bytes;
use rotor_protocol::{ClientInfo, Publication, Tags};

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

fn put_opt(out: &mut Vec<u8>, bytes: Option<&Bytes>) {
    match bytes {
        Some(b) => put_field(out, b),
        None => out.push(b'-'),
    }
}

/// Appends the encoding of `info`.
pub fn put_info(out: &mut Vec<u8>, info: &ClientInfo) {
    put_field(out, info.user.as_bytes());
    put_field(out, info.client.as_bytes());
    put_opt(out, info.conn_info.as_ref());
    put_opt(out, info.chan_info.as_ref());
}

/// The encoding of `info` alone (presence values, join/leave after the kind letter).
pub fn info(info: &ClientInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_info(&mut out, info);
    out
}

/// A publication body: publisher info (if any), tags (if any), then the data.
pub fn body(info: Option<&ClientInfo>, tags: Option<&Tags>, data: &[u8]) -> Vec<u8> {
    let tags_len = tags.map_or(0, |t| {
        t.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>() + 4
    });
    let mut out = Vec::with_capacity(data.len() + 64 + tags_len);
    out.push(match (info.is_some(), tags.is_some()) {
        (false, false) => b'0',
        (true, false) => b'1',
        (false, true) => b'2',
        (true, true) => b'3',
    });
    if let Some(i) = info {
        put_info(&mut out, i);
    }
    if let Some(tags) = tags {
        out.extend_from_slice(tags.len().to_string().as_bytes());
        out.push(b':');
        for (name, value) in tags {
            put_field(&mut out, name.as_bytes());
            put_field(&mut out, value.as_bytes());
        }
    }
    out.extend_from_slice(data);
    out
}

/// A cursor over encoded bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The whole buffer as shared bytes, so fields are sliced without copying.
    shared: &'a Bytes,
}

impl<'a> Reader<'a> {
    fn new(shared: &'a Bytes) -> Self {
        Self {
            buf: shared.as_ref(),
            pos: 0,
            shared,
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn field(&mut self) -> Option<Bytes> {
        let rest = self.buf.get(self.pos..)?;
        let colon = rest.iter().position(|b| *b == b':')?;
        let len: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
        let start = self.pos + colon + 1;
        let end = start.checked_add(len)?;
        if end > self.buf.len() {
            return None;
        }
        self.pos = end;
        Some(self.shared.slice(start..end))
    }

    fn opt_field(&mut self) -> Option<Option<Bytes>> {
        if self.buf.get(self.pos) == Some(&b'-') {
            self.pos += 1;
            return Some(None);
        }
        self.field().map(Some)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.field()?.to_vec()).ok()
    }

    fn info(&mut self) -> Option<ClientInfo> {
        Some(ClientInfo {
            user: self.string()?,
            client: self.string()?,
            conn_info: self.opt_field()?,
            chan_info: self.opt_field()?,
        })
    }

    /// Tags as [`body`] writes them.
    fn tags(&mut self) -> Option<Tags> {
        let count: usize = std::str::from_utf8(self.until(b':')?).ok()?.parse().ok()?;
        let mut tags = Tags::new();
        for _ in 0..count {
            let name = self.string()?;
            let value = self.string()?;
            tags.insert(name, value);
        }
        Some(tags)
    }

    /// Reads up to (not including) `delim`, and skips it.
    fn until(&mut self, delim: u8) -> Option<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        let rest = buf.get(self.pos..)?;
        let at = rest.iter().position(|b| *b == delim)?;
        self.pos += at + 1;
        Some(&rest[..at])
    }

    fn rest(&self) -> Bytes {
        self.shared.slice(self.pos..)
    }
}

/// Decodes an info encoded by [`info`].
pub fn decode_info(bytes: &Bytes) -> Option<ClientInfo> {
    let mut r = Reader::new(bytes);
    let info = r.info()?;
    (r.pos == bytes.len()).then_some(info)
}

/// Decodes a publication body into a publication with `offset`.
pub fn decode_body(bytes: &Bytes, offset: u64) -> Option<Publication> {
    let mut r = Reader::new(bytes);
    let (has_info, has_tags) = match r.byte()? {
        b'0' => (false, false),
        b'1' => (true, false),
        b'2' => (false, true),
        b'3' => (true, true),
        _ => return None,
    };
    let info = if has_info {
        Some(Arc::new(r.info()?))
    } else {
        None
    };
    let tags = if has_tags {
        Some(Arc::new(r.tags()?))
    } else {
        None
    };
    Some(Publication {
        tags,
        offset,
        data: r.rest(),
        info,
        delta: false,
        prev_data: None,
    })
}

/// A message received on a channel's PUB/SUB channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMessage {
    Publication {
        publication: Publication,
        epoch: String,
    },
    Join(ClientInfo),
    Leave(ClientInfo),
}

/// A publication message with a known position (publications without history: offset 0).
pub fn publication_message(offset: u64, epoch: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 24);
    out.push(b'p');
    out.extend_from_slice(offset.to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(epoch.as_bytes());
    out.push(b':');
    out.extend_from_slice(body);
    out
}

/// A publication message carrying `prev_body`, the body of the stream's previous entry, as its
/// delta base (the publish script builds the same bytes; this is for tests and tools).
pub fn delta_publication_message(
    offset: u64,
    epoch: &str,
    prev_body: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(prev_body.len() + body.len() + 32);
    out.push(b'd');
    out.extend_from_slice(offset.to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(epoch.as_bytes());
    out.push(b':');
    put_field(&mut out, prev_body);
    out.extend_from_slice(body);
    out
}

/// A join (`leave == false`) or leave message.
pub fn join_leave_message(info: &ClientInfo, leave: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(if leave { b'l' } else { b'j' });
    put_info(&mut out, info);
    out
}

/// A control message.
pub fn control_message(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(b'c');
    out.extend_from_slice(data);
    out
}

/// Decodes a message from a channel's PUB/SUB channel; `None` when malformed.
pub fn decode_channel_message(bytes: &Bytes) -> Option<ChannelMessage> {
    let mut r = Reader::new(bytes);
    match r.byte()? {
        b'p' => {
            let offset: u64 = std::str::from_utf8(r.until(b':')?).ok()?.parse().ok()?;
            let epoch = String::from_utf8(r.until(b':')?.to_vec()).ok()?;
            let body = r.rest();
            let publication = decode_body(&body, offset)?;
            Some(ChannelMessage::Publication { publication, epoch })
        }
        b'd' => {
            let offset: u64 = std::str::from_utf8(r.until(b':')?).ok()?.parse().ok()?;
            let epoch = String::from_utf8(r.until(b':')?.to_vec()).ok()?;
            let prev = decode_body(&r.field()?, offset.saturating_sub(1))?;
            let mut publication = decode_body(&r.rest(), offset)?;
            publication.prev_data = Some(prev.data);
            Some(ChannelMessage::Publication { publication, epoch })
        }
        b'j' => Some(ChannelMessage::Join(r.info()?)),
        b'l' => Some(ChannelMessage::Leave(r.info()?)),
        _ => None,
    }
}

/// The data of a control message; `None` when it is not one.
pub fn decode_control(bytes: &Bytes) -> Option<Bytes> {
    (bytes.first() == Some(&b'c')).then(|| bytes.slice(1..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(conn: Option<&'static [u8]>, chan: Option<&'static [u8]>) -> ClientInfo {
        ClientInfo {
            user: "user:42 with spaces".into(),
            client: "7f0c3a1e-0000-4000-8000-000000000000".into(),
            conn_info: conn.map(Bytes::from_static),
            chan_info: chan.map(Bytes::from_static),
        }
    }

    #[test]
    fn info_round_trips_with_and_without_optional_fields() {
        for i in [
            sample(None, None),
            sample(Some(b"{\"a\":1}"), None),
            sample(None, Some(b"")),
            sample(Some(b"-:12:x"), Some(b"{}")),
            ClientInfo::default(),
        ] {
            let enc = Bytes::from(info(&i));
            assert_eq!(decode_info(&enc), Some(i));
        }
        assert_eq!(decode_info(&Bytes::from_static(b"3:ab")), None);
        assert_eq!(decode_info(&Bytes::from_static(b"1:a1:b--x")), None);
    }

    #[test]
    fn publication_messages_round_trip() {
        let i = sample(Some(b"{\"n\":\"x\"}"), None);
        let t = tags(&[("a", "1"), ("b:c", ""), ("", "x:-y")]);
        let empty = Tags::new();
        for (info, tags, data) in [
            (None, None, &b"{\"text\":\"hi: there\"}"[..]),
            (Some(&i), None, &b"[1,2,3]"[..]),
            (None, None, &b""[..]),
            (Some(&i), None, &b"\x00\xff binary : - 1:"[..]),
            (None, Some(&t), &b"{}"[..]),
            (Some(&i), Some(&t), &b"2:ab"[..]),
            (None, Some(&empty), &b""[..]),
        ] {
            let body = body(info, tags, data);
            let msg = Bytes::from(publication_message(17, "AbCd1234", &body));
            let got = decode_channel_message(&msg).unwrap();
            assert_eq!(
                got,
                ChannelMessage::Publication {
                    publication: Publication {
                        tags: tags.cloned().map(Arc::new),
                        offset: 17,
                        data: Bytes::copy_from_slice(data),
                        info: info.cloned().map(Arc::new),
                        delta: false,
                        prev_data: None,
                    },
                    epoch: "AbCd1234".into(),
                }
            );
            let msg = Bytes::from(publication_message(0, "", &body));
            let ChannelMessage::Publication { publication, epoch } =
                decode_channel_message(&msg).unwrap()
            else {
                panic!()
            };
            assert_eq!((publication.offset, epoch.as_str()), (0, ""));
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bodies_without_tags_are_unchanged_and_old_bodies_still_read() {
        // The pre-tags format, byte for byte.
        assert_eq!(body(None, None, b"{}"), b"0{}");
        let i = sample(None, None);
        let mut old = b"1".to_vec();
        put_info(&mut old, &i);
        old.extend_from_slice(b"[1]");
        assert_eq!(body(Some(&i), None, b"[1]"), old);
        let p = decode_body(&Bytes::from(old), 3).unwrap();
        assert_eq!((p.offset, p.tags, &p.data[..]), (3, None, &b"[1]"[..]));
        // One tag: a header digit and `1:` then two fields.
        assert_eq!(body(None, Some(&tags(&[("k", "v")])), b"x"), b"21:1:k1:vx");
    }

    #[test]
    fn malformed_tags_are_rejected() {
        for junk in [
            &b"2"[..],
            b"2x:",
            b"22:1:a1:b",
            b"21:5:a",
            b"21:1:a",
            b"9{}",
        ] {
            assert_eq!(
                decode_body(&Bytes::copy_from_slice(junk), 1),
                None,
                "{junk:?}"
            );
        }
    }

    #[test]
    fn delta_messages_carry_the_previous_data() {
        let i = sample(Some(b"{}"), None);
        let t = tags(&[("k", "v")]);
        let prev = body(Some(&i), Some(&t), b"\x00prev: 4:x");
        for (info, tags, data) in [(None, None, &b"{\"n\":2}"[..]), (Some(&i), Some(&t), b"")] {
            let new = body(info, tags, data);
            let msg = Bytes::from(delta_publication_message(8, "E", &prev, &new));
            // The script's concatenation: `d` offset `:` epoch `:` #prev `:` prev body.
            let mut lua = format!("d8:E:{}:", prev.len()).into_bytes();
            lua.extend_from_slice(&prev);
            lua.extend_from_slice(&new);
            assert_eq!(&msg[..], &lua[..]);
            let ChannelMessage::Publication { publication, epoch } =
                decode_channel_message(&msg).unwrap()
            else {
                panic!()
            };
            assert_eq!(epoch, "E");
            assert_eq!(publication.offset, 8);
            assert_eq!(&publication.data[..], data);
            assert_eq!(publication.info.as_deref(), info);
            assert_eq!(publication.tags.as_deref(), tags);
            assert_eq!(
                publication.prev_data.as_deref(),
                Some(&b"\x00prev: 4:x"[..])
            );
        }
        // A plain message never carries a base.
        let plain = Bytes::from(publication_message(8, "E", &body(None, None, b"x")));
        let Some(ChannelMessage::Publication { publication, .. }) = decode_channel_message(&plain)
        else {
            panic!()
        };
        assert_eq!(publication.prev_data, None);
        let ok = delta_publication_message(2, "E", b"0a", b"0b");
        for junk in [
            &b"d2:E:3:0a0b"[..],
            b"d2:E:2:9a0b",
            b"d2:E:2:0a",
            b"d2:E:0a0b",
            b"dX:E:2:0a0b",
            &ok[..ok.len() - 2],
        ] {
            assert_eq!(
                decode_channel_message(&Bytes::copy_from_slice(junk)),
                None,
                "{junk:?}"
            );
        }
        assert!(decode_channel_message(&Bytes::from(ok)).is_some());
    }

    #[test]
    fn join_leave_control_and_garbage() {
        let i = sample(None, Some(b"{\"r\":1}"));
        let j = Bytes::from(join_leave_message(&i, false));
        let l = Bytes::from(join_leave_message(&i, true));
        assert_eq!(
            decode_channel_message(&j),
            Some(ChannelMessage::Join(i.clone()))
        );
        assert_eq!(decode_channel_message(&l), Some(ChannelMessage::Leave(i)));
        let c = Bytes::from(control_message(b"{\"op\":\"x\"}"));
        assert_eq!(decode_control(&c).as_deref(), Some(&b"{\"op\":\"x\"}"[..]));
        for junk in [&b""[..], b"x", b"p12", b"pX:e:0", b"p1:e:9", b"j3:a"] {
            assert_eq!(decode_channel_message(&Bytes::copy_from_slice(junk)), None);
        }
        assert_eq!(decode_control(&Bytes::from_static(b"p1")), None);
    }
}
