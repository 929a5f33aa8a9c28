//! One entry point for both wire encodings, so the session and the hub never branch on
//! JSON versus Protobuf themselves: split a frame, decode a command, encode a reply or push.
//!
//! The output of [`Encoder::reply`] / [`Encoder::push`] for one encoding can be concatenated
//! into one WebSocket message of that encoding (text for JSON, binary for Protobuf — see
//! [`Encoding::is_binary`]).

use crate::command::{decode_json_command, split_json_frame, Command, DecodeError};
use crate::json::JsonEncoder;
use crate::protobuf::{self, ProtobufEncoder};
use crate::reply::{Push, ReplyOutcome};
use crate::types::PositionFormat;
use crate::{Encoding, Generation};

impl Encoding {
    /// Whether frames of this encoding travel as binary WebSocket messages.
    pub fn is_binary(self) -> bool {
        matches!(self, Encoding::Protobuf)
    }
}

/// Encodes for one (generation, encoding, position format) triple; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    pub generation: Generation,
    pub encoding: Encoding,
    /// Applies to v1 only; v2 always uses offsets.
    pub positions: PositionFormat,
}

impl Encoder {
    pub fn new(generation: Generation, encoding: Encoding, positions: PositionFormat) -> Self {
        Self {
            generation,
            encoding,
            positions,
        }
    }

    /// Appends one reply to `buf` (JSON: object and `\n`; Protobuf: length-prefixed `Reply`).
    pub fn reply(&self, buf: &mut Vec<u8>, id: u32, outcome: &ReplyOutcome) {
        match self.encoding {
            Encoding::Json => self.json().reply(buf, id, outcome),
            Encoding::Protobuf => self.protobuf().reply(buf, id, outcome),
        }
    }

    /// Appends one push to `buf`.
    pub fn push(&self, buf: &mut Vec<u8>, push: &Push<'_>) {
        match self.encoding {
            Encoding::Json => self.json().push(buf, push),
            Encoding::Protobuf => self.protobuf().push(buf, push),
        }
    }

    /// Appends the v2 server ping (an empty reply).
    pub fn ping(&self, buf: &mut Vec<u8>) {
        match self.encoding {
            Encoding::Json => JsonEncoder::ping(buf),
            Encoding::Protobuf => ProtobufEncoder::ping(buf),
        }
    }

    pub fn json(&self) -> JsonEncoder {
        JsonEncoder::new(self.generation, self.positions)
    }

    pub fn protobuf(&self) -> ProtobufEncoder {
        ProtobufEncoder::new(self.generation, self.positions)
    }
}

/// Splits one inbound WebSocket message into its commands. JSON never fails here (a bad line
/// fails in [`decode_command`]); Protobuf fails on a broken length prefix, after which the
/// iteration ends. An empty message yields nothing (the session's bad-request case).
pub fn decode_frame<'a>(
    encoding: Encoding,
    frame: &'a [u8],
) -> impl Iterator<Item = Result<&'a [u8], DecodeError>> + 'a {
    let (json, proto) = match encoding {
        Encoding::Json => (Some(split_json_frame(frame).map(Ok)), None),
        Encoding::Protobuf => (None, Some(protobuf::split_frame(frame))),
    };
    json.into_iter()
        .flatten()
        .chain(proto.into_iter().flatten())
}

/// Decodes one command of a frame; `generation` is `None` for the connection's first command,
/// whose shape then decides (see the JSON and Protobuf decoders).
pub fn decode_command(
    encoding: Encoding,
    bytes: &[u8],
    generation: Option<Generation>,
) -> Result<(Generation, Command), DecodeError> {
    match encoding {
        Encoding::Json => decode_json_command(bytes, generation),
        Encoding::Protobuf => protobuf::decode_command(bytes, generation),
    }
}

/// The bare v2 `Push` messages inside `msg` (one or more messages as the encoders write them:
/// JSON `{"push":{..}}\n` lines, or length-prefixed Protobuf `Reply{push}`), appended to `out`
/// as slices of `msg` without copying: what the unidirectional transports send. A server ping
/// (an empty reply) becomes `{}` (JSON) or an empty message (Protobuf); replies to commands are
/// skipped, as is anything that does not parse.
pub fn unwrap_pushes(encoding: Encoding, msg: &bytes::Bytes, out: &mut Vec<bytes::Bytes>) {
    match encoding {
        Encoding::Json => {
            const PREFIX: &[u8] = b"{\"push\":";
            let mut start = 0;
            for (i, _) in msg.iter().enumerate().filter(|(_, &b)| b == b'\n') {
                let line = &msg[start..i];
                if line == b"{}" {
                    out.push(msg.slice(start..i));
                } else if line.starts_with(PREFIX) && line.ends_with(b"}") {
                    out.push(msg.slice(start + PREFIX.len()..i - 1));
                }
                start = i + 1;
            }
        }
        Encoding::Protobuf => {
            let mut pos = 0;
            while pos < msg.len() {
                let Some(len) = protobuf::read_varint_at(msg, &mut pos) else {
                    return;
                };
                let Some(end) = usize::try_from(len)
                    .ok()
                    .and_then(|l| pos.checked_add(l))
                    .filter(|&e| e <= msg.len())
                else {
                    return;
                };
                if len == 0 {
                    out.push(bytes::Bytes::new());
                } else if msg[pos] == 0x22 {
                    // Reply.push (field 4, length-delimited) as the only field.
                    let mut p = pos + 1;
                    if let Some(inner) = protobuf::read_varint_at(msg, &mut p) {
                        if usize::try_from(inner).ok().and_then(|l| p.checked_add(l)) == Some(end) {
                            out.push(msg.slice(p..end));
                        }
                    }
                }
                pos = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_pushes_of_both_encodings() {
        use crate::types::Publication;
        let p = Publication {
            data: bytes::Bytes::from_static(b"{\"x\":1}"),
            offset: 3,
            ..Publication::default()
        };
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let e = Encoder::new(Generation::V2, encoding, PositionFormat::Offset);
            let mut buf = Vec::new();
            e.push(
                &mut buf,
                &Push::Publication {
                    channel: "c",
                    publication: &p,
                },
            );
            e.ping(&mut buf);
            e.reply(&mut buf, 7, &Ok(crate::ReplyBody::Ping));
            e.push(
                &mut buf,
                &Push::Disconnect {
                    code: 3001,
                    reason: "shutdown",
                },
            );
            let mut out = Vec::new();
            unwrap_pushes(encoding, &bytes::Bytes::from(buf), &mut out);
            assert_eq!(out.len(), 3, "{encoding:?}");
            if encoding == Encoding::Json {
                assert_eq!(
                    &out[0][..],
                    br#"{"channel":"c","pub":{"data":{"x":1},"offset":3}}"#
                );
                assert_eq!(&out[1][..], b"{}");
                assert_eq!(
                    &out[2][..],
                    br#"{"disconnect":{"code":3001,"reason":"shutdown"}}"#
                );
            } else {
                use prost::Message;
                let push = crate::protobuf::v2::Push::decode(&out[0][..]).unwrap();
                assert_eq!(push.channel, "c");
                assert!(out[1].is_empty());
                let d = crate::protobuf::v2::Push::decode(&out[2][..]).unwrap();
                assert_eq!(d.disconnect.map(|d| d.code), Some(3001));
            }
        }
        // Garbage and truncation end quietly.
        let mut out = Vec::new();
        unwrap_pushes(
            Encoding::Protobuf,
            &bytes::Bytes::from_static(&[0x05, 0x22]),
            &mut out,
        );
        unwrap_pushes(
            Encoding::Json,
            &bytes::Bytes::from_static(b"{\"push\""),
            &mut out,
        );
        assert!(out.is_empty());
    }
    use crate::command::CommandKind;
    use crate::reply::ReplyBody;

    #[test]
    fn frames_and_commands_by_encoding() {
        let json: Vec<_> = decode_frame(Encoding::Json, b"{\"id\":1}\n{\"id\":2,\"method\":7}\n")
            .map(|r| decode_command(Encoding::Json, r.unwrap(), None).unwrap())
            .collect();
        assert_eq!(json.len(), 2);
        assert_eq!(json[1].1.kind, CommandKind::Ping);

        // v1 connect {id:1}, then v1 ping {id:2, method:7}.
        let frame = [2, 0x08, 1, 4, 0x08, 2, 0x10, 7];
        let proto: Vec<_> = decode_frame(Encoding::Protobuf, &frame)
            .map(|r| decode_command(Encoding::Protobuf, r.unwrap(), None).unwrap())
            .collect();
        assert_eq!(proto, json);

        let mut bad = decode_frame(Encoding::Protobuf, &[5, 1]);
        assert!(bad.next().unwrap().is_err());
        assert!(bad.next().is_none());
        assert_eq!(decode_frame(Encoding::Protobuf, b"").count(), 0);
    }

    #[test]
    fn encoder_dispatches() {
        let mut j = Vec::new();
        let mut p = Vec::new();
        let e = Encoder::new(Generation::V1, Encoding::Json, PositionFormat::SeqGen);
        e.reply(&mut j, 3, &Ok(ReplyBody::Ping));
        Encoder {
            encoding: Encoding::Protobuf,
            ..e
        }
        .reply(&mut p, 3, &Ok(ReplyBody::Ping));
        assert_eq!(j, b"{\"id\":3}\n");
        assert_eq!(p, [2, 0x08, 3]);

        let (mut j, mut p) = (Vec::new(), Vec::new());
        Encoder::new(Generation::V2, Encoding::Json, PositionFormat::Offset).ping(&mut j);
        Encoder::new(Generation::V2, Encoding::Protobuf, PositionFormat::Offset).ping(&mut p);
        assert_eq!((j.as_slice(), p.as_slice()), (&b"{}\n"[..], &[0u8][..]));
        assert!(Encoding::Protobuf.is_binary() && !Encoding::Json.is_binary());
    }
}

#[cfg(test)]
#[path = "codec_delta_tests.rs"]
mod delta_tests;
