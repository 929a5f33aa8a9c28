//! What Rotor nodes send each other over NATS: a compact binary encoding of Rotor's own,
//! versioned, deliberately not Centrifugo's protobuf `Push` (Centrifugo 2.x and 6.x nodes
//! cannot share a prefix with each other either, their encodings differ). Only Rotor nodes of
//! the same wire version can share a prefix; give Rotor its own `nats_prefix` next to
//! Centrifugo nodes.
//!
//! Every message starts with the version byte ([`VERSION`], 1) and a kind byte:
//!
//! * `p` publication: a flags byte (1 = publisher info, 2 = tags, 4 = stream position,
//!   8 = previous data for delta delivery), then in this order what the flags announce: the
//!   position (offset as a varint, epoch as a field), the info, the tags (a varint count, then
//!   name and value fields), the previous data (a field); then the data, which runs to the end
//!   of the message, so it is sliced, never copied.
//! * `j` join / `l` leave: the client info and nothing after it.
//! * `c` control: the opaque control bytes to the end.
//!
//! A *field* is a varint length and the bytes. A client *info* is user and client (fields),
//! a flags byte (1 = conn_info, 2 = chan_info) and those fields. A message of another version
//! or kind, or malformed, decodes to `None`: the receiver drops it and treats the channel as
//! gapped (its subscribers are told), never misreads it.

use std::sync::Arc;

use bytes::Bytes;
use rotor_protocol::{ClientInfo, Publication, Tags};

/// The wire version this node writes and reads.
pub const VERSION: u8 = 1;

const PUB_INFO: u8 = 1;
const PUB_TAGS: u8 = 2;
const PUB_POSITION: u8 = 4;
const PUB_PREV: u8 = 8;

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A publication and the epoch of its stream (empty without history).
    Publication(Publication, String),
    Join(ClientInfo),
    Leave(ClientInfo),
    Control(Bytes),
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_field(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_info(out: &mut Vec<u8>, info: &ClientInfo) {
    put_field(out, info.user.as_bytes());
    put_field(out, info.client.as_bytes());
    let flags = u8::from(info.conn_info.is_some()) | (u8::from(info.chan_info.is_some()) << 1);
    out.push(flags);
    for b in [&info.conn_info, &info.chan_info].into_iter().flatten() {
        put_field(out, b);
    }
}

/// A publication message. `position` is `(offset, epoch)` for a publication stored in
/// history elsewhere (none on NATS alone); `prev` the previous data for a delta publication.
pub fn publication(
    info: Option<&ClientInfo>,
    tags: Option<&Tags>,
    position: Option<(u64, &str)>,
    prev: Option<&[u8]>,
    data: &[u8],
) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 16 + if info.is_some() { 64 } else { 0 });
    out.push(VERSION);
    out.push(b'p');
    let mut flags = 0;
    if info.is_some() {
        flags |= PUB_INFO;
    }
    if tags.is_some() {
        flags |= PUB_TAGS;
    }
    if position.is_some() {
        flags |= PUB_POSITION;
    }
    if prev.is_some() {
        flags |= PUB_PREV;
    }
    out.push(flags);
    if let Some((offset, epoch)) = position {
        put_varint(&mut out, offset);
        put_field(&mut out, epoch.as_bytes());
    }
    if let Some(info) = info {
        put_info(&mut out, info);
    }
    if let Some(tags) = tags {
        put_varint(&mut out, tags.len() as u64);
        for (k, v) in tags {
            put_field(&mut out, k.as_bytes());
            put_field(&mut out, v.as_bytes());
        }
    }
    if let Some(prev) = prev {
        put_field(&mut out, prev);
    }
    out.extend_from_slice(data);
    Bytes::from(out)
}

/// A join (`leave == false`) or leave message.
pub fn join_leave(info: &ClientInfo, leave: bool) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    out.push(if leave { b'l' } else { b'j' });
    put_info(&mut out, info);
    Bytes::from(out)
}

/// A control message.
pub fn control(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.push(VERSION);
    out.push(b'c');
    out.extend_from_slice(data);
    Bytes::from(out)
}

struct Reader<'a> {
    all: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.all.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn field(&mut self) -> Option<Bytes> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(len)?;
        if end > self.all.len() {
            return None;
        }
        let b = self.all.slice(self.pos..end);
        self.pos = end;
        Some(b)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.field()?.to_vec()).ok()
    }

    fn info(&mut self) -> Option<ClientInfo> {
        let user = self.string()?;
        let client = self.string()?;
        let flags = self.byte()?;
        if flags & !3 != 0 {
            return None;
        }
        let conn_info = if flags & 1 != 0 {
            Some(self.field()?)
        } else {
            None
        };
        let chan_info = if flags & 2 != 0 {
            Some(self.field()?)
        } else {
            None
        };
        Some(ClientInfo {
            user,
            client,
            conn_info,
            chan_info,
        })
    }

    fn rest(&self) -> Bytes {
        self.all.slice(self.pos..)
    }

    fn at_end(&self) -> bool {
        self.pos == self.all.len()
    }
}

/// Decodes a message; `None` for another version, an unknown kind or malformed bytes.
pub fn decode(msg: &Bytes) -> Option<Message> {
    let mut r = Reader { all: msg, pos: 0 };
    if r.byte()? != VERSION {
        return None;
    }
    match r.byte()? {
        b'p' => {
            let flags = r.byte()?;
            if flags & !(PUB_INFO | PUB_TAGS | PUB_POSITION | PUB_PREV) != 0 {
                return None;
            }
            let (offset, epoch) = if flags & PUB_POSITION != 0 {
                (r.varint()?, r.string()?)
            } else {
                (0, String::new())
            };
            let info = if flags & PUB_INFO != 0 {
                Some(Arc::new(r.info()?))
            } else {
                None
            };
            let tags = if flags & PUB_TAGS != 0 {
                let n = r.varint()?;
                let mut tags = Tags::new();
                for _ in 0..n {
                    let k = r.string()?;
                    let v = r.string()?;
                    tags.insert(k, v);
                }
                Some(Arc::new(tags))
            } else {
                None
            };
            let prev_data = if flags & PUB_PREV != 0 {
                Some(r.field()?)
            } else {
                None
            };
            let publication = Publication {
                offset,
                data: r.rest(),
                info,
                tags,
                delta: false,
                prev_data,
            };
            Some(Message::Publication(publication, epoch))
        }
        kind @ (b'j' | b'l') => {
            let info = r.info()?;
            if !r.at_end() {
                return None;
            }
            Some(if kind == b'j' {
                Message::Join(info)
            } else {
                Message::Leave(info)
            })
        }
        b'c' => Some(Message::Control(r.rest())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClientInfo {
        ClientInfo {
            user: "u1".into(),
            client: "c-1".into(),
            conn_info: Some(Bytes::from_static(b"{\"a\":1}")),
            chan_info: None,
        }
    }

    #[test]
    fn plain_publication_is_three_bytes_plus_data() {
        let m = publication(None, None, None, None, b"{\"x\":1}");
        assert_eq!(&m[..3], &[VERSION, b'p', 0]);
        assert_eq!(&m[3..], b"{\"x\":1}");
        let Some(Message::Publication(p, epoch)) = decode(&m) else {
            panic!("not a publication");
        };
        assert_eq!(p.data.as_ref(), b"{\"x\":1}");
        assert_eq!(
            (p.offset, epoch.as_str(), p.info, p.tags),
            (0, "", None, None)
        );
    }

    #[test]
    fn full_publication_round_trips() {
        let mut tags = Tags::new();
        tags.insert("k".into(), "v".into());
        tags.insert("empty".into(), String::new());
        let data = vec![0u8; 300];
        let m = publication(
            Some(&info()),
            Some(&tags),
            Some((1 << 40, "ep0ch")),
            Some(b"prev"),
            &data,
        );
        let Some(Message::Publication(p, epoch)) = decode(&m) else {
            panic!("not a publication");
        };
        assert_eq!(p.offset, 1 << 40);
        assert_eq!(epoch, "ep0ch");
        assert_eq!(p.info.as_deref(), Some(&info()));
        assert_eq!(p.tags.as_deref(), Some(&tags));
        assert_eq!(p.prev_data.as_deref(), Some(&b"prev"[..]));
        assert_eq!(p.data.as_ref(), &data[..]);
    }

    #[test]
    fn join_leave_control_round_trip() {
        let both = ClientInfo {
            chan_info: Some(Bytes::from_static(b"[]")),
            ..info()
        };
        assert_eq!(
            decode(&join_leave(&both, false)),
            Some(Message::Join(both.clone()))
        );
        assert_eq!(
            decode(&join_leave(&info(), true)),
            Some(Message::Leave(info()))
        );
        let c = control(b"\x00\x01bin");
        assert_eq!(
            decode(&c),
            Some(Message::Control(Bytes::from_static(b"\x00\x01bin")))
        );
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let mut m = publication(None, None, None, None, b"x").to_vec();
        m[0] = 2;
        assert_eq!(decode(&Bytes::from(m)), None);
        for bad in [
            &b""[..],
            &[VERSION],
            &[VERSION, b'z'],
            &[VERSION, b'p'],
            &[VERSION, b'p', 0x80],
            &[VERSION, b'p', PUB_INFO, 5, b'a'],
            &[VERSION, b'j', 1, b'u', 1, b'c', 0, b'x'],
            &[VERSION, b'j', 1, b'u', 1, b'c', 4],
            // Centrifugo's protobuf Push starts with a field tag, never with version 1.
            &[0x12, 0x04, b'n', b'e', b'w', b's'],
        ] {
            assert_eq!(decode(&Bytes::copy_from_slice(bad)), None, "{bad:?}");
        }
        let mut long = vec![VERSION, b'p', PUB_POSITION];
        long.extend_from_slice(&[0xff; 11]);
        assert_eq!(decode(&Bytes::from(long)), None);
    }
}
