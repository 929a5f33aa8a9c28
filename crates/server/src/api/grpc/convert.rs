//! Conversions between the generated prost messages of both generations and the typed API of
//! the core: requests into `rotor_protocol::api` params (an empty `bytes` field is absent, as
//! a Go server sees a nil slice), results into the generation's result messages.

use bytes::Bytes;
use rotor_core::api::{ApiError, ApiResult, NodeInfo};
use rotor_core::engine::StreamPosition;
use rotor_protocol::api::{
    ApiCommand, BoolValue, BroadcastParams, ChannelParams, ChannelsParams, DisconnectParams,
    DisconnectSpec, HistoryParams, PublishParams, RefreshParams, RpcParams, SubscribeOverride,
    SubscribeParams, UnsubscribeParams,
};
use rotor_protocol::ClientInfo;

use super::{v1, v6};

/// An empty `bytes` field is an absent one.
pub(crate) fn opt(b: Bytes) -> Option<Bytes> {
    (!b.is_empty()).then_some(b)
}

fn u32_sat(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// 2.x (`api.Centrifugo`)

pub(crate) fn v1_error(e: ApiError) -> v1::Error {
    v1::Error {
        code: e.code,
        message: e.message(true).to_string(),
    }
}

pub(crate) fn v1_publish(r: v1::PublishRequest) -> ApiCommand {
    ApiCommand::Publish(PublishParams {
        channel: r.channel,
        data: opt(r.data),
        ..Default::default()
    })
}

pub(crate) fn v1_broadcast(r: v1::BroadcastRequest) -> ApiCommand {
    ApiCommand::Broadcast(BroadcastParams {
        channels: r.channels,
        data: opt(r.data),
        ..Default::default()
    })
}

pub(crate) fn v1_unsubscribe(r: v1::UnsubscribeRequest) -> ApiCommand {
    ApiCommand::Unsubscribe(UnsubscribeParams {
        channel: r.channel,
        user: r.user,
        ..Default::default()
    })
}

pub(crate) fn v1_disconnect(r: v1::DisconnectRequest) -> ApiCommand {
    ApiCommand::Disconnect(DisconnectParams {
        user: r.user,
        ..Default::default()
    })
}

pub(crate) fn channel(channel: String) -> ChannelParams {
    ChannelParams { channel }
}

pub(crate) fn v1_history(channel: String) -> ApiCommand {
    // The core returns every retained publication for 2.x whatever the limit.
    ApiCommand::History(HistoryParams {
        channel,
        ..Default::default()
    })
}

pub(crate) fn v1_rpc(r: v1::RpcRequest) -> ApiCommand {
    ApiCommand::Rpc(RpcParams {
        method: r.method,
        params: opt(r.params),
    })
}

fn v1_client_info(c: &ClientInfo) -> v1::ClientInfo {
    v1::ClientInfo {
        user: c.user.clone(),
        client: c.client.clone(),
        conn_info: c.conn_info.clone().unwrap_or_default(),
        chan_info: c.chan_info.clone().unwrap_or_default(),
    }
}

pub(crate) fn v1_presence(list: &[ClientInfo]) -> v1::PresenceResult {
    v1::PresenceResult {
        presence: list
            .iter()
            .map(|c| (c.client.clone(), v1_client_info(c)))
            .collect(),
    }
}

pub(crate) fn v1_history_result(page: rotor_core::engine::HistoryPage) -> v1::HistoryResult {
    v1::HistoryResult {
        publications: page
            .publications
            .into_iter()
            .map(|p| v1::Publication {
                uid: String::new(),
                data: p.data,
                info: p.info.as_deref().map(v1_client_info),
            })
            .collect(),
    }
}

pub(crate) fn v1_info(nodes: &[NodeInfo]) -> v1::InfoResult {
    v1::InfoResult {
        nodes: nodes
            .iter()
            .map(|n| v1::NodeResult {
                uid: n.uid.clone(),
                name: n.name.clone(),
                version: n.version.clone(),
                num_clients: u32_sat(n.num_clients),
                num_users: u32_sat(n.num_users),
                num_channels: u32_sat(n.num_channels),
                uptime: u32_sat(n.uptime_secs),
                // Rotor nodes aggregate no metrics: 2.x sends `metrics` only when present.
                metrics: None,
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Current (`centrifugal.centrifugo.api.CentrifugoApi`)

pub(crate) fn v6_error(e: ApiError) -> v6::Error {
    v6::Error {
        code: e.code,
        message: e.message(false).to_string(),
    }
}

pub(crate) fn v6_publish(r: v6::PublishRequest) -> ApiCommand {
    ApiCommand::Publish(PublishParams {
        channel: r.channel,
        data: opt(r.data),
        b64data: r.b64data,
        skip_history: r.skip_history,
        tags: r.tags,
        idempotency_key: r.idempotency_key,
        delta: r.delta,
        version: r.version,
        version_epoch: r.version_epoch,
    })
}

pub(crate) fn v6_broadcast(r: v6::BroadcastRequest) -> ApiCommand {
    ApiCommand::Broadcast(BroadcastParams {
        channels: r.channels,
        data: opt(r.data),
        b64data: r.b64data,
        skip_history: r.skip_history,
        tags: r.tags,
        idempotency_key: r.idempotency_key,
        delta: r.delta,
        version: r.version,
        version_epoch: r.version_epoch,
    })
}

fn position(p: Option<v6::StreamPosition>) -> Option<rotor_protocol::command::StreamPosition> {
    p.map(|p| rotor_protocol::command::StreamPosition {
        offset: p.offset,
        epoch: p.epoch,
    })
}

fn bool_value(v: Option<v6::BoolValue>) -> Option<BoolValue> {
    v.map(|v| BoolValue { value: v.value })
}

pub(crate) fn v6_subscribe(r: v6::SubscribeRequest) -> ApiCommand {
    ApiCommand::Subscribe(SubscribeParams {
        channel: r.channel,
        user: r.user,
        expire_at: r.expire_at,
        info: opt(r.info),
        b64info: r.b64info,
        client: r.client,
        data: opt(r.data),
        b64data: r.b64data,
        recover_since: position(r.recover_since),
        override_: r.r#override.map(|o| SubscribeOverride {
            presence: bool_value(o.presence),
            join_leave: bool_value(o.join_leave),
            force_recovery: bool_value(o.force_recovery),
            force_positioning: bool_value(o.force_positioning),
            force_push_join_leave: bool_value(o.force_push_join_leave),
        }),
        session: r.session,
    })
}

pub(crate) fn v6_unsubscribe(r: v6::UnsubscribeRequest) -> ApiCommand {
    ApiCommand::Unsubscribe(UnsubscribeParams {
        channel: r.channel,
        user: r.user,
        client: r.client,
        session: r.session,
    })
}

pub(crate) fn v6_disconnect(r: v6::DisconnectRequest) -> ApiCommand {
    ApiCommand::Disconnect(DisconnectParams {
        user: r.user,
        disconnect: r.disconnect.map(|d| DisconnectSpec {
            code: d.code,
            reason: d.reason,
        }),
        client: r.client,
        whitelist: r.whitelist,
        session: r.session,
    })
}

pub(crate) fn v6_refresh(r: v6::RefreshRequest) -> ApiCommand {
    ApiCommand::Refresh(RefreshParams {
        user: r.user,
        client: r.client,
        expired: r.expired,
        expire_at: r.expire_at,
        info: opt(r.info),
        session: r.session,
    })
}

pub(crate) fn v6_history(r: v6::HistoryRequest) -> ApiCommand {
    ApiCommand::History(HistoryParams {
        channel: r.channel,
        limit: i64::from(r.limit),
        since: position(r.since),
        reverse: r.reverse,
    })
}

pub(crate) fn v6_channels(r: v6::ChannelsRequest) -> ApiCommand {
    ApiCommand::Channels(ChannelsParams { pattern: r.pattern })
}

pub(crate) fn v6_rpc(r: v6::RpcRequest) -> ApiCommand {
    ApiCommand::Rpc(RpcParams {
        method: r.method,
        params: opt(r.params),
    })
}

/// The command a batch entry names: the first known field set, in `Command` field order.
pub(crate) fn v6_command(c: v6::Command) -> Option<ApiCommand> {
    let v6::Command {
        publish,
        broadcast,
        subscribe,
        unsubscribe,
        disconnect,
        presence,
        presence_stats,
        history,
        history_remove,
        info,
        rpc,
        refresh,
        channels,
    } = c;
    if let Some(r) = publish {
        return Some(v6_publish(r));
    }
    if let Some(r) = broadcast {
        return Some(v6_broadcast(r));
    }
    if let Some(r) = subscribe {
        return Some(v6_subscribe(r));
    }
    if let Some(r) = unsubscribe {
        return Some(v6_unsubscribe(r));
    }
    if let Some(r) = disconnect {
        return Some(v6_disconnect(r));
    }
    if let Some(r) = presence {
        return Some(ApiCommand::Presence(channel(r.channel)));
    }
    if let Some(r) = presence_stats {
        return Some(ApiCommand::PresenceStats(channel(r.channel)));
    }
    if let Some(r) = history {
        return Some(v6_history(r));
    }
    if let Some(r) = history_remove {
        return Some(ApiCommand::HistoryRemove(channel(r.channel)));
    }
    if info.is_some() {
        return Some(ApiCommand::Info);
    }
    if let Some(r) = rpc {
        return Some(v6_rpc(r));
    }
    if let Some(r) = refresh {
        return Some(v6_refresh(r));
    }
    channels.map(v6_channels)
}

pub(crate) fn v6_publish_result(p: StreamPosition) -> v6::PublishResult {
    v6::PublishResult {
        offset: p.offset,
        epoch: p.epoch,
    }
}

pub(crate) fn v6_broadcast_result(
    list: Vec<Result<StreamPosition, ApiError>>,
) -> v6::BroadcastResult {
    v6::BroadcastResult {
        responses: list
            .into_iter()
            .map(|r| match r {
                Ok(p) => v6::PublishResponse {
                    error: None,
                    result: Some(v6_publish_result(p)),
                },
                Err(e) => v6::PublishResponse {
                    error: Some(v6_error(e)),
                    result: None,
                },
            })
            .collect(),
    }
}

fn v6_client_info(c: &ClientInfo) -> v6::ClientInfo {
    v6::ClientInfo {
        user: c.user.clone(),
        client: c.client.clone(),
        conn_info: c.conn_info.clone().unwrap_or_default(),
        chan_info: c.chan_info.clone().unwrap_or_default(),
    }
}

pub(crate) fn v6_presence(list: &[ClientInfo]) -> v6::PresenceResult {
    v6::PresenceResult {
        presence: list
            .iter()
            .map(|c| (c.client.clone(), v6_client_info(c)))
            .collect(),
    }
}

pub(crate) fn v6_presence_stats(s: rotor_core::engine::PresenceStats) -> v6::PresenceStatsResult {
    v6::PresenceStatsResult {
        num_clients: s.num_clients,
        num_users: s.num_users,
    }
}

pub(crate) fn v6_history_result(page: rotor_core::engine::HistoryPage) -> v6::HistoryResult {
    v6::HistoryResult {
        publications: page
            .publications
            .into_iter()
            .map(|p| v6::Publication {
                data: p.data,
                info: p.info.as_deref().map(v6_client_info),
                offset: p.offset,
                tags: p.tags.as_deref().cloned().unwrap_or_default(),
            })
            .collect(),
        epoch: page.position.epoch,
        offset: page.position.offset,
    }
}

pub(crate) fn v6_channels_result(list: Vec<(String, usize)>) -> v6::ChannelsResult {
    v6::ChannelsResult {
        channels: list
            .into_iter()
            .map(|(ch, n)| {
                let info = v6::ChannelInfo {
                    num_clients: u32_sat(n),
                };
                (ch, info)
            })
            .collect(),
    }
}

pub(crate) fn v6_info(nodes: &[NodeInfo]) -> v6::InfoResult {
    v6::InfoResult {
        nodes: nodes
            .iter()
            .map(|n| v6::NodeResult {
                uid: n.uid.clone(),
                name: n.name.clone(),
                version: n.version.clone(),
                num_clients: u32_sat(n.num_clients),
                num_users: u32_sat(n.num_users),
                num_channels: u32_sat(n.num_channels),
                uptime: u32_sat(n.uptime_secs),
                metrics: None,
                process: None,
                num_subs: u32_sat(n.num_subs),
            })
            .collect(),
    }
}

pub(crate) fn v6_rpc_result(data: Bytes) -> v6::RpcResult {
    v6::RpcResult { data }
}

/// One batch outcome as its `Reply`: the result in the field of its method, or only `error`.
pub(crate) fn v6_reply(r: Result<ApiResult, ApiError>) -> v6::Reply {
    let mut reply = v6::Reply::default();
    match r {
        Err(e) => reply.error = Some(v6_error(e)),
        Ok(res) => match res {
            ApiResult::Publish(p) => reply.publish = Some(v6_publish_result(p)),
            ApiResult::Broadcast(l) => reply.broadcast = Some(v6_broadcast_result(l)),
            ApiResult::Subscribe => reply.subscribe = Some(v6::SubscribeResult {}),
            ApiResult::Unsubscribe => reply.unsubscribe = Some(v6::UnsubscribeResult {}),
            ApiResult::Disconnect => reply.disconnect = Some(v6::DisconnectResult {}),
            ApiResult::Refresh => reply.refresh = Some(v6::RefreshResult {}),
            ApiResult::Presence(l) => reply.presence = Some(v6_presence(&l)),
            ApiResult::PresenceStats(s) => reply.presence_stats = Some(v6_presence_stats(s)),
            ApiResult::History(h) => reply.history = Some(v6_history_result(h)),
            ApiResult::HistoryRemove => reply.history_remove = Some(v6::HistoryRemoveResult {}),
            ApiResult::Channels(l) => reply.channels = Some(v6_channels_result(l)),
            ApiResult::Info(n) => reply.info = Some(v6_info(&n)),
            ApiResult::Rpc(d) => reply.rpc = Some(v6_rpc_result(d)),
        },
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bytes_are_absent_and_batch_commands_pick_their_method() {
        let ApiCommand::Publish(p) = v1_publish(v1::PublishRequest {
            channel: "a".into(),
            data: Bytes::new(),
        }) else {
            panic!()
        };
        assert_eq!(p.data, None);
        assert_eq!(v6_command(v6::Command::default()), None);
        let c = v6::Command {
            info: Some(v6::InfoRequest {}),
            ..Default::default()
        };
        assert_eq!(v6_command(c), Some(ApiCommand::Info));
        let r = v6_reply(Ok(ApiResult::Disconnect));
        assert!(r.disconnect.is_some() && r.error.is_none());
        let r = v6_reply(Err(ApiError::METHOD_NOT_FOUND));
        assert_eq!(r.error.map(|e| e.message), Some("not found".to_string()));
    }
}
