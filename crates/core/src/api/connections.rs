//! The methods that act on connections: `subscribe`, `unsubscribe`, `disconnect` and
//! `refresh`. Each applies to this node's matching connections first (so the caller sees the
//! effect when the call returns), then goes to the other nodes as a control message that
//! carries every field.
//!
//! Which connections: the user's (an empty user is the anonymous connections, as Centrifugo's
//! hub keys them), narrowed by `client` and `session`. A session is what emulation and
//! unidirectional transports give a connection ([`ClientShared::session_id`]); WebSocket and
//! SockJS connections have none, so a `session` filter never matches them.

use bytes::Bytes;
use rotor_protocol::api::{
    decode_b64, DisconnectParams, RefreshParams, SubscribeParams, UnsubscribeParams,
};
use rotor_protocol::command::SubscribeRequest;
use rotor_protocol::{DisconnectKind, Generation, Publication, Push, UnsubscribeCode};

use super::{ApiError, ApiGeneration};
use crate::backend::SubOverride;
use crate::client::ClientShared;
use crate::control::{ControlMessage, CustomClose, DisconnectReason, SubscribeOverrides};
use crate::engine::StreamPosition;
use crate::node::{unix_now, Node};

/// Centrifuge caps an expiry at a year from now.
const MAX_TTL_SECS: i64 = 365 * 24 * 3600;

/// Which of a user's connections a call reaches (empty = any).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnFilter<'a> {
    pub client: &'a str,
    pub session: &'a str,
}

impl ConnFilter<'_> {
    pub(crate) fn matches(&self, c: &ClientShared) -> bool {
        (self.client.is_empty() || c.id() == self.client)
            && (self.session.is_empty() || c.session_id() == Some(self.session))
    }
}

/// A server-side subscribe, as every node applies it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerSubscribe {
    pub user: String,
    pub channel: String,
    pub client: String,
    pub session: String,
    pub info: Option<Bytes>,
    /// Sent in the subscribe push (v2 clients).
    pub data: Option<Bytes>,
    /// Unix seconds.
    pub expire_at: Option<i64>,
    pub recover_since: Option<StreamPosition>,
    pub overrides: SubscribeOverrides,
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str) -> Option<Bytes> {
    use base64::Engine;
    if s.is_empty() {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .map(Bytes::from)
}

impl ServerSubscribe {
    pub(crate) fn to_message(&self, from: &str) -> ControlMessage {
        ControlMessage::Subscribe {
            from: from.to_string(),
            user: self.user.clone(),
            channel: self.channel.clone(),
            client: self.client.clone(),
            info: self
                .info
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            recover_offset: self.recover_since.as_ref().map(|p| p.offset),
            recover_epoch: self
                .recover_since
                .as_ref()
                .map(|p| p.epoch.clone())
                .unwrap_or_default(),
            b64info: self.info.as_deref().map(b64).unwrap_or_default(),
            session: self.session.clone(),
            expire_at: self.expire_at.unwrap_or(0),
            b64data: self.data.as_deref().map(b64).unwrap_or_default(),
            overrides: (self.overrides != SubscribeOverrides::default())
                .then(|| self.overrides.clone()),
        }
    }

    /// The subscribe a control message orders (`None` for another kind of message).
    pub(crate) fn from_message(msg: ControlMessage) -> Option<Self> {
        let ControlMessage::Subscribe {
            user,
            channel,
            client,
            info,
            recover_offset,
            recover_epoch,
            b64info,
            session,
            expire_at,
            b64data,
            overrides,
            ..
        } = msg
        else {
            return None;
        };
        Some(Self {
            user,
            channel,
            client,
            session,
            info: unb64(&b64info).or_else(|| info.map(Bytes::from)),
            data: unb64(&b64data),
            expire_at: (expire_at > 0).then_some(expire_at),
            recover_since: recover_offset.map(|offset| StreamPosition {
                offset,
                epoch: recover_epoch,
            }),
            overrides: overrides.unwrap_or_default(),
        })
    }
}

/// A disconnect, as every node applies it.
#[derive(Debug, Clone, Default)]
pub(crate) struct DisconnectOrder {
    pub user: String,
    pub client: String,
    pub session: String,
    /// A connection to spare (single-connection mode).
    pub except: String,
    /// Client IDs spared.
    pub whitelist: Vec<String>,
    pub reason: DisconnectReason,
    /// Wins over `reason`.
    pub custom: Option<CustomClose>,
}

impl DisconnectOrder {
    fn to_message(&self, from: &str) -> ControlMessage {
        ControlMessage::Disconnect {
            from: from.to_string(),
            user: self.user.clone(),
            client: self.client.clone(),
            except: self.except.clone(),
            reason: self.reason,
            custom: self.custom.clone(),
            whitelist: self.whitelist.clone(),
            session: self.session.clone(),
        }
    }
}

/// A refresh, as every node applies it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RefreshOrder {
    pub user: String,
    pub client: String,
    pub session: String,
    pub expired: bool,
    /// Unix seconds; 0 = the connection no longer expires.
    pub expire_at: i64,
    pub info: Option<Bytes>,
}

impl RefreshOrder {
    fn to_message(&self, from: &str) -> ControlMessage {
        ControlMessage::Refresh {
            from: from.to_string(),
            user: self.user.clone(),
            client: self.client.clone(),
            session: self.session.clone(),
            expired: self.expired,
            expire_at: self.expire_at,
            b64info: self.info.as_deref().map(b64),
        }
    }
}

/// Whether a client should reconnect after close `code` (PROTOCOL.md §10.5: 3500–3999 and
/// 4500–4999 are terminal), for the v1 close reason's `reconnect`.
pub(crate) fn reconnect_for(code: u16) -> bool {
    !matches!(code, 3500..=3999 | 4500..=4999)
}

impl Node {
    async fn publish_control_msg(&self, msg: ControlMessage) -> Result<(), ApiError> {
        self.broker()
            .publish_control(msg.encode())
            .await
            .map_err(|_| ApiError::INTERNAL)
    }

    /// Subscribes a user's connections to `channel` at runtime (current API only); each gets a
    /// subscribe push (then the recovered publications when `recover_since` is set), then the
    /// channel's publications.
    pub async fn api_subscribe(&self, req: &SubscribeParams) -> Result<(), ApiError> {
        self.api_options(&req.channel)?;
        let info = match decode_b64(&req.b64info) {
            Ok(Some(b)) => Some(b),
            Ok(None) => req.info.clone(),
            Err(_) => return Err(ApiError::BAD_REQUEST),
        };
        let data = match decode_b64(&req.b64data) {
            Ok(Some(b)) => Some(b),
            Ok(None) => req.data.clone(),
            Err(_) => return Err(ApiError::BAD_REQUEST),
        };
        let o = req.override_.clone().unwrap_or_default();
        let sub = ServerSubscribe {
            user: req.user.clone(),
            channel: req.channel.clone(),
            client: req.client.clone(),
            session: req.session.clone(),
            info,
            data,
            expire_at: (req.expire_at > 0).then(|| req.expire_at.min(unix_now() + MAX_TTL_SECS)),
            recover_since: req.recover_since.as_ref().map(|s| StreamPosition {
                offset: s.offset,
                epoch: s.epoch.clone(),
            }),
            overrides: SubscribeOverrides {
                presence: o.presence.map(|v| v.value),
                join_leave: o.join_leave.map(|v| v.value),
                force_recovery: o.force_recovery.map(|v| v.value),
                force_positioning: o.force_positioning.map(|v| v.value),
                force_push_join_leave: o.force_push_join_leave.map(|v| v.value),
            },
        };
        self.subscribe_local(&sub).await;
        self.publish_control_msg(sub.to_message(self.uid())).await
    }

    /// The subscribe of [`Node::api_subscribe`] on this node's connections. An `expire_at`
    /// already past subscribes nobody. The subscription expires like a server-side one in
    /// Centrifugo: the connection closes with `subscription expired` (3006, both generations)
    /// unless a sub_refresh proxy extends it.
    pub(crate) async fn subscribe_local(&self, sub: &ServerSubscribe) {
        let channel = sub.channel.as_str();
        let Some(mut opts) = self.rules().options(channel).cloned() else {
            return;
        };
        if sub.expire_at.is_some_and(|e| e <= unix_now()) {
            return;
        }
        let o = &sub.overrides;
        let forced = crate::client::apply_overrides(
            &mut opts,
            &SubOverride {
                presence: o.presence,
                join_leave: o.join_leave,
                force_recovery: o.force_recovery,
                force_positioning: o.force_positioning,
                force_push_join_leave: o.force_push_join_leave,
            },
        );
        // Positioning without recovery: the stream position is followed like a recoverable
        // subscription's (a gap closes the connection with 3010, as for any server-side
        // subscription), but nothing is recovered and the push says `recoverable: false`.
        // The override or the namespace's `force_positioning` positions it.
        let recoverable = opts.history_recover;
        let force_positioning = o.force_positioning.unwrap_or(opts.force_positioning);
        let positioning = recoverable || (force_positioning && opts.history_enabled());
        opts.force_positioning = positioning;
        let refresh_proxy =
            (sub.expire_at.is_some() && opts.proxy_sub_refresh && self.backend().is_some())
                .then(|| std::sync::Arc::<str>::from(opts.sub_refresh_proxy_name.as_str()));
        let filter = ConnFilter {
            client: &sub.client,
            session: &sub.session,
        };
        let req = SubscribeRequest {
            channel: channel.to_string(),
            recover: recoverable && sub.recover_since.is_some(),
            offset: sub.recover_since.as_ref().map_or(0, |p| p.offset),
            epoch: sub
                .recover_since
                .as_ref()
                .map(|p| p.epoch.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        // Per generation: v1 connections recover as 2.8 (the stream); v2 ones in the
        // namespace's mode, and with `auto_cache_recover` without being asked.
        let mut opts_v1 = opts.clone();
        opts_v1.recovery_mode = crate::config::RecoveryMode::Stream;
        let mut req_v2 = req.clone();
        req_v2.recover |= recoverable
            && opts.auto_cache_recover
            && opts.recovery_mode == crate::config::RecoveryMode::Cache;
        for conn in self.hub().user_connections(&sub.user) {
            if !filter.matches(&conn) || conn.state.lock().subs.contains_key(channel) {
                continue;
            }
            // As Centrifugo's subscribe: join/leave pushes only when forced; a v1 client gets
            // them wherever the channel emits them (2.x behaviour).
            let push_join_leave = forced
                || opts.force_push_join_leave
                || (opts.join_leave && conn.generation() == Generation::V1);
            let (req, opts) = match conn.generation() {
                Generation::V1 => (&req, &opts_v1),
                Generation::V2 => (&req_v2, &opts),
            };
            let result = match self
                .establish_subscription(
                    &conn,
                    req,
                    opts,
                    sub.info.clone(),
                    sub.expire_at,
                    push_join_leave,
                )
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(channel, error = ?e, "server-side subscribe failed");
                    continue;
                }
            };
            if let Some(s) = conn.state.lock().subs.get_mut(channel) {
                s.server_side = true;
                s.refresh_proxy = refresh_proxy.clone();
            }
            // A JSON client can only carry JSON data (b64data may be anything).
            let data = conn.checked_payload(sub.data.clone()).ok().flatten();
            let enc = self.hub().encoder(conn.generation(), conn.encoding());
            let mut buf = Vec::with_capacity(128);
            enc.push(
                &mut buf,
                &Push::Subscribe {
                    positioned: positioning,
                    data: data.as_deref(),
                    channel,
                    recoverable,
                    epoch: &result.epoch,
                    offset: result.offset,
                },
            );
            crate::metrics::sent(crate::metrics::FrameType::PushSubscribe, buf.len());
            conn.enqueue(Bytes::from(buf));
            self.push_recovered(&conn, channel, &result.publications);
            self.activate_subscription(&conn, channel).await;
        }
    }

    /// Publications recovered for a server-side subscription, after its subscribe push.
    fn push_recovered(&self, conn: &ClientShared, channel: &str, publications: &[Publication]) {
        if publications.is_empty() {
            return;
        }
        let enc = self.hub().encoder(conn.generation(), conn.encoding());
        let mut buf = Vec::new();
        for p in publications {
            enc.push(
                &mut buf,
                &Push::Publication {
                    channel,
                    publication: p,
                },
            );
        }
        crate::metrics::sent(crate::metrics::FrameType::PushPublication, buf.len());
        if let Some(last) = publications.last() {
            if let Some(s) = conn.state.lock().subs.get_mut(channel) {
                s.offset = s.offset.max(last.offset);
            }
        }
        conn.enqueue(Bytes::from(buf));
    }

    /// Unsubscribes a user's connections from `channel`; each gets an unsubscribe push. An
    /// empty channel removes nothing and sends a push with an empty channel, in both
    /// generations (Centrifugo 2.x and 6 alike, PROTOCOL.md §8.1, GRPC-API.md §2.3).
    pub async fn api_unsubscribe(
        &self,
        generation: ApiGeneration,
        req: &UnsubscribeParams,
    ) -> Result<(), ApiError> {
        if generation.is_legacy() && req.user.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        if !req.channel.is_empty() {
            self.api_options(&req.channel)?;
        }
        let legacy = generation.is_legacy();
        let empty_push = req.channel.is_empty();
        // `client` and `session` came with the current API; 2.x requests have only the user.
        let (client, session) = if legacy {
            ("", "")
        } else {
            (&*req.client, &*req.session)
        };
        let filter = ConnFilter { client, session };
        self.unsubscribe_local(&req.user, &req.channel, filter, empty_push)
            .await;
        self.publish_control_msg(ControlMessage::Unsubscribe {
            from: self.uid().to_string(),
            user: req.user.clone(),
            channel: req.channel.clone(),
            client: client.to_string(),
            session: session.to_string(),
            empty_push,
        })
        .await
    }

    /// The unsubscribe of [`Node::api_unsubscribe`] on this node's connections.
    pub(crate) async fn unsubscribe_local(
        &self,
        user: &str,
        channel: &str,
        filter: ConnFilter<'_>,
        empty_push: bool,
    ) {
        for conn in self.hub().user_connections(user) {
            if !filter.matches(&conn) {
                continue;
            }
            if empty_push && channel.is_empty() {
                conn.push_unsubscribe("", UnsubscribeCode::SERVER);
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
                        let mut info = conn.info_in(&st, &ch);
                        info.chan_info = sub.chan_info.clone();
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

    /// Closes a user's connections: with `disconnect {code, reason}` when given (a code outside
    /// 3000–4999 is not a usable close code: `force disconnect` instead), else `force
    /// disconnect` (3503 for v2 clients, 2.x's 3012 for v1). `whitelist` IDs are spared. A 2.x
    /// call has only `user`.
    pub async fn api_disconnect(
        &self,
        generation: ApiGeneration,
        req: &DisconnectParams,
    ) -> Result<(), ApiError> {
        if generation.is_legacy() {
            // 2.x: only the user (`disconnect`, `client`, `whitelist`, `session` are current).
            if req.user.is_empty() {
                return Err(ApiError::BAD_REQUEST);
            }
            return self
                .disconnect_user(&req.user, "", "", DisconnectReason::Force)
                .await;
        }
        let custom = req.disconnect.as_ref().and_then(|d| {
            let code = u16::try_from(d.code)
                .ok()
                .filter(|c| (3000..=4999).contains(c))?;
            Some(CustomClose {
                code,
                reason: d.reason.clone(),
            })
        });
        self.disconnect_everywhere(DisconnectOrder {
            user: req.user.clone(),
            client: req.client.clone(),
            session: req.session.clone(),
            except: String::new(),
            whitelist: req.whitelist.clone(),
            reason: DisconnectReason::Force,
            custom,
        })
        .await
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
        self.disconnect_everywhere(DisconnectOrder {
            user: user.to_string(),
            client: client.to_string(),
            except: except.to_string(),
            reason,
            ..Default::default()
        })
        .await
    }

    async fn disconnect_everywhere(&self, order: DisconnectOrder) -> Result<(), ApiError> {
        self.disconnect_local(&order);
        self.publish_control_msg(order.to_message(self.uid())).await
    }

    /// The disconnect of [`Node::disconnect_user`] on this node's connections.
    pub(crate) fn disconnect_local(&self, order: &DisconnectOrder) {
        let filter = ConnFilter {
            client: &order.client,
            session: &order.session,
        };
        for conn in self.hub().user_connections(&order.user) {
            let id = conn.id();
            if !filter.matches(&conn)
                || id == order.except
                || order.whitelist.iter().any(|w| w == id)
            {
                continue;
            }
            match &order.custom {
                Some(c) => conn.disconnect_with(c.code, &c.reason, reconnect_for(c.code)),
                None => conn.disconnect(order.reason.kind()),
            }
            conn.cancel.cancel();
        }
    }

    /// Extends, updates or ends (`expired`) a user's connections (current API only).
    pub async fn api_refresh(&self, req: &RefreshParams) -> Result<(), ApiError> {
        let order = RefreshOrder {
            user: req.user.clone(),
            client: req.client.clone(),
            session: req.session.clone(),
            expired: req.expired,
            expire_at: req.expire_at,
            info: req.info.clone(),
        };
        self.refresh_local(&order).await;
        self.publish_control_msg(order.to_message(self.uid())).await
    }

    /// The refresh of [`Node::api_refresh`] on this node's connections, as Centrifuge's
    /// `Client.Refresh`: `expired` (or an `expire_at` already past) closes with 3005; a future
    /// `expire_at` (capped at a year) becomes the connection's expiry; 0 removes the expiry.
    /// `info`, when given, replaces the connection info (presence is updated at once). v2
    /// clients get a `refresh` push `{expires, ttl}`; v1 has no such push.
    pub(crate) async fn refresh_local(&self, order: &RefreshOrder) {
        let filter = ConnFilter {
            client: &order.client,
            session: &order.session,
        };
        let now = unix_now();
        let expire_at = order.expire_at.min(now + MAX_TTL_SECS);
        for conn in self.hub().user_connections(&order.user) {
            if !filter.matches(&conn) {
                continue;
            }
            if order.expired || (expire_at > 0 && expire_at <= now) {
                conn.disconnect(DisconnectKind::Expired);
                conn.cancel.cancel();
                continue;
            }
            let presence: Vec<_> = {
                let mut st = conn.state.lock();
                if st.closed {
                    continue;
                }
                st.exp = (expire_at > 0).then_some(expire_at);
                match &order.info {
                    Some(info) => {
                        st.conn_info = Some(info.clone());
                        st.subs
                            .iter()
                            .filter(|(_, s)| s.presence)
                            .map(|(ch, _)| (ch.clone(), conn.info_in(&st, ch)))
                            .collect()
                    }
                    None => Vec::new(),
                }
            };
            conn.tick_soon();
            if conn.generation() == Generation::V2 {
                let ttl = u32::try_from((expire_at - now).max(0)).unwrap_or(u32::MAX);
                let mut buf = Vec::with_capacity(32);
                self.hub().encoder(conn.generation(), conn.encoding()).push(
                    &mut buf,
                    &Push::Refresh {
                        expires: expire_at > 0,
                        ttl,
                    },
                );
                conn.enqueue(Bytes::from(buf));
            }
            let ttl = self.config().client_presence_expire_interval.as_secs();
            for (channel, info) in presence {
                if let Err(e) = self.presence().add_presence(&channel, info, ttl).await {
                    tracing::warn!(%channel, error = %e, "presence update after refresh failed");
                }
            }
        }
    }
}
