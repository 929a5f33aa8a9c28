//! A minimal Protobuf wire codec for the tests' Protobuf client (client protocol v1, PROTOCOL.md
//! §2.1 and `crates/protocol/proto/client_v1.proto`): varints, length-delimited fields, the
//! varint length prefix of each Command/Reply in a binary frame, and a decoder into (field
//! number, value) pairs. Written for tests: malformed input panics.

/// One decoded field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Varint(u64),
    Bytes(Vec<u8>),
}

pub fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a varint field (wire type 0).
pub fn put_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(u64::from(field) << 3, out);
    varint(v, out);
}

/// Appends a length-delimited field (wire type 2).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint((u64::from(field) << 3) | 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b
            .get(*pos)
            .unwrap_or_else(|| panic!("truncated varint in {b:?}"));
        *pos += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return n;
        }
        shift += 7;
        assert!(shift < 64, "varint too long in {b:?}");
    }
}

/// Splits a binary frame into its varint-length-prefixed messages.
pub fn split_frames(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let len = read_varint(b, &mut pos) as usize;
        let end = pos + len;
        assert!(end <= b.len(), "message length {len} past the frame: {b:?}");
        out.push(b[pos..end].to_vec());
        pos = end;
    }
    out
}

/// One message with its length prefix (what a client puts in a binary frame).
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(msg.len() as u64, &mut out);
    out.extend_from_slice(msg);
    out
}

/// Every field of a message, in wire order.
pub fn decode(b: &[u8]) -> Vec<(u32, Val)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let key = read_varint(b, &mut pos);
        let field = (key >> 3) as u32;
        match key & 7 {
            0 => out.push((field, Val::Varint(read_varint(b, &mut pos)))),
            2 => {
                let len = read_varint(b, &mut pos) as usize;
                let end = pos + len;
                assert!(end <= b.len(), "field {field} past the message: {b:?}");
                out.push((field, Val::Bytes(b[pos..end].to_vec())));
                pos = end;
            }
            t => panic!("unexpected wire type {t} (field {field}) in {b:?}"),
        }
    }
    out
}

/// The last value of a length-delimited field.
pub fn bytes_of(fields: &[(u32, Val)], field: u32) -> Option<Vec<u8>> {
    fields.iter().rev().find_map(|(f, v)| match v {
        Val::Bytes(b) if *f == field => Some(b.clone()),
        _ => None,
    })
}

/// The last value of a varint field.
pub fn varint_of(fields: &[(u32, Val)], field: u32) -> Option<u64> {
    fields.iter().rev().find_map(|(f, v)| match v {
        Val::Varint(n) if *f == field => Some(*n),
        _ => None,
    })
}

/// A string field (UTF-8), "" when absent.
pub fn string_of(fields: &[(u32, Val)], field: u32) -> String {
    bytes_of(fields, field)
        .map(|b| String::from_utf8(b).expect("UTF-8 string field"))
        .unwrap_or_default()
}

/// v1 `Command{id=1, method=2, params=3}`, framed.
pub fn v1_command(id: u32, method: u64, params: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    put_varint(&mut m, 1, u64::from(id));
    if method != 0 {
        put_varint(&mut m, 2, method);
    }
    if !params.is_empty() {
        put_bytes(&mut m, 3, params);
    }
    frame(&m)
}

/// A decoded v1 `Reply{id=1, error=2{code=1, message=2}, result=3}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Reply {
    pub id: u64,
    pub error: Option<(u64, String)>,
    pub result: Vec<u8>,
}

pub fn v1_reply(msg: &[u8]) -> V1Reply {
    let f = decode(msg);
    V1Reply {
        id: varint_of(&f, 1).unwrap_or(0),
        error: bytes_of(&f, 2).map(|e| {
            let e = decode(&e);
            (varint_of(&e, 1).unwrap_or(0), string_of(&e, 2))
        }),
        result: bytes_of(&f, 3).unwrap_or_default(),
    }
}
