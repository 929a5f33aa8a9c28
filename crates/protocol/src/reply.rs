//! Results of commands and server pushes, generation-independent; [`crate::json`] encodes them.

use bytes::Bytes;

use crate::codes::{ErrorCode, UnsubscribeCode};
use crate::types::{ClientInfo, Publication};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectResult {
    pub client: String,
    pub version: String,
    pub expires: bool,
    pub ttl: u32,
    pub data: Option<Bytes>,
    /// Server-side subscriptions made at connect, by channel.
    pub subs: Vec<(String, SubscribeResult)>,
    /// v2: ping interval in seconds the client should expect.
    pub ping: u32,
    /// v2: the client must answer pings.
    pub pong: bool,
    /// v2 emulation and unidirectional transports: this connection's session id (emulation
    /// requests name it).
    pub session: String,
    /// v2 emulation: the node holding the session (emulation requests are routed by it).
    pub node: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeResult {
    pub expires: bool,
    pub ttl: u32,
    pub recoverable: bool,
    pub epoch: String,
    /// Stream top position (sent when `recoverable`).
    pub offset: u64,
    /// Ascending by offset; the v1 seq/gen encoding reverses them.
    pub publications: Vec<Publication>,
    pub recovered: bool,
    /// v2: the subscription is positioned (`offset` and `epoch` are sent even when it is not
    /// recoverable).
    pub positioned: bool,
    /// v2: the client asked to recover (echoed so it knows the outcome applies).
    pub was_recovering: bool,
    /// v2: application data from the backend's subscribe answer.
    pub data: Option<Bytes>,
    /// v2 field 13: Fossil deltas were negotiated. On JSON the recovered publications then go
    /// as [`Push::DeltaPublication`] data does: `data` a JSON string of the raw bytes.
    pub delta: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryResult {
    /// In the order they are to be sent.
    pub publications: Vec<Publication>,
    pub epoch: String,
    pub offset: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshResult {
    pub client: String,
    pub version: String,
    pub expires: bool,
    pub ttl: u32,
}

/// A successful command result.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    Connect(ConnectResult),
    Subscribe(SubscribeResult),
    Unsubscribe,
    Publish,
    Presence(Vec<ClientInfo>),
    PresenceStats { num_clients: u32, num_users: u32 },
    History(HistoryResult),
    Ping,
    Rpc(Option<Bytes>),
    Refresh(RefreshResult),
    SubRefresh { expires: bool, ttl: u32 },
}

/// A reply: the command's id and its outcome.
pub type ReplyOutcome = Result<ReplyBody, ErrorCode>;

/// An asynchronous message to a client, not tied to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Push<'a> {
    Publication {
        channel: &'a str,
        publication: &'a Publication,
    },
    /// v2: a publication to a subscription that negotiated Fossil deltas. `publication.delta`
    /// says whether `data` is a patch. On JSON `data` is a JSON string holding the raw bytes,
    /// full data and patches alike (the client JSON-parses the string, or applies the patch to
    /// the bytes it holds); on Protobuf it is the same message as [`Push::Publication`].
    DeltaPublication {
        channel: &'a str,
        publication: &'a Publication,
    },
    Join {
        channel: &'a str,
        info: &'a ClientInfo,
    },
    Leave {
        channel: &'a str,
        info: &'a ClientInfo,
    },
    /// Server-side unsubscribe (API `unsubscribe`, or an expired/insufficient v2 subscription).
    Unsubscribe {
        channel: &'a str,
        code: UnsubscribeCode,
    },
    /// Asynchronous message to one client (`send` from the server).
    Message { data: &'a [u8] },
    /// Server-side subscribe at runtime.
    Subscribe {
        channel: &'a str,
        recoverable: bool,
        epoch: &'a str,
        offset: u64,
        /// v2 only: the subscription is positioned.
        positioned: bool,
        /// v2 only: custom data for the client (server API subscribe `data`).
        data: Option<&'a [u8]>,
    },
    /// v2 unidirectional transports: the connect result as the first push.
    Connect(&'a ConnectResult),
    /// v2 emulation and unidirectional transports: the server closes the connection (the
    /// transport has no close frame).
    Disconnect { code: u16, reason: &'a str },
    /// v2: the server changed the connection's expiry (server API `refresh`): `expires`
    /// false = it no longer expires; `ttl` seconds left otherwise.
    Refresh { expires: bool, ttl: u32 },
}

impl Push<'_> {
    /// Pushes only protocol v2 has (v1 encoders write nothing for them).
    pub fn is_v2_only(&self) -> bool {
        matches!(
            self,
            Push::Connect(_) | Push::Disconnect { .. } | Push::Refresh { .. }
        )
    }
}
