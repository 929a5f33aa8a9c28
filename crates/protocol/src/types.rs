//! Values shared by both generations: who a client is and what a publication carries.

use bytes::Bytes;
use std::sync::Arc;

/// A connection as others see it (presence, join/leave, a client publication's `info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub user: String,
    pub client: String,
    /// Raw JSON from the connection token's `info`/`b64info`.
    pub conn_info: Option<Bytes>,
    /// Raw JSON from the subscription token's `info`/`b64info`.
    pub chan_info: Option<Bytes>,
}

/// A message in a channel. `data` is the raw JSON the publisher sent, never re-parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publication {
    /// Position in the channel stream; 0 when the channel keeps no history.
    pub offset: u64,
    pub data: Bytes,
    /// The publisher, for publications made by a client; absent for server API publications.
    pub info: Option<Arc<ClientInfo>>,
    /// Publication tags (server API `tags`); v2 clients see them, v1 clients never do.
    pub tags: Option<Arc<Tags>>,
    /// v2 wire field `delta` (8): `data` is a Fossil patch against the previous publication of
    /// the stream. Set only on what is encoded for a delta subscriber, never stored.
    pub delta: bool,
    /// Engine side, never on a client's wire: for a publication marked for delta delivery
    /// (API `delta`, namespace `delta_publish`), the data of the previous publication of the
    /// channel's stream, captured atomically with the append and shipped with it to every
    /// node (Centrifugo's `prev_data`); `None` when not marked or there is no predecessor.
    pub prev_data: Option<Bytes>,
}

/// Publication tags: string keys and values, kept sorted so every encoding is deterministic.
pub type Tags = std::collections::BTreeMap<String, String>;

/// How v1 connections see stream positions (`v3_use_offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionFormat {
    /// Centrifugo 2.x default: `seq` = low 32 bits, `gen` = high 32 bits; newest first in
    /// recovered publications.
    #[default]
    SeqGen,
    /// `offset` as is, oldest first.
    Offset,
}

/// Splits an offset into the legacy (`seq`, `gen`) pair.
pub fn seq_gen(offset: u64) -> (u32, u32) {
    (offset as u32, (offset >> 32) as u32)
}
