//! What one subscription is: positioned, recoverable, recovering, in which recovery mode —
//! decided once per subscribe from the channel's options, the client's request and its
//! generation — and the cache-mode recovery (Centrifugo 6 `force_recovery_mode: cache`).
//!
//! The decision is carried to [`crate::node::Node::establish_subscription`] in the effective
//! options of the subscription ([`SubMode::apply`]): `history_recover` = recoverable,
//! `force_positioning` = positioned, `recovery_mode` = the mode to recover in; and in the
//! request: `recover` = recover now. Cache mode's history read and outcome are
//! [`cache_filter`] / [`cache_outcome`].
//!
//! Protocol v2 (CHANNELS-MODERN.md §3): `force_positioning` / `force_recovery` make every
//! subscription positioned / recoverable; `allow_positioning` / `allow_recovery` grant a
//! client's `positioned` / `recoverable` ask (history permission grants it too); anything not
//! granted is silently plain. `auto_cache_recover` recovers on every subscribe. Protocol v1
//! (Centrifugo 2.8): `history_recover` alone, stream recovery, nothing of the above.
//! Positioning and recovery need the channel's history (no stream to follow otherwise).

use std::sync::Arc;

use rotor_protocol::command::SubscribeRequest;
use rotor_protocol::{Generation, Publication};

use super::ClientShared;
use crate::config::NodeConfig;
use crate::config::{ChannelOptions, RecoveryMode};
use crate::engine::{HistoryFilter, StreamPosition};
use crate::node::Node;

/// `flag` bit 2 of a v2 subscribe: a failed stream recovery is error 112.
pub(crate) const FLAG_REJECT_UNRECOVERED: i64 = 2;

/// How one subscription follows its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubMode {
    pub positioned: bool,
    pub recoverable: bool,
    /// Recover now (the client asked with `recover: true`, or `auto_cache_recover`).
    pub recover: bool,
    pub mode: RecoveryMode,
    /// A failed stream recovery answers error 112 instead of `recovered: false`.
    pub reject_unrecovered: bool,
}

impl SubMode {
    /// The mode of a subscription to a channel with options `o` (overrides already applied).
    /// `history_permission`: the client may call history on the channel (v6 `allow_history_for_*`,
    /// 2.x history not disabled for clients, or `client.insecure`). Server-side subscriptions
    /// pass a request without `positioned`/`recoverable` asks.
    pub(crate) fn resolve(
        o: &ChannelOptions,
        req: &SubscribeRequest,
        generation: Generation,
        history_permission: bool,
    ) -> Self {
        let history = o.history_enabled();
        match generation {
            Generation::V1 => SubMode {
                positioned: o.history_recover,
                recoverable: o.history_recover,
                recover: o.history_recover && req.recover,
                mode: RecoveryMode::Stream,
                reject_unrecovered: false,
            },
            Generation::V2 => {
                let recoverable = history
                    && (o.history_recover
                        || (req.recoverable && (o.allow_recovery || history_permission)));
                let positioned = recoverable
                    || (history
                        && (o.force_positioning
                            || (req.positioned && (o.allow_positioning || history_permission))));
                let auto = o.auto_cache_recover && o.recovery_mode == RecoveryMode::Cache;
                SubMode {
                    positioned,
                    recoverable,
                    recover: recoverable && (req.recover || auto),
                    mode: o.recovery_mode,
                    reject_unrecovered: req.flag & FLAG_REJECT_UNRECOVERED != 0,
                }
            }
        }
    }

    /// Writes the decision into the subscription's effective options (what
    /// `establish_subscription` reads; the caller sets the request's `recover` to
    /// [`SubMode::recover`]).
    pub(crate) fn apply(&self, o: &mut ChannelOptions) {
        o.history_recover = self.recoverable;
        o.force_positioning = self.positioned;
        o.recovery_mode = self.mode;
    }

    /// Whether a recovery outcome must be refused with error 112.
    pub(crate) fn refuses(&self, was_recovering: bool, recovered: bool) -> bool {
        self.reject_unrecovered && self.mode == RecoveryMode::Stream && was_recovering && !recovered
    }
}

/// The history read of a cache-mode recovery: the newest publication, or with a tags filter
/// the newest `recovery_max_publication_limit` (newest first).
pub(crate) fn cache_filter(
    cfg: &NodeConfig,
    req: &SubscribeRequest,
    o: &ChannelOptions,
) -> HistoryFilter {
    let limit = if req.tf.is_some() {
        cfg.client_recovery_max_publication_limit.max(1)
    } else {
        1
    };
    HistoryFilter {
        since: None,
        limit: Some(limit),
        reverse: true,
        history_meta_ttl: o.history_meta_ttl,
    }
}

/// Cache recovery (Centrifuge `recoverCache` / `isCacheRecovered`) over what
/// [`cache_filter`] read (newest first): the publications to send — only the latest (with a
/// tags filter the newest matching one), none when the client's position is the top — and
/// whether the subscription is recovered: the latest history entry is the stream top; empty
/// history is not recovered.
pub(crate) fn cache_outcome(
    newest_first: Vec<Publication>,
    top: &StreamPosition,
    req: &SubscribeRequest,
) -> (Vec<Publication>, bool) {
    let Some(latest) = newest_first.first() else {
        return (Vec::new(), false);
    };
    let recovered = latest.offset == top.offset;
    if req.position_offset() == top.offset && req.epoch == top.epoch {
        return (Vec::new(), recovered);
    }
    let wanted = newest_first
        .into_iter()
        .find(|p| req.tf.as_ref().is_none_or(|f| f.matches(p.tags.as_deref())));
    (wanted.into_iter().collect(), recovered)
}

impl Node {
    /// Undoes an established subscription whose reply is an error (nothing was delivered and
    /// no join announced): its state, hub entry and presence go.
    pub(crate) async fn abort_subscription(&self, shared: &Arc<ClientShared>, channel: &str) {
        let removed = {
            let mut st = shared.state.lock();
            st.subs.remove(channel).map(|sub| {
                let mut info = shared.info_in(&st, channel);
                info.chan_info = sub.chan_info.clone();
                (sub, info)
            })
        };
        if let Some((mut sub, info)) = removed {
            sub.emit_join_leave = false;
            self.drop_subscription(shared, channel, &sub, &info).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> ChannelOptions {
        ChannelOptions {
            history_size: 10,
            history_lifetime: 60,
            ..Default::default()
        }
    }

    fn req(f: impl FnOnce(&mut SubscribeRequest)) -> SubscribeRequest {
        let mut r = SubscribeRequest::default();
        f(&mut r);
        r
    }

    #[test]
    fn v2_asks_are_granted_by_the_option_or_history_permission() {
        let ask = req(|r| {
            r.positioned = true;
            r.recoverable = true;
            r.recover = true;
        });
        let closed = SubMode::resolve(&history(), &ask, Generation::V2, false);
        assert!(!closed.positioned && !closed.recoverable && !closed.recover);
        let by_permission = SubMode::resolve(&history(), &ask, Generation::V2, true);
        assert!(by_permission.positioned && by_permission.recoverable && by_permission.recover);
        let o = ChannelOptions {
            allow_positioning: true,
            ..history()
        };
        let m = SubMode::resolve(&o, &ask, Generation::V2, false);
        assert!(m.positioned && !m.recoverable && !m.recover);
        // Without history there is no stream to follow.
        let o = ChannelOptions {
            force_positioning: true,
            allow_recovery: true,
            ..Default::default()
        };
        let m = SubMode::resolve(&o, &ask, Generation::V2, true);
        assert!(!m.positioned && !m.recoverable);
    }

    #[test]
    fn v1_keeps_2_8_rules() {
        let o = ChannelOptions {
            force_positioning: true,
            allow_recovery: true,
            recovery_mode: RecoveryMode::Cache,
            auto_cache_recover: true,
            ..history()
        };
        let ask = req(|r| r.recoverable = true);
        let m = SubMode::resolve(&o, &ask, Generation::V1, true);
        assert!(!m.positioned && !m.recoverable && !m.recover);
        let o = ChannelOptions {
            history_recover: true,
            ..o
        };
        let m = SubMode::resolve(&o, &req(|r| r.flag = 2), Generation::V1, false);
        assert!(m.positioned && m.recoverable && !m.recover);
        assert_eq!(m.mode, RecoveryMode::Stream);
        assert!(!m.refuses(true, false));
    }

    #[test]
    fn flag_2_refuses_only_failed_stream_recoveries() {
        let o = ChannelOptions {
            history_recover: true,
            ..history()
        };
        let m = SubMode::resolve(&o, &req(|r| r.flag = 3), Generation::V2, false);
        assert!(m.refuses(true, false));
        assert!(!m.refuses(true, true) && !m.refuses(false, false));
        let m = SubMode::resolve(&o, &req(|r| r.flag = 1), Generation::V2, false);
        assert!(!m.refuses(true, false));
        let cache = ChannelOptions {
            recovery_mode: RecoveryMode::Cache,
            ..o
        };
        let m = SubMode::resolve(&cache, &req(|r| r.flag = 2), Generation::V2, false);
        assert!(!m.refuses(true, false));
    }

    #[test]
    fn cache_outcome_cases() {
        let p = |offset| Publication {
            offset,
            ..Default::default()
        };
        let top = StreamPosition {
            offset: 5,
            epoch: "e".into(),
        };
        let behind = req(|r| {
            r.offset = 2;
            r.epoch = "e".into();
        });
        assert_eq!(
            cache_outcome(Vec::new(), &top, &behind),
            (Vec::new(), false)
        );
        let (pubs, ok) = cache_outcome(vec![p(5)], &top, &behind);
        assert!(ok);
        assert_eq!(pubs.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![5]);
        let at_top = req(|r| {
            r.offset = 5;
            r.epoch = "e".into();
        });
        assert_eq!(cache_outcome(vec![p(5)], &top, &at_top), (Vec::new(), true));
        // The latest entry is not the top (history lost meanwhile): not recovered.
        let (pubs, ok) = cache_outcome(vec![p(4)], &top, &behind);
        assert!(!ok && pubs.len() == 1);
    }
}
