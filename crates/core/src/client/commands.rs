//! publish, presence, presence_stats and history from a client.

use std::sync::Arc;

use rotor_protocol::command::{ChannelRequest, HistoryRequest, PublishRequest};
use rotor_protocol::reply::HistoryResult;
use rotor_protocol::{CommandKind, DisconnectKind, ErrorCode, Generation, ReplyBody};

use super::{CmdResult, Session};
use crate::backend::{BackendStyle, PublishEvent};
use crate::config::{ChannelOptions, DataFormat};
use crate::engine::{HistoryFilter, PublishOptions};

impl Session {
    /// The rate limits of a client command (called only when the node has some; connect is
    /// checked by `connect` once the user is known): error 111 when refused.
    pub(super) async fn rate_limit(&mut self, kind: &CommandKind) -> Result<(), super::CmdError> {
        use crate::ratelimit::Command as C;
        let (cmd, channel, method) = match kind {
            CommandKind::Subscribe(r) => (C::Subscribe, r.channel.as_str(), ""),
            CommandKind::Unsubscribe(r) => (C::Unsubscribe, r.channel.as_str(), ""),
            CommandKind::Publish(r) => (C::Publish, r.channel.as_str(), ""),
            CommandKind::Presence(r) => (C::Presence, r.channel.as_str(), ""),
            CommandKind::PresenceStats(r) => (C::PresenceStats, r.channel.as_str(), ""),
            CommandKind::History(r) => (C::History, r.channel.as_str(), ""),
            CommandKind::Rpc(r) => (C::Rpc, "", r.method.as_str()),
            CommandKind::Refresh(_) => (C::Refresh, "", ""),
            CommandKind::SubRefresh(r) => (C::SubRefresh, r.channel.as_str(), ""),
            _ => return Ok(()),
        };
        self.rate_check(cmd, channel, method, None).await
    }

    /// Checks `cmd` against the node's rate limits for this connection and its user (`user`,
    /// or the connection's).
    pub(super) async fn rate_check(
        &mut self,
        cmd: crate::ratelimit::Command,
        channel: &str,
        method: &str,
        user: Option<&str>,
    ) -> Result<(), super::CmdError> {
        let node = &self.node;
        let Some(rl) = node.rate_limits() else {
            return Ok(());
        };
        let ns = rl
            .wants_namespace(cmd)
            .then(|| node.rules().namespace_name(channel).to_string());
        let user = match user {
            Some(u) => u.to_string(),
            // Only the per-user layers look at the user.
            None if rl.per_user() => self.shared.state.lock().user.clone(),
            None => String::new(),
        };
        let conn = self.rate.get_or_insert_with(Default::default);
        if rl.check(conn, &user, cmd, ns.as_deref(), method).await {
            Ok(())
        } else {
            Err(ErrorCode::TOO_MANY_REQUESTS.into())
        }
    }

    /// Counts an error reply against the connection's `client_error` budget: `true` when it
    /// is spent (the caller disconnects with 3509).
    pub(super) fn error_budget_spent(&mut self, code: u32) -> bool {
        let Some(rl) = self.node.rate_limits() else {
            return false;
        };
        let conn = self.rate.get_or_insert_with(Default::default);
        rl.count_error(conn, code)
    }

    /// Channel options for a command that needs a channel: empty → bad request, unknown
    /// namespace → 102, a name the namespace's `channel_regex` (or, for v2 clients, the ASCII
    /// rule) refuses → 107.
    fn channel_options(&self, channel: &str) -> Result<ChannelOptions, super::CmdError> {
        if channel.is_empty() {
            return Err(DisconnectKind::BadRequest.into());
        }
        let rules = self.node.rules();
        let opts = rules
            .options(channel)
            .cloned()
            .ok_or(super::CmdError::from(ErrorCode::UNKNOWN_CHANNEL))?;
        let v2 = self.shared.generation() == Generation::V2;
        if !rules.name_allowed(channel, &opts, v2) {
            return Err(ErrorCode::BAD_REQUEST.into());
        }
        Ok(opts)
    }

    fn is_subscribed(&self, channel: &str) -> bool {
        self.shared.state.lock().subs.contains_key(channel)
    }

    pub(super) async fn publish(&mut self, req: PublishRequest) -> CmdResult {
        let opts = self.channel_options(&req.channel)?;
        let format = opts.publication_data_format;
        let data = match req.data {
            Some(d) => d,
            None if format == DataFormat::Binary => bytes::Bytes::new(),
            None => return Err(DisconnectKind::BadRequest.into()),
        };
        // 6.x `publication_data_format` (its default refuses empty data); 2.x clients are held
        // to it only when the option is set.
        let checked = self.shared.generation() == Generation::V2 || format != DataFormat::NonEmpty;
        if checked && !format.accepts(&data) {
            return Err(ErrorCode::BAD_REQUEST.into());
        }
        let cfg = self.node.config();
        let backend = self.node.backend().cloned();
        // Centrifugo 6: the publish proxy replaces the publish permission checks; 2.x checks
        // them first and then asks its proxy.
        let proxy_first = opts.proxy_publish
            && backend
                .as_ref()
                .is_some_and(|b| b.style() == BackendStyle::Modern);
        if !proxy_first {
            if !opts.publish && !cfg.client_insecure {
                return Err(ErrorCode::PERMISSION_DENIED.into());
            }
            let st = self.shared.state.lock();
            if opts.subscribe_to_publish && !st.subs.contains_key(&req.channel) {
                return Err(ErrorCode::PERMISSION_DENIED.into());
            }
        }
        let mut data = data;
        let mut popts = PublishOptions {
            history_size: opts.history_size,
            history_lifetime: opts.history_lifetime,
            history_meta_ttl: opts.history_meta_ttl,
            // 6.x `delta_publish`: client publications are marked for delta delivery too.
            delta: opts.delta_publish,
            ..Default::default()
        };
        if opts.proxy_publish {
            let Some(backend) = backend else {
                return Err(ErrorCode::NOT_AVAILABLE.into());
            };
            let ctx = self.shared.conn_context();
            let ev = PublishEvent {
                channel: req.channel.clone(),
                data: data.clone(),
            };
            let g = backend.publish(&opts.publish_proxy_name, &ctx, ev).await?;
            if let Some(replaced) = self.shared.checked_payload(g.data)? {
                data = replaced;
            }
            if g.skip_history {
                popts.history_size = 0;
                popts.history_lifetime = 0;
            }
        }
        let info = {
            let st = self.shared.state.lock();
            self.shared.info_in(&st, &req.channel)
        };
        let started = std::time::Instant::now();
        let result = self
            .node
            .broker()
            .publish(&req.channel, data, Some(Arc::new(info)), popts)
            .await;
        crate::metrics::METRICS
            .broker_publish_duration
            .observe(started.elapsed());
        match result {
            Ok(_) => Ok(Some(ReplyBody::Publish)),
            Err(e) => {
                tracing::error!(channel = %req.channel, error = %e, "publish failed");
                Err(engine_error(&e).into())
            }
        }
    }

    fn presence_allowed(&self, channel: &str) -> Result<(), super::CmdError> {
        let opts = self.channel_options(channel)?;
        if !opts.presence || opts.presence_disable_for_client {
            return Err(ErrorCode::NOT_AVAILABLE.into());
        }
        if !self.is_subscribed(channel) {
            return Err(ErrorCode::PERMISSION_DENIED.into());
        }
        Ok(())
    }

    pub(super) async fn presence(&mut self, req: ChannelRequest) -> CmdResult {
        self.presence_allowed(&req.channel)?;
        match self.node.presence().presence(&req.channel).await {
            Ok(mut list) => {
                list.sort_by(|a, b| a.client.cmp(&b.client));
                Ok(Some(ReplyBody::Presence(list)))
            }
            Err(e) => Err(engine_error(&e).into()),
        }
    }

    pub(super) async fn presence_stats(&mut self, req: ChannelRequest) -> CmdResult {
        self.presence_allowed(&req.channel)?;
        match self.node.presence().presence_stats(&req.channel).await {
            Ok(s) => Ok(Some(ReplyBody::PresenceStats {
                num_clients: s.num_clients,
                num_users: s.num_users,
            })),
            Err(e) => Err(engine_error(&e).into()),
        }
    }

    pub(super) async fn history(&mut self, req: HistoryRequest) -> CmdResult {
        let opts = self.channel_options(&req.channel)?;
        if !opts.history_enabled() || opts.history_disable_for_client {
            return Err(ErrorCode::NOT_AVAILABLE.into());
        }
        if !self.is_subscribed(&req.channel) {
            return Err(ErrorCode::PERMISSION_DENIED.into());
        }
        let mut filter = match self.shared.generation() {
            // 2.x history has no paging: everything, oldest first.
            Generation::V1 => HistoryFilter::default(),
            Generation::V2 => {
                let mut f = HistoryFilter::from_request(req.limit, req.since, req.reverse);
                let max = self.node.config().client_history_max_publication_limit;
                if max > 0 && f.limit.is_none_or(|l| l > max) {
                    f.limit = Some(max);
                }
                f
            }
        };
        filter.history_meta_ttl = opts.history_meta_ttl;
        match self.node.broker().history(&req.channel, filter).await {
            Ok(page) => Ok(Some(ReplyBody::History(HistoryResult {
                publications: page.publications,
                epoch: page.position.epoch,
                offset: page.position.offset,
            }))),
            Err(e) => Err(engine_error(&e).into()),
        }
    }
}

/// 108 for what the engine does not offer at all (history on a broker without storage,
/// presence without a presence manager), 107 for a channel the broker cannot carry, 100 for a
/// failure.
pub(super) fn engine_error(e: &crate::engine::EngineError) -> ErrorCode {
    match e.code() {
        108 => ErrorCode::NOT_AVAILABLE,
        107 => ErrorCode::BAD_REQUEST,
        _ => ErrorCode::INTERNAL,
    }
}
