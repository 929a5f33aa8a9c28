//! Rotor's wire protocol: the client commands, replies and pushes of both Centrifugo client
//! protocol generations, their JSON and Protobuf codecs ([`codec`] picks one per connection),
//! and the error/disconnect code tables.
//!
//! Pure: no I/O, no clocks, no async. Decoding never panics on any input; an undecodable
//! command is a [`command::DecodeError`] that the session turns into a bad-request close.

pub mod api;
pub mod codec;
pub mod codes;
pub mod command;
pub mod filter;
pub mod fossil;
pub mod json;
pub mod protobuf;
pub mod reply;
pub mod types;

pub use codes::{Disconnect, DisconnectKind, ErrorCode, UnsubscribeCode};
pub use command::{Command, CommandKind, ConnectRequest, DecodeError};
pub use reply::{Push, ReplyBody, ReplyOutcome};
pub use types::{ClientInfo, PositionFormat, Publication, Tags};

/// Client protocol generation of a connection, fixed by its first command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// Centrifugo 2.x, centrifuge-js 2.x: numeric `method`, `params`, `result`.
    V1,
    /// Centrifugo 4+, centrifuge-js 5.x: named command and result fields.
    V2,
}

/// Wire encoding of a connection, fixed when the WebSocket is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// Newline-delimited JSON in text messages; the default.
    #[default]
    Json,
    /// Varint-length-delimited Protobuf in binary messages (`?format=protobuf`).
    Protobuf,
}
