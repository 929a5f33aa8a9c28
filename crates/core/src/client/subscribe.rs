//! subscribe, unsubscribe and sub_refresh: channel rules, subscription tokens, recovery, and
//! the hand-over from "subscribing" (live publications buffered) to "subscribed".

use bytes::Bytes;
use rotor_protocol::command::{ChannelRequest, SubRefreshRequest, SubscribeRequest};
use rotor_protocol::reply::SubscribeResult;
use rotor_protocol::{DisconnectKind, ErrorCode, Generation, Push, ReplyBody};

use super::proxy::backend_expiry;
use super::recovery::SubMode;
use super::ClientShared;
use super::{CmdError, CmdResult, Session, SubState, SubStatus};
use crate::auth::{SubscribeClaims, TokenError};
use crate::backend::{BackendStyle, ServerSub, SubOverride, SubscribeEvent};
use crate::config::{ChannelOptions, RecoveryMode};
use crate::engine::{HistoryFilter, StreamPosition};
use crate::node::{unix_now, Node};
use std::sync::Arc;

impl Session {
    pub(super) async fn subscribe(&mut self, mut req: SubscribeRequest) -> CmdResult {
        let node = self.node.clone();
        let cfg = node.config();
        let generation = self.shared.generation();
        let ch = req.channel.as_str();
        if ch.is_empty() {
            return Err(DisconnectKind::BadRequest.into());
        }
        if ch.len() > cfg.channel_max_length {
            // Centrifugo 6 answers a too long name as a bad name; 2.x as a limit.
            return Err(match generation {
                Generation::V1 => ErrorCode::LIMIT_EXCEEDED,
                Generation::V2 => ErrorCode::BAD_REQUEST,
            }
            .into());
        }
        let user = {
            let st = self.shared.state.lock();
            if st.subs.contains_key(ch) {
                return Err(ErrorCode::ALREADY_SUBSCRIBED.into());
            }
            // 0 = no limit (Centrifuge checks `channelLimit > 0` too).
            let limit = cfg.client_channel_limit;
            if limit > 0 && st.subs.len() >= limit {
                return Err(ErrorCode::LIMIT_EXCEEDED.into());
            }
            st.user.clone()
        };
        let Some(opts) = node.rules().options(ch).cloned() else {
            return Err(ErrorCode::UNKNOWN_CHANNEL.into());
        };
        if !node
            .rules()
            .name_allowed(ch, &opts, generation == Generation::V2)
        {
            return Err(ErrorCode::BAD_REQUEST.into());
        }
        match generation {
            // 2.x has neither deltas nor filters.
            Generation::V1 => req.tf = None,
            Generation::V2 => {
                // Only stream subscriptions are served (map / shared poll types: 103).
                if req.sub_type != 0 {
                    return Err(ErrorCode::PERMISSION_DENIED.into());
                }
                // Fossil is the only delta type (negotiated where `allowed_delta_types` has it,
                // in `establish_subscription`; elsewhere silently none); any other is a
                // protocol error (Centrifugo: 3501).
                if !req.delta.is_empty() && req.delta != "fossil" {
                    return Err(DisconnectKind::BadRequest.into());
                }
                // A tags filter needs `allow_tags_filter` and a valid tree; with a delta it is
                // refused too (CHANNELS-MODERN.md §3.1: Rotor's choice, no client sends both).
                if let Some(tf) = &req.tf {
                    if !opts.allow_tags_filter || !req.delta.is_empty() || tf.validate().is_err() {
                        return Err(ErrorCode::BAD_REQUEST.into());
                    }
                }
            }
        }
        if opts.server_side {
            return Err(ErrorCode::PERMISSION_DENIED.into());
        }
        let user_limited = node.rules().is_user_limited(ch);
        let private = node.rules().is_private(ch);
        let tokened = private || (generation == Generation::V2 && !req.token.is_empty());
        let backend = node.backend();
        let proxied = !tokened && opts.proxy_subscribe && !user_limited;
        // 2.x checks anonymous access before its proxy and its tokens; Centrifugo 6 lets the
        // proxy decide, and a v2 subscription token (handler.go OnSubscribe).
        let proxy_decides_anonymous =
            proxied && backend.is_some_and(|b| b.style() == BackendStyle::Modern);
        let token_decides = generation == Generation::V2 && !req.token.is_empty();
        if user.is_empty()
            && !opts.anonymous
            && !cfg.client_insecure
            && !proxy_decides_anonymous
            && !token_decides
        {
            return Err(ErrorCode::PERMISSION_DENIED.into());
        }
        if user_limited && !node.rules().user_allowed(ch, &user) {
            return Err(ErrorCode::PERMISSION_DENIED.into());
        }
        let now = unix_now();
        let mut opts = opts;
        let mut force_push_join_leave = false;
        let mut data = None;
        let (chan_info, expire_at) = if tokened {
            if req.token.is_empty() {
                return Err(ErrorCode::PERMISSION_DENIED.into());
            }
            let verifier = Arc::clone(&node.verifier());
            let claims = match verifier.verify_subscribe_async(&req.token, now).await {
                Ok(c) => c,
                Err(TokenError::Expired) => return Err(ErrorCode::TOKEN_EXPIRED.into()),
                Err(TokenError::Invalid(e)) => {
                    tracing::debug!(client = %self.shared.id(), error = %e, "invalid subscription token");
                    return Err(ErrorCode::PERMISSION_DENIED.into());
                }
            };
            if !self.claims_match(&claims, ch, &user) {
                return Err(match generation {
                    Generation::V1 => ErrorCode::PERMISSION_DENIED.into(),
                    Generation::V2 => DisconnectKind::InvalidToken.into(),
                });
            }
            data = self.shared.checked_payload(claims.data)?;
            force_push_join_leave = apply_overrides(&mut opts, &claims.overrides);
            (claims.info, claims.exp)
        } else if proxied {
            let Some(backend) = backend.cloned() else {
                return Err(ErrorCode::NOT_AVAILABLE.into());
            };
            let ctx = self.shared.conn_context();
            let ev = SubscribeEvent {
                channel: req.channel.clone(),
                data: req.data.clone(),
            };
            let g = backend
                .subscribe(&opts.subscribe_proxy_name, &ctx, ev)
                .await?;
            data = self.shared.checked_payload(g.data)?;
            force_push_join_leave = apply_overrides(&mut opts, &g.overrides);
            (
                self.shared.checked_payload(g.info)?,
                backend_expiry(g.expire_at, now),
            )
        } else {
            (None, None)
        };
        if matches!(expire_at, Some(e) if e <= now) {
            return Err(ErrorCode::EXPIRED.into());
        }
        // With a sub_refresh proxy the server refreshes the subscription: no expiry in the reply.
        let refresh_proxy = (expire_at.is_some() && opts.proxy_sub_refresh && backend.is_some())
            .then(|| std::sync::Arc::<str>::from(opts.sub_refresh_proxy_name.as_str()));
        let push_join_leave = force_push_join_leave
            || opts.force_push_join_leave
            || (opts.join_leave && (generation == Generation::V1 || req.join_leave));
        // Positioned / recoverable / recovering: the seam of `recovery.rs`.
        let history_permission = !opts.history_disable_for_client || cfg.client_insecure;
        let mode = SubMode::resolve(&opts, &req, generation, history_permission);
        mode.apply(&mut opts);
        req.recover = mode.recover;
        let mut result = self
            .node
            .establish_subscription(
                &self.shared,
                &req,
                &opts,
                chan_info,
                expire_at,
                push_join_leave,
            )
            .await?;
        if mode.refuses(result.was_recovering, result.recovered) {
            node.abort_subscription(&self.shared, ch).await;
            return Err(ErrorCode::UNRECOVERABLE_POSITION.into());
        }
        match (expire_at, refresh_proxy) {
            (Some(_), Some(proxy)) => {
                if let Some(sub) = self.shared.state.lock().subs.get_mut(ch) {
                    sub.refresh_proxy = Some(proxy);
                }
            }
            (Some(e), None) => {
                result.expires = true;
                result.ttl = u32::try_from(e - now).unwrap_or(u32::MAX);
            }
            (None, _) => {}
        }
        result.data = data;
        self.to_activate.push(req.channel.clone());
        Ok(Some(ReplyBody::Subscribe(result)))
    }

    /// Does a subscription token belong to this connection and channel? v1 requires `client`;
    /// v2 requires `sub` to be this user and checks `client` only when present.
    fn claims_match(&self, claims: &SubscribeClaims, channel: &str, user: &str) -> bool {
        if claims.channel != channel {
            return false;
        }
        match self.shared.generation() {
            Generation::V1 => claims.client.as_deref() == Some(self.shared.id()),
            Generation::V2 => {
                claims.user.as_deref().unwrap_or("") == user
                    && claims
                        .client
                        .as_deref()
                        .is_none_or(|c| c == self.shared.id())
            }
        }
    }

    /// Subscribes to a channel the server chose (token or backend `channels`/`subs`, personal
    /// channel), with the channel info, data and overrides the backend gave.
    pub(super) async fn subscribe_server_side(
        &mut self,
        mut req: SubscribeRequest,
        sub: ServerSub,
    ) -> Result<SubscribeResult, CmdError> {
        // Filters are for client-side subscriptions only.
        req.tf = None;
        let Some(mut opts) = self.node.rules().options(&req.channel).cloned() else {
            return Err(ErrorCode::UNKNOWN_CHANNEL.into());
        };
        if self.shared.state.lock().subs.contains_key(&req.channel) {
            return Err(ErrorCode::ALREADY_SUBSCRIBED.into());
        }
        let forced = apply_overrides(&mut opts, &sub.overrides);
        let push_join_leave = opts.join_leave || forced || opts.force_push_join_leave;
        // No positioned/recoverable asks: the options (and overrides) decide.
        req.positioned = false;
        req.recoverable = false;
        let generation = self.shared.generation();
        let mode = SubMode::resolve(&opts, &req, generation, false);
        mode.apply(&mut opts);
        req.recover = mode.recover;
        let mut r = self
            .node
            .establish_subscription(&self.shared, &req, &opts, sub.info, None, push_join_leave)
            .await?;
        r.data = sub.data;
        if let Some(s) = self.shared.state.lock().subs.get_mut(&req.channel) {
            s.server_side = true;
        }
        self.to_activate.push(req.channel.clone());
        Ok(r)
    }

    pub(super) async fn unsubscribe(&mut self, req: ChannelRequest) -> CmdResult {
        if req.channel.is_empty() {
            return Err(DisconnectKind::BadRequest.into());
        }
        let removed = {
            let mut st = self.shared.state.lock();
            st.subs.remove(&req.channel).map(|sub| {
                let mut info = self.shared.info_in(&st, &req.channel);
                info.chan_info = sub.chan_info.clone();
                (sub, info)
            })
        };
        if let Some((sub, info)) = removed {
            self.node
                .drop_subscription(&self.shared, &req.channel, &sub, &info)
                .await;
        }
        Ok(Some(ReplyBody::Unsubscribe))
    }

    pub(super) async fn sub_refresh(&mut self, req: SubRefreshRequest) -> CmdResult {
        let generation = self.shared.generation();
        if req.channel.is_empty() {
            return Err(DisconnectKind::BadRequest.into());
        }
        let user = {
            let st = self.shared.state.lock();
            if !st.subs.contains_key(&req.channel) {
                return Err(ErrorCode::PERMISSION_DENIED.into());
            }
            st.user.clone()
        };
        if req.token.is_empty() {
            return Err(ErrorCode::BAD_REQUEST.into());
        }
        let now = unix_now();
        let verifier = Arc::clone(&self.node.verifier());
        let claims = match verifier.verify_subscribe_async(&req.token, now).await {
            Ok(c) => c,
            // Deliberately not 2.8's quirk (which silently removed the expiry).
            Err(TokenError::Expired) => {
                return Err(match generation {
                    Generation::V1 => ErrorCode::TOKEN_EXPIRED.into(),
                    Generation::V2 => ErrorCode::EXPIRED.into(),
                })
            }
            Err(TokenError::Invalid(_)) => return Err(DisconnectKind::InvalidToken.into()),
        };
        if !self.claims_match(&claims, &req.channel, &user) {
            return Err(DisconnectKind::InvalidToken.into());
        }
        let ttl = match claims.exp {
            Some(e) if e <= now => return Err(ErrorCode::EXPIRED.into()),
            Some(e) => u32::try_from(e - now).unwrap_or(u32::MAX),
            None => 0,
        };
        let mut st = self.shared.state.lock();
        let Some(sub) = st.subs.get_mut(&req.channel) else {
            return Err(ErrorCode::PERMISSION_DENIED.into());
        };
        sub.chan_info = claims.info;
        sub.expire_at = claims.exp;
        Ok(Some(ReplyBody::SubRefresh {
            expires: claims.exp.is_some(),
            ttl,
        }))
    }
}

/// Applies a backend's per-subscription overrides to the channel's options; returns whether
/// join/leave pushes are forced on for this subscriber. Recovery can only be forced on where
/// the channel keeps history.
pub(crate) fn apply_overrides(opts: &mut ChannelOptions, o: &SubOverride) -> bool {
    if let Some(v) = o.presence {
        opts.presence = v;
    }
    if let Some(v) = o.join_leave {
        opts.join_leave = v;
    }
    if let Some(v) = o.force_recovery {
        opts.history_recover = v && opts.history_enabled();
    }
    o.force_push_join_leave == Some(true)
}

impl Node {
    /// Registers the subscription (buffering live publications), adds presence and reads the
    /// stream position / missed publications. The caller sends the reply, then [`Node::activate_subscription`]s.
    pub(crate) async fn establish_subscription(
        &self,
        shared: &Arc<ClientShared>,
        req: &SubscribeRequest,
        opts: &ChannelOptions,
        chan_info: Option<Bytes>,
        expire_at: Option<i64>,
        push_join_leave: bool,
    ) -> Result<SubscribeResult, CmdError> {
        let node = self;
        let ch = req.channel.as_str();
        // Fossil deltas: asked by a v2 client and allowed by the channel.
        let delta = shared.generation() == rotor_protocol::Generation::V2
            && req.delta == "fossil"
            && opts.delta_fossil;
        let info = {
            let mut st = shared.state.lock();
            st.pending_cleanup.retain(|(c, _)| c != ch);
            st.subs.insert(
                ch.to_string(),
                SubState {
                    status: SubStatus::Subscribing(Vec::new()),
                    chan_info,
                    expire_at,
                    push_join_leave,
                    emit_join_leave: opts.join_leave,
                    presence: opts.presence,
                    positioned: opts.history_recover || opts.force_positioning,
                    offset: 0,
                    epoch: String::new(),
                    position_failures: 0,
                    refresh_proxy: None,
                    server_side: false,
                    filter: req.tf.clone().map(Arc::new),
                    delta,
                    delta_ready: false,
                },
            );
            shared.info_in(&st, ch)
        };
        let fail = |e: crate::engine::EngineError| {
            if e.code() == 100 {
                tracing::error!(channel = %ch, error = %e, "subscribe failed in engine");
            }
            shared.state.lock().subs.remove(ch);
            CmdError::Error(super::commands::engine_error(&e))
        };
        if node.hub().add_subscriber(ch, shared) {
            if let Err(e) = node.broker().subscribe(ch).await {
                node.hub().remove_subscriber(ch, shared.id());
                return Err(fail(e));
            }
        }
        if opts.presence {
            let ttl = node.config().client_presence_expire_interval.as_secs();
            if let Err(e) = node.presence().add_presence(ch, info, ttl).await {
                release(node, ch, shared.id()).await;
                return Err(fail(e));
            }
        }
        let mut result = SubscribeResult::default();
        if opts.history_recover || opts.force_positioning {
            let given = req.position_offset();
            let cache = req.recover && opts.recovery_mode == RecoveryMode::Cache;
            // v2: at most `recovery_max_publication_limit` publications; one more is read to
            // tell "exactly the cap" from "too many" (2.x recovers everything it has).
            let cap = match shared.generation() {
                rotor_protocol::Generation::V2 => {
                    Some(node.config().client_recovery_max_publication_limit).filter(|c| *c > 0)
                }
                rotor_protocol::Generation::V1 => None,
            };
            let filter = if cache {
                super::recovery::cache_filter(node.config(), req, opts)
            } else if req.recover {
                HistoryFilter {
                    since: Some(StreamPosition {
                        offset: given,
                        epoch: req.epoch.clone(),
                    }),
                    limit: cap.map(|c| c + 1),
                    reverse: false,
                    history_meta_ttl: opts.history_meta_ttl,
                }
            } else {
                HistoryFilter {
                    since: None,
                    limit: Some(0),
                    reverse: false,
                    history_meta_ttl: opts.history_meta_ttl,
                }
            };
            let page = match node.broker().history(ch, filter).await {
                Ok(p) => p,
                Err(e) => {
                    release(node, ch, shared.id()).await;
                    return Err(fail(e));
                }
            };
            let top = page.position;
            if cache {
                let (publications, recovered) =
                    super::recovery::cache_outcome(page.publications, &top, req);
                result.recovered = recovered;
                result.publications = publications;
                result.was_recovering = true;
                let m = &crate::metrics::METRICS;
                if recovered {
                    &m.recovered
                } else {
                    &m.not_recovered
                }
                .inc();
            } else if req.recover {
                let epoch_ok = req.epoch == top.epoch;
                let nothing_missed = page.publications.is_empty() && top.offset == given;
                let contiguous = page
                    .publications
                    .first()
                    .is_some_and(|p| p.offset == given + 1);
                let too_many = cap.is_some_and(|c| page.publications.len() > c);
                result.recovered = epoch_ok && (nothing_missed || contiguous) && !too_many;
                let m = &crate::metrics::METRICS;
                if result.recovered {
                    &m.recovered
                } else {
                    &m.not_recovered
                }
                .inc();
                result.publications = if too_many {
                    Vec::new()
                } else {
                    page.publications
                };
                // A tags filter recovers only the publications it matches (the position
                // still covers the others).
                if let Some(f) = &req.tf {
                    result.publications.retain(|p| f.matches(p.tags.as_deref()));
                }
                result.was_recovering = true;
            }
            result.recoverable = opts.history_recover;
            result.positioned = true;
            result.epoch = top.epoch.clone();
            result.offset = top.offset;
            if let Some(sub) = shared.state.lock().subs.get_mut(ch) {
                sub.offset = top.offset;
                sub.epoch = top.epoch.clone();
            }
        }
        if delta {
            result.delta = true;
            // A recovery that returned publications leaves the client holding the last one:
            // they go delta-chained and the next live one may be a patch. One that returned
            // none does not (centrifuge#629): the next live publication goes in full.
            if result.recovered && !result.publications.is_empty() {
                super::delta::chain_recovered(&mut result.publications, shared.encoding());
                if let Some(sub) = shared.state.lock().subs.get_mut(ch) {
                    sub.delta_ready = true;
                }
            }
        }
        Ok(result)
    }

    /// After the reply is queued: deliver what arrived while subscribing, then announce the
    /// join.
    pub(crate) async fn activate_subscription(&self, shared: &ClientShared, channel: &str) {
        let generation = shared.generation();
        let enc = self.hub().encoder(generation, shared.encoding());
        let join = {
            let mut st = shared.state.lock();
            let Some(sub) = st.subs.get_mut(channel) else {
                return;
            };
            let SubStatus::Subscribing(buffered) =
                std::mem::replace(&mut sub.status, SubStatus::Subscribed)
            else {
                return;
            };
            let mut gap = false;
            for p in buffered {
                if sub.positioned && p.offset > 0 {
                    if p.offset <= sub.offset {
                        continue;
                    }
                    if p.offset != sub.offset + 1 {
                        gap = true;
                        break;
                    }
                    sub.offset = p.offset;
                }
                if let Some(f) = &sub.filter {
                    if !f.matches(p.tags.as_deref()) {
                        continue;
                    }
                }
                let mut buf = Vec::with_capacity(p.data.len() + 64);
                if sub.delta {
                    // As in the fan-out (`deliver_publication`), one publication at a time.
                    let may_patch = sub.delta_ready && sub.positioned && p.offset > 0;
                    sub.delta_ready = true;
                    let form = super::delta::for_subscriber(&p, may_patch, shared.encoding());
                    enc.push(
                        &mut buf,
                        &Push::DeltaPublication {
                            channel,
                            publication: &form,
                        },
                    );
                } else {
                    enc.push(
                        &mut buf,
                        &Push::Publication {
                            channel,
                            publication: &p,
                        },
                    );
                }
                crate::metrics::sent(crate::metrics::FrameType::PushPublication, buf.len());
                shared.enqueue(Bytes::from(buf));
            }
            let emit = sub.emit_join_leave;
            if gap {
                shared.position_lost(&mut st, channel, generation);
                return;
            }
            emit.then(|| shared.info_in(&st, channel))
        };
        if let Some(info) = join {
            if let Err(e) = self.broker().publish_join(channel, info).await {
                tracing::warn!(channel, error = %e, "join not published");
            }
        }
    }
}

/// Undoes a subscription that failed after the broker subscribed: the hub entry goes, and
/// when it was the channel's last one on this node the broker unsubscribes too (otherwise a
/// refused subscribe, e.g. recovery on a broker without history, would leave the node
/// subscribed to a channel nobody here reads).
async fn release(node: &crate::Node, channel: &str, client_id: &str) {
    if node.hub().remove_subscriber(channel, client_id) {
        if let Err(e) = node.broker().unsubscribe(channel).await {
            tracing::warn!(channel, error = %e, "broker unsubscribe failed");
        }
    }
}
