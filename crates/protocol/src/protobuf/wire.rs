//! The few Protobuf wire primitives Rotor needs by hand: varints, frame splitting, a top-level
//! field scan (for generation detection) and the writers the encoder builds messages with.
//!
//! Readers work on untrusted input and never index out of bounds or panic. Writers omit
//! proto3 default values (0, false, "", empty bytes), as every Protobuf encoder does.

use crate::command::DecodeError;

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

fn malformed(what: &str) -> DecodeError {
    DecodeError::Malformed(format!("protobuf: {what}"))
}

/// Reads a varint at `*pos`, advancing it. `None` if truncated or longer than 10 bytes.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if i == 9 && b > 1 {
            return None; // more than 64 bits
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The varint-delimited messages of one WebSocket message; see [`super::split_frame`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
}

impl<'a> Frames<'a> {
    pub(crate) fn new(frame: &'a [u8]) -> Self {
        Self { rest: frame }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut pos = 0;
        let Some(len) = read_varint(self.rest, &mut pos) else {
            self.rest = &[];
            return Some(Err(malformed("truncated length prefix")));
        };
        let body = &self.rest[pos..];
        match usize::try_from(len) {
            Ok(len) if len <= body.len() => {
                let (msg, rest) = body.split_at(len);
                self.rest = rest;
                Some(Ok(msg))
            }
            _ => {
                self.rest = &[];
                Some(Err(malformed("length prefix beyond the frame")))
            }
        }
    }
}

impl std::iter::FusedIterator for Frames<'_> {}

/// Whether `msg` has a top-level field numbered `min` or higher. Walks the fields without
/// decoding them; a message that cannot be walked is malformed.
pub(crate) fn has_field_from(msg: &[u8], min: u64) -> Result<bool, DecodeError> {
    let mut pos = 0;
    let mut found = false;
    while pos < msg.len() {
        let key = read_varint(msg, &mut pos).ok_or_else(|| malformed("truncated field key"))?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(malformed("invalid field number"));
        }
        found |= field >= min;
        let skip = match (key & 7) as u8 {
            WIRE_VARINT => {
                read_varint(msg, &mut pos).ok_or_else(|| malformed("truncated varint"))?;
                0
            }
            WIRE_FIXED64 => 8,
            WIRE_LEN => read_varint(msg, &mut pos).ok_or_else(|| malformed("truncated length"))?,
            WIRE_FIXED32 => 4,
            _ => return Err(malformed("unsupported wire type")),
        };
        pos = usize::try_from(skip)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|end| *end <= msg.len())
            .ok_or_else(|| malformed("field beyond the message"))?;
    }
    Ok(found)
}

// ---- writing ----

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// Writes whatever `body` appends, prefixed by its length as a varint.
///
/// One byte is reserved for the prefix (enough for bodies under 128 bytes, the common case);
/// a longer body is moved right once to make room, so nothing is sized twice or buffered
/// elsewhere.
pub(crate) fn delimited(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> usize {
    let at = buf.len();
    buf.push(0);
    body(buf);
    let end = buf.len();
    let len = end - at - 1;
    let n = varint_len(len as u64);
    if n > 1 {
        buf.resize(end + n - 1, 0);
        buf.copy_within(at + 1..end, at + n);
    }
    let mut v = len as u64;
    for (i, slot) in buf[at..at + n].iter_mut().enumerate() {
        *slot = (v as u8 & 0x7f) | if i + 1 < n { 0x80 } else { 0 };
        v >>= 7;
    }
    len
}

pub(crate) fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, WIRE_VARINT);
        put_varint(buf, v);
    }
}

pub(crate) fn boolean(buf: &mut Vec<u8>, field: u32, v: bool) {
    uint(buf, field, u64::from(v));
}

pub(crate) fn bytes(buf: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        key(buf, field, WIRE_LEN);
        put_varint(buf, v.len() as u64);
        buf.extend_from_slice(v);
    }
}

pub(crate) fn string(buf: &mut Vec<u8>, field: u32, v: &str) {
    bytes(buf, field, v.as_bytes());
}

/// A string written even when empty (map keys, where Go writes both key and value).
pub(crate) fn string_always(buf: &mut Vec<u8>, field: u32, v: &str) {
    key(buf, field, WIRE_LEN);
    put_varint(buf, v.len() as u64);
    buf.extend_from_slice(v.as_bytes());
}

/// An embedded message, written even when empty (present-but-empty differs from absent).
pub(crate) fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, WIRE_LEN);
    delimited(buf, body);
}

/// A `bytes` field holding a serialized message (v1 `result`, `data`): omitted when the
/// message is empty, like any empty `bytes` field.
pub(crate) fn message_bytes(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    key(buf, field, WIRE_LEN);
    if delimited(buf, body) == 0 {
        buf.truncate(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_length() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX.into(),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(read_varint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        // 11 continuation bytes, or a 10th byte carrying more than one bit, are not a u64.
        assert_eq!(read_varint(&[0xff; 11], &mut 0), None);
        let mut big = vec![0xff; 9];
        big.push(0x02);
        assert_eq!(read_varint(&big, &mut 0), None);
        assert_eq!(read_varint(&[0x80], &mut 0), None);
    }

    #[test]
    fn delimited_moves_long_bodies() {
        for len in [0usize, 1, 127, 128, 200, 16_383, 16_384, 70_000] {
            let mut b = vec![0xaa];
            delimited(&mut b, |b| b.extend(std::iter::repeat_n(7u8, len)));
            let mut pos = 1;
            assert_eq!(read_varint(&b, &mut pos), Some(len as u64));
            assert_eq!(b.len() - pos, len);
            assert!(b[pos..].iter().all(|x| *x == 7));
            assert_eq!(b[0], 0xaa);
        }
    }
}
