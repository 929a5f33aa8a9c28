//! Protobuf encoding of replies and pushes for both generations, the twin of
//! [`crate::json::JsonEncoder`]: same inputs, same rules (which fields appear, v1 seq/gen versus
//! offset, the order of recovered publications), only the bytes differ.
//!
//! Messages are written straight into the caller's buffer ([`wire::delimited`] back-fills each
//! length prefix) instead of building prost structs: no per-reply clones of strings or payloads.
//! Field numbers are those of `proto/client_v1.proto` and `proto/client_v2.proto`; the tests
//! read every message back with the prost types of [`super::v1`] / [`super::v2`].

use super::wire::{self, boolean, bytes, message, message_bytes, string, string_always, uint};
use crate::codes::ErrorCode;
use crate::reply::{
    ConnectResult, HistoryResult, Push, RefreshResult, ReplyBody, ReplyOutcome, SubscribeResult,
};
use crate::types::{seq_gen, ClientInfo, PositionFormat, Publication};
use crate::Generation;

/// Encodes for one (generation, position format) pair; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtobufEncoder {
    pub generation: Generation,
    /// Applies to v1 only; v2 always uses offsets.
    pub positions: PositionFormat,
}

impl ProtobufEncoder {
    pub fn new(generation: Generation, positions: PositionFormat) -> Self {
        Self {
            generation,
            positions,
        }
    }

    fn v2(&self) -> bool {
        self.generation == Generation::V2
    }

    fn seq_mode(&self) -> bool {
        self.generation == Generation::V1 && self.positions == PositionFormat::SeqGen
    }

    /// Appends one length-prefixed `Reply` answering command `id`.
    pub fn reply(&self, buf: &mut Vec<u8>, id: u32, outcome: &ReplyOutcome) {
        wire::delimited(buf, |b| {
            uint(b, 1, id.into()); // Reply.id
            match outcome {
                Err(e) => message(b, 2, |b| self.error(b, e)), // Reply.error
                Ok(body) => self.body(b, body),
            }
        });
    }

    fn error(&self, b: &mut Vec<u8>, e: &ErrorCode) {
        uint(b, 1, e.code.into());
        string(b, 2, &e.message);
        if self.v2() {
            boolean(b, 3, e.temporary());
        }
    }

    fn body(&self, b: &mut Vec<u8>, body: &ReplyBody) {
        if !self.v2() {
            // v1: every result is the bytes of its message in Reply.result (3); ping has none.
            if !matches!(body, ReplyBody::Ping) {
                message_bytes(b, 3, |b| self.result(b, body));
            }
            return;
        }
        // v2: the result field is named (numbered) after the command.
        let field = match body {
            ReplyBody::Connect(_) => 5,
            ReplyBody::Subscribe(_) => 6,
            ReplyBody::Unsubscribe => 7,
            ReplyBody::Publish => 8,
            ReplyBody::Presence(_) => 9,
            ReplyBody::PresenceStats { .. } => 10,
            ReplyBody::History(_) => 11,
            ReplyBody::Ping => 12,
            ReplyBody::Rpc(_) => 13,
            ReplyBody::Refresh(_) => 14,
            ReplyBody::SubRefresh { .. } => 15,
        };
        message(b, field, |b| self.result(b, body));
    }

    fn result(&self, b: &mut Vec<u8>, body: &ReplyBody) {
        match body {
            ReplyBody::Unsubscribe | ReplyBody::Publish | ReplyBody::Ping => {}
            ReplyBody::Connect(r) => self.connect(b, r),
            ReplyBody::Subscribe(r) => self.subscribe(b, r),
            ReplyBody::Presence(clients) => {
                for c in clients {
                    // PresenceResult.presence: map<client id, ClientInfo>
                    message(b, 1, |b| {
                        string_always(b, 1, &c.client);
                        message(b, 2, |b| client_info(b, c));
                    });
                }
            }
            ReplyBody::PresenceStats {
                num_clients,
                num_users,
            } => {
                uint(b, 1, (*num_clients).into());
                uint(b, 2, (*num_users).into());
            }
            ReplyBody::History(h) => self.history(b, h),
            ReplyBody::Rpc(data) => bytes(b, 1, data.as_deref().unwrap_or_default()),
            ReplyBody::Refresh(r) => self.refresh(b, r),
            ReplyBody::SubRefresh { expires, ttl } => {
                boolean(b, 1, *expires);
                uint(b, 2, (*ttl).into());
            }
        }
    }

    fn connect(&self, b: &mut Vec<u8>, r: &ConnectResult) {
        string(b, 1, &r.client);
        string(b, 2, &r.version);
        boolean(b, 3, r.expires);
        uint(b, 4, r.ttl.into());
        bytes(b, 5, r.data.as_deref().unwrap_or_default());
        for (channel, sub) in &r.subs {
            // ConnectResult.subs: map<channel, SubscribeResult>
            message(b, 6, |b| {
                string_always(b, 1, channel);
                message(b, 2, |b| self.subscribe(b, sub));
            });
        }
        if self.v2() {
            uint(b, 7, r.ping.into());
            boolean(b, 8, r.pong);
            string(b, 9, &r.session);
            string(b, 10, &r.node);
        }
    }

    /// The `Connect` push message: the connect result's fields under other numbers.
    fn connect_push(&self, b: &mut Vec<u8>, r: &ConnectResult) {
        string(b, 1, &r.client);
        string(b, 2, &r.version);
        bytes(b, 3, r.data.as_deref().unwrap_or_default());
        for (channel, sub) in &r.subs {
            message(b, 4, |b| {
                string_always(b, 1, channel);
                message(b, 2, |b| self.subscribe(b, sub));
            });
        }
        boolean(b, 5, r.expires);
        uint(b, 6, r.ttl.into());
        uint(b, 7, r.ping.into());
        boolean(b, 8, r.pong);
        string(b, 9, &r.session);
        string(b, 10, &r.node);
    }

    fn subscribe(&self, b: &mut Vec<u8>, r: &SubscribeResult) {
        boolean(b, 1, r.expires);
        uint(b, 2, r.ttl.into());
        boolean(b, 3, r.recoverable);
        if r.recoverable && self.seq_mode() {
            let (seq, gen) = seq_gen(r.offset);
            uint(b, 4, seq.into());
            uint(b, 5, gen.into());
        }
        string(b, 6, &r.epoch);
        // Legacy seq/gen recovery sends newest first; offsets go oldest first.
        if self.seq_mode() {
            for p in r.publications.iter().rev() {
                message(b, 7, |b| self.publication(b, p));
            }
        } else {
            // A delta subscription's recovered patches carry `delta` (v2 only has `r.delta`).
            let delta_form = r.delta && self.v2();
            for p in &r.publications {
                message(b, 7, |b| self.publication_form(b, p, delta_form));
            }
        }
        boolean(b, 8, r.recovered);
        if (r.recoverable || (self.v2() && r.positioned)) && !self.seq_mode() {
            uint(b, 9, r.offset);
        }
        if self.v2() {
            boolean(b, 10, r.positioned);
            bytes(b, 11, r.data.as_deref().unwrap_or_default());
            boolean(b, 12, r.was_recovering);
            boolean(b, 13, r.delta);
        }
    }

    fn history(&self, b: &mut Vec<u8>, h: &HistoryResult) {
        for p in &h.publications {
            message(b, 1, |b| self.publication(b, p));
        }
        if self.v2() {
            string(b, 2, &h.epoch);
            uint(b, 3, h.offset);
        }
    }

    fn refresh(&self, b: &mut Vec<u8>, r: &RefreshResult) {
        if !self.v2() {
            string(b, 1, &r.client);
            string(b, 2, &r.version);
        }
        boolean(b, 3, r.expires);
        uint(b, 4, r.ttl.into());
    }

    /// Writes the fields of a `Publication` message (no length prefix).
    pub fn publication(&self, b: &mut Vec<u8>, p: &Publication) {
        self.publication_form(b, p, false);
    }

    /// Writes a `Publication`; `delta_form` (delta subscriptions, v2): with its `delta` flag (8).
    /// Elsewhere the flag never goes out: a subscriber without deltas cannot apply a patch.
    fn publication_form(&self, b: &mut Vec<u8>, p: &Publication, delta_form: bool) {
        if self.seq_mode() {
            let (seq, gen) = seq_gen(p.offset);
            uint(b, 1, seq.into());
            uint(b, 2, gen.into());
        }
        bytes(b, 4, &p.data);
        if let Some(info) = &p.info {
            message(b, 5, |b| client_info(b, info));
        }
        if !self.seq_mode() {
            uint(b, 6, p.offset);
        }
        if let (true, Some(tags)) = (self.v2(), &p.tags) {
            for (k, v) in tags.iter() {
                message(b, 7, |e| {
                    string(e, 1, k);
                    string(e, 2, v);
                });
            }
        }
        if delta_form {
            boolean(b, 8, p.delta);
        }
    }

    /// Appends one length-prefixed `Reply` carrying `push` (and no id).
    pub fn push(&self, buf: &mut Vec<u8>, push: &Push<'_>) {
        if !self.v2() && push.is_v2_only() {
            // v1 has no connect or disconnect push (its transports close with a frame).
            return;
        }
        wire::delimited(buf, |b| {
            if self.v2() {
                message(b, 4, |b| self.push_v2(b, push)); // Reply.push
            } else {
                message_bytes(b, 3, |b| self.push_v1(b, push)); // Reply.result
            }
        });
    }

    fn push_v1(&self, b: &mut Vec<u8>, push: &Push<'_>) {
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
        uint(b, 1, ty); // Push.type (PUBLICATION = 0 is omitted)
        string(b, 2, channel);
        message_bytes(b, 3, |b| match push {
            Push::Publication { publication, .. } | Push::DeltaPublication { publication, .. } => {
                self.publication(b, publication)
            }
            Push::Join { info, .. } | Push::Leave { info, .. } => {
                message(b, 1, |b| client_info(b, info));
            }
            // Unsub{resubscribe: false}: an empty message.
            Push::Unsubscribe { .. } => {}
            Push::Message { data } => bytes(b, 1, data),
            Push::Connect(_) | Push::Disconnect { .. } | Push::Refresh { .. } => {}
            Push::Subscribe {
                recoverable,
                epoch,
                offset,
                ..
            } => {
                boolean(b, 1, *recoverable);
                if self.seq_mode() {
                    let (seq, gen) = seq_gen(*offset);
                    uint(b, 2, seq.into());
                    uint(b, 3, gen.into());
                }
                string(b, 4, epoch);
                if !self.seq_mode() {
                    uint(b, 5, *offset);
                }
            }
        });
    }

    fn push_v2(&self, b: &mut Vec<u8>, push: &Push<'_>) {
        match push {
            Push::Publication {
                channel,
                publication,
            } => {
                string(b, 2, channel);
                message(b, 4, |b| self.publication(b, publication));
            }
            // Raw bytes as for anyone: a delta subscription's full data is the plain message, a
            // patch only adds `delta`.
            Push::DeltaPublication {
                channel,
                publication,
            } => {
                string(b, 2, channel);
                message(b, 4, |b| self.publication_form(b, publication, true));
            }
            Push::Join { channel, info } => {
                string(b, 2, channel);
                message(b, 5, |b| message(b, 1, |b| client_info(b, info)));
            }
            Push::Leave { channel, info } => {
                string(b, 2, channel);
                message(b, 6, |b| message(b, 1, |b| client_info(b, info)));
            }
            Push::Unsubscribe { channel, code } => {
                string(b, 2, channel);
                message(b, 7, |b| {
                    uint(b, 2, code.code.into());
                    string(b, 3, code.reason);
                });
            }
            Push::Message { data } => message(b, 8, |b| bytes(b, 1, data)),
            Push::Subscribe {
                channel,
                recoverable,
                epoch,
                offset,
                positioned,
                data,
            } => {
                string(b, 2, channel);
                message(b, 9, |b| {
                    boolean(b, 1, *recoverable);
                    string(b, 4, epoch);
                    uint(b, 5, *offset);
                    boolean(b, 6, *positioned);
                    if let Some(data) = data {
                        bytes(b, 7, data);
                    }
                });
            }
            Push::Connect(r) => message(b, 10, |b| self.connect_push(b, r)),
            Push::Disconnect { code, reason } => message(b, 11, |b| {
                uint(b, 1, (*code).into());
                string(b, 2, reason);
            }),
            Push::Refresh { expires, ttl } => message(b, 12, |b| {
                boolean(b, 1, *expires);
                uint(b, 2, (*ttl).into());
            }),
        }
    }

    /// The v2 server ping: an empty `Reply`, i.e. the single length byte 0.
    pub fn ping(buf: &mut Vec<u8>) {
        buf.push(0);
    }
}

/// Writes the fields of a `ClientInfo` message (no length prefix).
pub fn client_info(b: &mut Vec<u8>, c: &ClientInfo) {
    string(b, 1, &c.user);
    string(b, 2, &c.client);
    bytes(b, 3, c.conn_info.as_deref().unwrap_or_default());
    bytes(b, 4, c.chan_info.as_deref().unwrap_or_default());
}
