//! The reading methods: `presence`, `presence_stats`, `history` (2.x returns everything, the
//! current API pages and checks the position it is given), `history_remove`, `channels` (over
//! every node, filtered by a glob pattern), `info` and the OSS `rpc` (no handlers).

use bytes::Bytes;
use rotor_protocol::api::{HistoryParams, RpcParams};
use rotor_protocol::ClientInfo;

use super::glob::Glob;
use super::{ApiError, ApiGeneration, NodeInfo};
use crate::engine::{HistoryFilter, HistoryPage, PresenceStats};
use crate::node::Node;

impl Node {
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
            .map_err(ApiError::from_engine)?;
        list.sort_by(|a, b| a.client.cmp(&b.client));
        Ok(list)
    }

    pub async fn api_presence_stats(&self, channel: &str) -> Result<PresenceStats, ApiError> {
        self.presence_options(channel)?;
        self.presence()
            .presence_stats(channel)
            .await
            .map_err(ApiError::from_engine)
    }

    /// Checks that `channel` keeps history; returns its namespace's `history_meta_ttl`.
    fn history_options(&self, channel: &str) -> Result<Option<std::time::Duration>, ApiError> {
        let opts = self.api_options(channel)?;
        if !opts.history_enabled() {
            return Err(ApiError::NOT_AVAILABLE);
        }
        Ok(opts.history_meta_ttl)
    }

    /// 2.x: every retained publication. Current API: `limit` (0 = only the position), `since`
    /// (its epoch must be the stream's: 112 otherwise), `reverse` (not with `since.offset` 0:
    /// Centrifuge refuses that as a bad request, which the executor answers as 100).
    pub async fn api_history(
        &self,
        generation: ApiGeneration,
        req: &HistoryParams,
    ) -> Result<HistoryPage, ApiError> {
        let channel = &*req.channel;
        let history_meta_ttl = self.history_options(channel)?;
        if generation.is_legacy() {
            let all = HistoryFilter {
                history_meta_ttl,
                ..Default::default()
            };
            return self
                .broker()
                .history(channel, all)
                .await
                .map_err(ApiError::from_engine);
        }
        if let Some(since) = &req.since {
            if req.reverse && since.offset == 0 {
                return Err(ApiError::INTERNAL);
            }
            if !since.epoch.is_empty() {
                let top = HistoryFilter {
                    since: None,
                    limit: Some(0),
                    reverse: false,
                    history_meta_ttl,
                };
                let page = self
                    .broker()
                    .history(channel, top)
                    .await
                    .map_err(ApiError::from_engine)?;
                if page.position.epoch != since.epoch {
                    return Err(ApiError::UNRECOVERABLE_POSITION);
                }
            }
        }
        let filter = HistoryFilter {
            history_meta_ttl,
            ..HistoryFilter::from_request(req.limit, req.since.clone(), req.reverse)
        };
        self.broker()
            .history(channel, filter)
            .await
            .map_err(ApiError::from_engine)
    }

    pub async fn api_history_remove(&self, channel: &str) -> Result<(), ApiError> {
        self.history_options(channel)?;
        self.broker()
            .remove_history(channel)
            .await
            .map_err(ApiError::from_engine)
    }

    /// Active channels with their subscriber counts, summed over every live node: this node's
    /// now, the others' as of their last node-info message (a few seconds old at most).
    /// `pattern` (gobwas/glob syntax, see [`super::glob`]) filters them; a bad one is 100.
    pub fn api_channels(&self, pattern: &str) -> Result<Vec<(String, usize)>, ApiError> {
        let glob = if pattern.is_empty() {
            None
        } else {
            Some(Glob::new(pattern).map_err(|_| ApiError::INTERNAL)?)
        };
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
        if let Some(glob) = glob {
            list.retain(|(c, _)| glob.is_match(c));
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
                num_subs: n.num_subs,
                uptime_secs: n.uptime,
                messages_sent: n.messages_sent,
            })
            .collect()
    }

    /// The server API `rpc`: Centrifugo OSS registers no handler, so every method is unknown.
    pub fn api_rpc(&self, req: &RpcParams) -> Result<Bytes, ApiError> {
        if req.method.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        Err(ApiError::METHOD_NOT_FOUND)
    }
}
