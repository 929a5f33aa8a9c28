//! The gRPC messages of each event: requests built from the connection and the event (the
//! common head, `user`, payloads as raw `bytes` or, in binary mode, the `b64*` strings), and
//! answers read back into the core's grants with the D4 payload rule of `payload::pick`.

use std::collections::HashMap;

use bytes::Bytes;
use rotor_core::backend::{
    BackendError, BackendStyle, ConnContext, ConnectEvent, ConnectGrant, PublishEvent,
    PublishGrant, RefreshGrant, RpcEvent, ServerSub, SubOverride, SubRefreshEvent, SubRefreshGrant,
    SubscribeEvent, SubscribeGrant,
};

use crate::payload::{self, Pick};
use crate::proto;
use crate::{CallError, CallResult};

/// The head every request starts with.
struct Head {
    client: String,
    transport: String,
    protocol: String,
    encoding: String,
}

fn head(ctx: &ConnContext, binary: bool) -> Head {
    Head {
        client: ctx.client.to_string(),
        transport: ctx.transport.to_string(),
        protocol: payload::protocol_name(ctx).to_string(),
        encoding: payload::encoding_name(binary).to_string(),
    }
}

/// A request payload as (`data`, `b64data`): one of them is set, or neither when absent.
fn payload_fields(binary: bool, data: Option<&Bytes>) -> (Bytes, String) {
    match data {
        None => (Bytes::new(), String::new()),
        Some(d) if binary => (Bytes::new(), payload::to_b64(d)),
        Some(d) => (d.clone(), String::new()),
    }
}

pub(super) fn connect_request(
    ctx: &ConnContext,
    binary: bool,
    ev: &ConnectEvent,
) -> proto::ConnectRequest {
    let h = head(ctx, binary);
    let (data, b64data) = payload_fields(binary, ev.data.as_ref());
    proto::ConnectRequest {
        client: h.client,
        transport: h.transport,
        protocol: h.protocol,
        encoding: h.encoding,
        data,
        b64data,
        name: ev.name.clone(),
        version: ev.version.clone(),
        channels: ev.channels.clone(),
    }
}

pub(super) fn refresh_request(
    ctx: &ConnContext,
    binary: bool,
    meta: Bytes,
) -> proto::RefreshRequest {
    let h = head(ctx, binary);
    proto::RefreshRequest {
        client: h.client,
        transport: h.transport,
        protocol: h.protocol,
        encoding: h.encoding,
        user: ctx.user.clone(),
        meta,
        labels: Default::default(),
    }
}

pub(super) fn subscribe_request(
    ctx: &ConnContext,
    binary: bool,
    meta: Bytes,
    ev: &SubscribeEvent,
) -> proto::SubscribeRequest {
    let h = head(ctx, binary);
    let (data, b64data) = payload_fields(binary, ev.data.as_ref());
    proto::SubscribeRequest {
        client: h.client,
        transport: h.transport,
        protocol: h.protocol,
        encoding: h.encoding,
        user: ctx.user.clone(),
        channel: ev.channel.clone(),
        token: String::new(),
        meta,
        data,
        b64data,
        labels: Default::default(),
    }
}

pub(super) fn publish_request(
    ctx: &ConnContext,
    binary: bool,
    meta: Bytes,
    ev: &PublishEvent,
) -> proto::PublishRequest {
    let h = head(ctx, binary);
    let (data, b64data) = payload_fields(binary, Some(&ev.data));
    proto::PublishRequest {
        client: h.client,
        transport: h.transport,
        protocol: h.protocol,
        encoding: h.encoding,
        user: ctx.user.clone(),
        channel: ev.channel.clone(),
        data,
        b64data,
        meta,
        labels: Default::default(),
    }
}

pub(super) fn sub_refresh_request(
    ctx: &ConnContext,
    binary: bool,
    meta: Bytes,
    ev: &SubRefreshEvent,
) -> proto::SubRefreshRequest {
    let h = head(ctx, binary);
    proto::SubRefreshRequest {
        client: h.client,
        transport: h.transport,
        protocol: h.protocol,
        encoding: h.encoding,
        user: ctx.user.clone(),
        channel: ev.channel.clone(),
        meta,
        labels: Default::default(),
    }
}

pub(super) fn rpc_request(
    ctx: &ConnContext,
    binary: bool,
    meta: Bytes,
    ev: &RpcEvent,
) -> proto::RpcRequest {
    let h = head(ctx, binary);
    let (data, b64data) = payload_fields(binary, ev.data.as_ref());
    proto::RpcRequest {
        client: h.client,
        transport: h.transport,
        protocol: h.protocol,
        encoding: h.encoding,
        user: ctx.user.clone(),
        method: ev.method.clone(),
        data,
        b64data,
        meta,
        labels: Default::default(),
    }
}

/// The answer's envelope, checked in Centrifugo's order: `disconnect`, then `error`, then
/// `result` (`None` when absent).
pub(super) fn answer<R>(
    result: Option<R>,
    error: Option<proto::Error>,
    disconnect: Option<proto::Disconnect>,
) -> CallResult<Option<R>> {
    if let Some(d) = disconnect {
        let code = u16::try_from(d.code).map_err(|_| {
            CallError::Failed(format!("disconnect code {} is out of range", d.code))
        })?;
        return Err(CallError::Answer(BackendError::Disconnect {
            code,
            reason: d.reason,
            reconnect: false,
        }));
    }
    if let Some(e) = error {
        return Err(CallError::Answer(BackendError::Error {
            code: e.code,
            message: e.message,
            temporary: e.temporary,
        }));
    }
    Ok(result)
}

fn expire_at(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

fn non_empty(b: Bytes) -> Option<Bytes> {
    (!b.is_empty()).then_some(b)
}

fn pick(
    style: BackendStyle,
    ctx: &ConnContext,
    json: &Bytes,
    b64: &str,
    field: &str,
) -> Result<Option<Bytes>, String> {
    payload::pick(style, ctx, Pick::Standard, Some(json), Some(b64), field)
}

fn overrides(o: Option<proto::SubscribeOptionOverride>) -> SubOverride {
    let Some(o) = o else {
        return SubOverride::default();
    };
    let v = |b: Option<proto::BoolValue>| b.map(|b| b.value);
    SubOverride {
        presence: v(o.presence),
        join_leave: v(o.join_leave),
        force_recovery: v(o.force_recovery),
        force_positioning: v(o.force_positioning),
        force_push_join_leave: v(o.force_push_join_leave),
    }
}

/// `channels` first, then `subs` (a channel in both takes the `subs` options; `expire_at`,
/// `cache_recover` and the PRO fields of `subs` are not used).
pub(super) fn connect_grant(
    style: BackendStyle,
    ctx: &ConnContext,
    r: proto::ConnectResult,
) -> Result<ConnectGrant, String> {
    let info = pick(style, ctx, &r.info, &r.b64info, "info")?;
    let data = pick(style, ctx, &r.data, &r.b64data, "data")?;
    let mut subs: Vec<ServerSub> = Vec::with_capacity(r.channels.len() + r.subs.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for channel in r.channels {
        if at.contains_key(&channel) {
            continue;
        }
        at.insert(channel.clone(), subs.len());
        subs.push(ServerSub {
            channel,
            ..ServerSub::default()
        });
    }
    for (channel, o) in r.subs {
        let sub = ServerSub {
            info: pick(style, ctx, &o.info, &o.b64info, "info")?,
            data: pick(style, ctx, &o.data, &o.b64data, "data")?,
            overrides: overrides(o.r#override),
            channel,
        };
        match at.get(&sub.channel).and_then(|&i| subs.get_mut(i)) {
            Some(slot) => *slot = sub,
            None => {
                at.insert(sub.channel.clone(), subs.len());
                subs.push(sub);
            }
        }
    }
    Ok(ConnectGrant {
        user: r.user,
        expire_at: expire_at(r.expire_at),
        info,
        data,
        subs,
        meta: non_empty(r.meta),
    })
}

pub(super) fn refresh_grant(
    style: BackendStyle,
    ctx: &ConnContext,
    r: proto::RefreshResult,
) -> Result<RefreshGrant, String> {
    Ok(RefreshGrant {
        expired: r.expired,
        expire_at: expire_at(r.expire_at),
        info: pick(style, ctx, &r.info, &r.b64info, "info")?,
        meta: non_empty(r.meta),
    })
}

pub(super) fn subscribe_grant(
    style: BackendStyle,
    ctx: &ConnContext,
    r: proto::SubscribeResult,
) -> Result<SubscribeGrant, String> {
    Ok(SubscribeGrant {
        info: pick(style, ctx, &r.info, &r.b64info, "info")?,
        data: pick(style, ctx, &r.data, &r.b64data, "data")?,
        expire_at: expire_at(r.expire_at),
        overrides: overrides(r.r#override),
    })
}

pub(super) fn publish_grant(
    style: BackendStyle,
    ctx: &ConnContext,
    r: proto::PublishResult,
) -> Result<PublishGrant, String> {
    let data = payload::pick(
        style,
        ctx,
        Pick::Publish,
        Some(&r.data),
        Some(&r.b64data),
        "data",
    )?;
    Ok(PublishGrant {
        data,
        skip_history: r.skip_history,
    })
}

pub(super) fn sub_refresh_grant(
    style: BackendStyle,
    ctx: &ConnContext,
    r: proto::SubRefreshResult,
) -> Result<SubRefreshGrant, String> {
    Ok(SubRefreshGrant {
        expired: r.expired,
        expire_at: expire_at(r.expire_at),
        info: pick(style, ctx, &r.info, &r.b64info, "info")?,
    })
}

pub(super) fn rpc_data(
    style: BackendStyle,
    ctx: &ConnContext,
    r: proto::RpcResult,
) -> Result<Option<Bytes>, String> {
    pick(style, ctx, &r.data, &r.b64data, "data")
}
