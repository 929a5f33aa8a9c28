//! Protobuf commands of both generations into the generation-independent [`Command`].
//!
//! Payload fields (`data`) become [`bytes::Bytes`] slices of one copy of the command, opaque as
//! in Centrifugo; an empty payload is `None`, like an absent JSON key (proto3 cannot tell the
//! two apart, and the Go server treats both as missing).

use bytes::Bytes;

use super::{v1, v2, wire};
use crate::command::{
    ChannelRequest, Command, CommandKind, ConnectRequest, DecodeError, HistoryRequest,
    PublishRequest, RefreshRequest, RpcRequest, SendRequest, StreamPosition, SubRefreshRequest,
    SubscribeRequest,
};
use crate::Generation;

/// Decodes one Protobuf `Command` (without its length prefix).
///
/// `generation` is `None` for a connection's first command: a v1 Command only has fields 1–3
/// (`id`, `method`, `params`) and v2 reserves them, so any field numbered 4 or more means v2.
/// A forced generation wins over the shape: a v2-looking command on a v1 connection is read
/// with the v1 schema (its unknown fields skipped), as the JSON decoder does.
pub fn decode_command(
    bytes: &[u8],
    generation: Option<Generation>,
) -> Result<(Generation, Command), DecodeError> {
    let generation = match generation {
        Some(g) => g,
        None if wire::has_field_from(bytes, 4)? => Generation::V2,
        None => Generation::V1,
    };
    // One copy; every `bytes` field below is a cheap slice of it.
    let bytes = Bytes::copy_from_slice(bytes);
    let command = match generation {
        Generation::V1 => decode_v1(bytes)?,
        Generation::V2 => decode_v2(bytes)?,
    };
    Ok((generation, command))
}

fn malformed(e: prost::DecodeError) -> DecodeError {
    DecodeError::Malformed(format!("protobuf: {e}"))
}

fn decode<M: prost::Message + Default>(b: Bytes) -> Result<M, DecodeError> {
    M::decode(b).map_err(malformed)
}

fn payload(b: Bytes) -> Option<Bytes> {
    (!b.is_empty()).then_some(b)
}

fn decode_v1(bytes: Bytes) -> Result<Command, DecodeError> {
    let c: v1::Command = decode(bytes)?;
    let p = c.params;
    let channel = |p: Bytes| -> Result<ChannelRequest, DecodeError> {
        // Unsubscribe, Presence and PresenceStats requests share the one-field shape.
        let r: v1::UnsubscribeRequest = decode(p)?;
        Ok(ChannelRequest { channel: r.channel })
    };
    let kind = match v1::MethodType::try_from(c.method) {
        Ok(v1::MethodType::Connect) => {
            let r: v1::ConnectRequest = decode(p)?;
            CommandKind::Connect(ConnectRequest {
                token: r.token,
                data: payload(r.data),
                subs: r.subs.into_iter().map(|(k, v)| (k, sub_v1(v))).collect(),
                name: r.name,
                version: r.version,
                headers: Default::default(),
            })
        }
        Ok(v1::MethodType::Subscribe) => CommandKind::Subscribe(sub_v1(decode(p)?)),
        Ok(v1::MethodType::Unsubscribe) => CommandKind::Unsubscribe(channel(p)?),
        Ok(v1::MethodType::Publish) => CommandKind::Publish(publish(decode(p)?)),
        Ok(v1::MethodType::Presence) => CommandKind::Presence(channel(p)?),
        Ok(v1::MethodType::PresenceStats) => CommandKind::PresenceStats(channel(p)?),
        Ok(v1::MethodType::History) => {
            // 2.x history has no paging: whatever a newer client adds is ignored.
            let r: v1::HistoryRequest = decode(p)?;
            CommandKind::History(HistoryRequest {
                channel: r.channel,
                limit: -1,
                since: None,
                reverse: false,
            })
        }
        Ok(v1::MethodType::Ping) => {
            let _: v1::PingRequest = decode(p)?;
            CommandKind::Ping
        }
        Ok(v1::MethodType::Send) => CommandKind::Send(send(decode(p)?)),
        Ok(v1::MethodType::Rpc) => CommandKind::Rpc(rpc(decode(p)?)),
        Ok(v1::MethodType::Refresh) => CommandKind::Refresh(refresh(decode(p)?)),
        Ok(v1::MethodType::SubRefresh) => CommandKind::SubRefresh(sub_refresh(decode(p)?)),
        // The enum is an i32 on the wire; show it as the client's uint32-ish number.
        Err(_) => return Err(DecodeError::UnknownMethod((c.method as u32).to_string())),
    };
    Ok(Command { id: c.id, kind })
}

/// A bare v2 `ConnectRequest` (the unidirectional gRPC transport's request, whose schema has
/// the same field numbers).
pub fn decode_connect_request(bytes: &[u8]) -> Result<ConnectRequest, DecodeError> {
    let r: v2::ConnectRequest = decode(Bytes::copy_from_slice(bytes))?;
    Ok(ConnectRequest {
        token: r.token,
        data: payload(r.data),
        subs: r.subs.into_iter().map(|(k, v)| (k, sub_v2(v))).collect(),
        name: r.name,
        version: r.version,
        headers: r.headers,
    })
}

fn decode_v2(bytes: Bytes) -> Result<Command, DecodeError> {
    let c: v2::Command = decode(bytes)?;
    let channel = |channel: String| ChannelRequest { channel };
    // At most one field is set by real clients; if several are, the first in field order
    // wins, as in the JSON decoder.
    let kind = if let Some(r) = c.connect {
        CommandKind::Connect(ConnectRequest {
            token: r.token,
            data: payload(r.data),
            subs: r.subs.into_iter().map(|(k, v)| (k, sub_v2(v))).collect(),
            name: r.name,
            version: r.version,
            headers: r.headers,
        })
    } else if let Some(r) = c.subscribe {
        CommandKind::Subscribe(sub_v2(r))
    } else if let Some(r) = c.unsubscribe {
        CommandKind::Unsubscribe(channel(r.channel))
    } else if let Some(r) = c.publish {
        CommandKind::Publish(publish(r))
    } else if let Some(r) = c.presence {
        CommandKind::Presence(channel(r.channel))
    } else if let Some(r) = c.presence_stats {
        CommandKind::PresenceStats(channel(r.channel))
    } else if let Some(r) = c.history {
        CommandKind::History(HistoryRequest {
            channel: r.channel,
            limit: r.limit.into(),
            since: r.since.map(|s| StreamPosition {
                offset: s.offset,
                epoch: s.epoch,
            }),
            reverse: r.reverse,
        })
    } else if c.ping.is_some() {
        CommandKind::Ping
    } else if let Some(r) = c.send {
        CommandKind::Send(send(r))
    } else if let Some(r) = c.rpc {
        CommandKind::Rpc(rpc(r))
    } else if let Some(r) = c.refresh {
        CommandKind::Refresh(refresh(r))
    } else if let Some(r) = c.sub_refresh {
        CommandKind::SubRefresh(sub_refresh(r))
    } else if c.id == 0 {
        CommandKind::Pong
    } else {
        return Err(DecodeError::UnknownMethod("empty command".to_string()));
    };
    Ok(Command { id: c.id, kind })
}

fn sub_v1(r: v1::SubscribeRequest) -> SubscribeRequest {
    SubscribeRequest {
        channel: r.channel,
        token: r.token,
        recover: r.recover,
        seq: r.seq,
        gen: r.gen,
        epoch: r.epoch,
        offset: r.offset,
        join_leave: false,
        data: payload(r.data),
        ..Default::default()
    }
}

fn sub_v2(r: v2::SubscribeRequest) -> SubscribeRequest {
    SubscribeRequest {
        channel: r.channel,
        token: r.token,
        recover: r.recover,
        seq: 0,
        gen: 0,
        epoch: r.epoch,
        offset: r.offset,
        join_leave: r.join_leave,
        data: payload(r.data),
        delta: r.delta,
        tf: r.tf,
        positioned: r.positioned,
        recoverable: r.recoverable,
        flag: r.flag,
        sub_type: r.sub_type,
    }
}

fn publish(r: v1::PublishRequest) -> PublishRequest {
    PublishRequest {
        channel: r.channel,
        data: payload(r.data),
    }
}

fn send(r: v1::SendRequest) -> SendRequest {
    SendRequest {
        data: payload(r.data),
    }
}

fn rpc(r: v1::RpcRequest) -> RpcRequest {
    RpcRequest {
        data: payload(r.data),
        method: r.method,
    }
}

fn refresh(r: v1::RefreshRequest) -> RefreshRequest {
    RefreshRequest { token: r.token }
}

fn sub_refresh(r: v1::SubRefreshRequest) -> SubRefreshRequest {
    SubRefreshRequest {
        channel: r.channel,
        token: r.token,
    }
}
