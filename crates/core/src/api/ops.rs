//! The server API methods on the node: checks in each generation's order, then the engine
//! call or the node-to-node control message.

use bytes::Bytes;
use rotor_protocol::command::SubscribeRequest;
use rotor_protocol::{ClientInfo, Push, UnsubscribeCode};

use rotor_protocol::api::{
    DisconnectParams, HistoryParams, PublishFields, RefreshParams, RpcParams, SubscribeParams,
    UnsubscribeParams,
};

use super::{ApiError, ApiGeneration, NodeInfo};
use crate::control::{ControlMessage, DisconnectReason};
use crate::engine::{HistoryFilter, HistoryPage, PresenceStats, PublishOptions, StreamPosition};
use crate::node::Node;

impl Node {
    fn api_options(&self, channel: &str) -> Result<crate::config::ChannelOptions, ApiError> {
        if channel.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        self.rules()
            .options(channel)
            .cloned()
            .ok_or(ApiError::UNKNOWN_CHANNEL)
    }

    /// Publishes server data (no publisher info) and returns the stream position.
    pub async fn api_publish(
        &self,
        generation: ApiGeneration,
        channel: &str,
        fields: &PublishFields,
    ) -> Result<StreamPosition, ApiError> {
        let (data, opts) = if generation.is_legacy() {
            // 2.x: the payload is checked before the channel.
            let data = fields.data.clone().ok_or(ApiError::BAD_REQUEST)?;
            (data, self.api_options(channel)?)
        } else {
            if channel.is_empty() {
                return Err(ApiError::BAD_REQUEST);
            }
            let payload = fields.payload().map_err(|_| ApiError::BAD_REQUEST)?;
            let opts = self.api_options(channel)?;
            (payload.ok_or(ApiError::BAD_REQUEST)?, opts)
        };
        let mut popts = PublishOptions {
            tags: (!fields.tags.is_empty()).then(|| std::sync::Arc::new(fields.tags.clone())),
            idempotency_key: (!fields.idempotency_key.is_empty())
                .then(|| fields.idempotency_key.clone()),
            delta: fields.delta,
            version: fields.version,
            version_epoch: fields.version_epoch.clone(),
            ..Default::default()
        };
        if !fields.skip_history {
            popts.history_size = opts.history_size;
            popts.history_lifetime = opts.history_lifetime;
        }
        let started = std::time::Instant::now();
        let result = self.broker().publish(channel, data, None, popts).await;
        crate::metrics::METRICS
            .broker_publish_duration
            .observe(started.elapsed());
        result.map_err(|e| {
            tracing::error!(channel, error = %e, "api publish failed");
            ApiError::INTERNAL
        })
    }

    /// Publishes the same data to several channels; one result per channel, in order. 2.x
    /// ends the call at the first bad channel (those before it are published).
    pub async fn api_broadcast(
        &self,
        generation: ApiGeneration,
        channels: &[String],
        fields: &PublishFields,
    ) -> Result<Vec<Result<StreamPosition, ApiError>>, ApiError> {
        if channels.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        if generation.is_legacy() {
            if fields.data.is_none() {
                return Err(ApiError::BAD_REQUEST);
            }
            let mut out = Vec::with_capacity(channels.len());
            for ch in channels {
                out.push(Ok(self.api_publish(generation, ch, fields).await?));
            }
            return Ok(out);
        }
        fields.payload().map_err(|_| ApiError::BAD_REQUEST)?;
        let all = channels
            .iter()
            .map(|ch| self.api_publish(generation, ch, fields));
        Ok(futures_util::future::join_all(all).await)
    }

    /// Subscribes a user's connections (or one of them) to `channel` at runtime; each gets a
    /// subscribe push, then the channel's publications.
    pub async fn api_subscribe(&self, req: &SubscribeParams) -> Result<(), ApiError> {
        let (user, channel, client) = (&*req.user, &*req.channel, &*req.client);
        self.api_options(channel)?;
        let info = match rotor_protocol::api::decode_b64(&req.b64info) {
            Ok(Some(b)) => Some(b),
            Ok(None) => req.info.clone(),
            Err(_) => return Err(ApiError::BAD_REQUEST),
        };
        let recover_since = req.recover_since.as_ref().map(|s| StreamPosition {
            offset: s.offset,
            epoch: s.epoch.clone(),
        });
        self.subscribe_local(user, channel, client, info.clone(), recover_since.clone())
            .await;
        let msg = ControlMessage::Subscribe {
            from: self.uid().to_string(),
            user: user.to_string(),
            channel: channel.to_string(),
            client: client.to_string(),
            info: info.map(|b| String::from_utf8_lossy(&b).into_owned()),
            recover_offset: recover_since.as_ref().map(|p| p.offset),
            recover_epoch: recover_since.map(|p| p.epoch).unwrap_or_default(),
        };
        self.broker()
            .publish_control(msg.encode())
            .await
            .map_err(|_| ApiError::INTERNAL)
    }

    /// The subscribe of [`Node::api_subscribe`] on this node's connections.
    pub(crate) async fn subscribe_local(
        &self,
        user: &str,
        channel: &str,
        client: &str,
        info: Option<Bytes>,
        recover_since: Option<StreamPosition>,
    ) {
        let Some(opts) = self.rules().options(channel).cloned() else {
            return;
        };
        for conn in self.hub().user_connections(user) {
            if (!client.is_empty() && conn.id() != client)
                || conn.state.lock().subs.contains_key(channel)
            {
                continue;
            }
            let req = SubscribeRequest {
                channel: channel.to_string(),
                recover: recover_since.is_some(),
                offset: recover_since.as_ref().map_or(0, |p| p.offset),
                epoch: recover_since
                    .as_ref()
                    .map(|p| p.epoch.clone())
                    .unwrap_or_default(),
                ..Default::default()
            };
            let result = match self
                .establish_subscription(&conn, &req, &opts, info.clone(), None, opts.join_leave)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(channel, error = ?e, "server-side subscribe failed");
                    continue;
                }
            };
            let mut buf = Vec::with_capacity(128);
            self.hub().encoder(conn.generation(), conn.encoding()).push(
                &mut buf,
                &Push::Subscribe {
                    positioned: false,
                    data: None,
                    channel,
                    recoverable: result.recoverable,
                    epoch: &result.epoch,
                    offset: result.offset,
                },
            );
            crate::metrics::sent(crate::metrics::FrameType::PushSubscribe, buf.len());
            conn.enqueue(Bytes::from(buf));
            self.activate_subscription(&conn, channel).await;
        }
    }

    /// Unsubscribes a user's connections (or one of them) from `channel` (all channels when
    /// empty); each gets an unsubscribe push.
    pub async fn api_unsubscribe(
        &self,
        generation: ApiGeneration,
        req: &UnsubscribeParams,
    ) -> Result<(), ApiError> {
        let (user, channel, client) = (&*req.user, &*req.channel, &*req.client);
        if generation.is_legacy() && user.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        if !channel.is_empty() {
            self.api_options(channel)?;
        }
        self.unsubscribe_local(user, channel, client).await;
        let msg = ControlMessage::Unsubscribe {
            from: self.uid().to_string(),
            user: user.to_string(),
            channel: channel.to_string(),
            client: client.to_string(),
        };
        self.broker()
            .publish_control(msg.encode())
            .await
            .map_err(|_| ApiError::INTERNAL)
    }

    /// The unsubscribe of [`Node::api_unsubscribe`] on this node's connections.
    pub(crate) async fn unsubscribe_local(&self, user: &str, channel: &str, client: &str) {
        for conn in self.hub().user_connections(user) {
            if !client.is_empty() && conn.id() != client {
                continue;
            }
            let removed: Vec<_> = {
                let mut st = conn.state.lock();
                let channels: Vec<String> = if channel.is_empty() {
                    st.subs.keys().cloned().collect()
                } else {
                    vec![channel.to_string()]
                };
                let mut removed = Vec::new();
                for ch in channels {
                    if let Some(sub) = st.subs.remove(&ch) {
                        let info = ClientInfo {
                            user: st.user.clone(),
                            client: conn.id().to_string(),
                            conn_info: st.conn_info.clone(),
                            chan_info: sub.chan_info.clone(),
                        };
                        removed.push((ch, sub, info));
                    }
                }
                removed
            };
            for (ch, sub, info) in removed {
                conn.push_unsubscribe(&ch, UnsubscribeCode::SERVER);
                self.drop_subscription(&conn, &ch, &sub, &info).await;
            }
        }
    }

    /// Closes a user's connections (or one of them) with `force disconnect`.
    pub async fn api_disconnect(
        &self,
        generation: ApiGeneration,
        req: &DisconnectParams,
    ) -> Result<(), ApiError> {
        if generation.is_legacy() && req.user.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        self.disconnect_user(&req.user, &req.client, "", DisconnectReason::Force)
            .await
    }

    /// Extends, updates or ends (`expired`) a user's connections.
    pub async fn api_refresh(&self, _req: &RefreshParams) -> Result<(), ApiError> {
        Err(ApiError::NOT_AVAILABLE)
    }

    /// The server API `rpc`: Centrifugo OSS registers no handler, so every method is unknown.
    pub fn api_rpc(&self, req: &RpcParams) -> Result<Bytes, ApiError> {
        if req.method.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        Err(ApiError::METHOD_NOT_FOUND)
    }

    /// Closes a user's connections on every node: only `client` when not empty, all but
    /// `except` when that is not empty. This node first, so the caller sees its own effect.
    pub(crate) async fn disconnect_user(
        &self,
        user: &str,
        client: &str,
        except: &str,
        reason: DisconnectReason,
    ) -> Result<(), ApiError> {
        self.disconnect_local(user, client, except, reason);
        let msg = ControlMessage::Disconnect {
            from: self.uid().to_string(),
            user: user.to_string(),
            client: client.to_string(),
            except: except.to_string(),
            reason,
        };
        self.broker()
            .publish_control(msg.encode())
            .await
            .map_err(|_| ApiError::INTERNAL)
    }

    /// The disconnect of [`Node::disconnect_user`] on this node's connections.
    pub(crate) fn disconnect_local(
        &self,
        user: &str,
        client: &str,
        except: &str,
        reason: DisconnectReason,
    ) {
        for conn in self.hub().user_connections(user) {
            let id = conn.id();
            if (client.is_empty() || id == client) && id != except {
                conn.disconnect(reason.kind());
                conn.cancel.cancel();
            }
        }
    }

    fn presence_options(&self, channel: &str) -> Result<(), ApiError> {
        if !self.api_options(channel)?.presence {
            return Err(ApiError::NOT_AVAILABLE);
        }
        Ok(())
    }

    pub async fn api_presence(&self, channel: &str) -> Result<Vec<ClientInfo>, ApiError> {
        self.presence_options(channel)?;
        let mut list = self
            .presence()
            .presence(channel)
            .await
            .map_err(|_| ApiError::INTERNAL)?;
        list.sort_by(|a, b| a.client.cmp(&b.client));
        Ok(list)
    }

    pub async fn api_presence_stats(&self, channel: &str) -> Result<PresenceStats, ApiError> {
        self.presence_options(channel)?;
        self.presence()
            .presence_stats(channel)
            .await
            .map_err(|_| ApiError::INTERNAL)
    }

    fn history_options(&self, channel: &str) -> Result<(), ApiError> {
        if !self.api_options(channel)?.history_enabled() {
            return Err(ApiError::NOT_AVAILABLE);
        }
        Ok(())
    }

    pub async fn api_history(
        &self,
        generation: ApiGeneration,
        req: &HistoryParams,
    ) -> Result<HistoryPage, ApiError> {
        let channel = &*req.channel;
        // 2.x returns every retained publication.
        let filter = if generation.is_legacy() {
            HistoryFilter::default()
        } else {
            HistoryFilter::from_request(req.limit, req.since.clone(), req.reverse)
        };
        self.history_options(channel)?;
        self.broker()
            .history(channel, filter)
            .await
            .map_err(|_| ApiError::INTERNAL)
    }

    pub async fn api_history_remove(&self, channel: &str) -> Result<(), ApiError> {
        self.history_options(channel)?;
        self.broker()
            .remove_history(channel)
            .await
            .map_err(|_| ApiError::INTERNAL)
    }

    /// Active channels with their subscriber counts, summed over every live node: this node's
    /// now, the others' as of their last node-info message (a few seconds old at most).
    pub fn api_channels(&self, pattern: &str) -> Result<Vec<(String, usize)>, ApiError> {
        let mut counts: std::collections::HashMap<String, usize> =
            self.hub().channels().into_iter().collect();
        for other in self
            .live_nodes()
            .into_iter()
            .filter(|n| n.uid != self.uid())
        {
            for (channel, n) in other.channels {
                *counts.entry(channel).or_default() += n as usize;
            }
        }
        let mut list: Vec<(String, usize)> = counts.into_iter().collect();
        if !pattern.is_empty() {
            list.retain(|(c, _)| glob_match(pattern, c));
        }
        list.sort();
        Ok(list)
    }

    /// Every live node (this one included).
    pub fn api_info(&self) -> Vec<NodeInfo> {
        self.live_nodes()
            .into_iter()
            .map(|n| NodeInfo {
                uid: n.uid,
                name: n.name,
                version: n.version,
                num_clients: n.num_clients,
                num_users: n.num_users,
                num_channels: n.num_channels,
                num_subs: 0,
                uptime_secs: n.uptime,
            })
            .collect()
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match("chat:*", "chat:1"));
        assert!(!glob_match("chat:*", "news"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*c", "abbc"));
        assert!(glob_match("news", "news"));
    }
}
