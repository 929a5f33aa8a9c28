//! The Protobuf encoding of both client protocol generations (`?format=protobuf`, sub-protocol
//! `centrifuge-protobuf`): schemas, framing, command decoding and reply/push encoding.
//!
//! * Framing: each `Command`/`Reply` is prefixed by its length as a varint, and one WebSocket
//!   binary message may hold several ([`split_frame`]; encoders append one prefixed message).
//! * Schemas: `proto/client_v1.proto` (package `protocol`, Centrifugo 2.x) and
//!   `proto/client_v2.proto` (Centrifugo 4+), mirrored by the prost types of [`v1`] and [`v2`].
//!   Both were checked field by field against the schemas bundled with centrifuge-js 2.8.5 and
//!   5.8.0, and the tests hold frames those clients really produced.
//! * Commands decode into the same [`Command`](crate::Command) as JSON ([`decode_command`]);
//!   [`ProtobufEncoder`] mirrors [`JsonEncoder`](crate::json::JsonEncoder).
//!
//! Pure and panic-free on any input, like the JSON side.

mod decode;
mod encode;
pub mod v1;
pub mod v2;
mod wire;

pub use decode::{decode_command, decode_connect_request};
pub use encode::{client_info, ProtobufEncoder};
pub use wire::Frames;

/// Splits one binary WebSocket message into its varint-length-delimited messages.
///
/// A zero length is a valid (empty) message: a v2 pong, or the server's ping. A truncated
/// prefix or a length running past the frame yields one error and ends the iteration.
pub fn split_frame(frame: &[u8]) -> Frames<'_> {
    Frames::new(frame)
}

/// Reads a varint at `*pos`, advancing it (`None`: truncated or overlong).
pub(crate) fn read_varint_at(buf: &[u8], pos: &mut usize) -> Option<u64> {
    wire::read_varint(buf, pos)
}

#[cfg(test)]
mod tests;
