//! Per-connection timers, driven by the node's one housekeeping tick instead of a timer per
//! connection: pings and pong deadlines, connection and subscription expiry, presence refresh.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use rotor_protocol::{ClientInfo, DisconnectKind, Generation, UnsubscribeCode};

use super::{ClientShared, SubState};
use crate::config::NodeConfig;

/// Engine work a tick found; the node performs it after releasing all locks.
#[derive(Default)]
pub(crate) struct TickWork {
    /// Presence entries to refresh.
    pub presence: Vec<(String, ClientInfo)>,
    /// Subscriptions already removed from their connection, whose hub entry, presence and
    /// leave still need handling.
    pub cleanup: Vec<(std::sync::Arc<ClientShared>, String, SubState, ClientInfo)>,
    /// Recoverable subscriptions whose stream position is to be compared with the stream top:
    /// (connection, channel, offset delivered, epoch followed).
    pub positions: Vec<(std::sync::Arc<ClientShared>, String, u64, String)>,
    /// Connections whose expiry came, to be refreshed through the backend.
    pub refresh: Vec<std::sync::Arc<ClientShared>>,
    /// Subscriptions to refresh through the backend: (connection, channel, proxy name).
    pub sub_refresh: Vec<(std::sync::Arc<ClientShared>, String, std::sync::Arc<str>)>,
}

/// Channels whose publications a broker may have lost since the last tick (a reconnect, a
/// dropped message, a changed epoch): positioned subscriptions to them check their position,
/// the others are told to subscribe again.
#[derive(Debug, Default)]
pub struct Gaps {
    /// Every channel.
    pub all: bool,
    pub channels: std::collections::HashSet<String>,
}

impl Gaps {
    /// Adds one channel (`Some`) or every channel (`None`).
    pub fn add(&mut self, channel: Option<&str>) {
        match channel {
            None => {
                self.all = true;
                self.channels.clear();
            }
            Some(_) if self.all => {}
            Some(c) => {
                self.channels.insert(c.to_string());
            }
        }
    }

    pub fn covers(&self, channel: &str) -> bool {
        self.all || self.channels.contains(channel)
    }
}

impl ClientShared {
    /// The outcome of a position check: `top` is the stream's current position. A
    /// subscription behind it twice in a row (a publication in flight explains one) has lost
    /// publications and is told so.
    pub(crate) fn position_checked(
        &self,
        channel: &str,
        checked_offset: u64,
        top: &crate::engine::StreamPosition,
    ) {
        let generation = self.generation();
        let mut st = self.state.lock();
        let Some(sub) = st.subs.get_mut(channel) else {
            return;
        };
        let epoch_changed = !sub.epoch.is_empty() && sub.epoch != top.epoch;
        if !epoch_changed && (sub.offset >= top.offset || sub.offset > checked_offset) {
            sub.position_failures = 0;
            return;
        }
        sub.position_failures += 1;
        if epoch_changed || sub.position_failures >= 2 {
            self.position_lost(&mut st, channel, generation);
        }
    }

    /// Checks this connection's deadlines at `now`.
    pub(crate) fn tick(
        self: &std::sync::Arc<Self>,
        cfg: &NodeConfig,
        now: Instant,
        now_unix: i64,
        gaps: Option<&Gaps>,
        work: &mut TickWork,
    ) {
        let check_positions = gaps.is_some();
        // Most ticks find nothing due: answer that without touching the state lock.
        if !check_positions && mono_ms(now) < self.next_due.load(Ordering::Relaxed) {
            return;
        }
        let generation = self.generation();
        let mut st = self.state.lock();
        if !st.connected || st.closed {
            return;
        }
        let base = |st: &super::ClientState| ClientInfo {
            user: st.user.clone(),
            client: self.id.to_string(),
            conn_info: st.conn_info.clone(),
            chan_info: None,
        };
        let pending = std::mem::take(&mut st.pending_cleanup);
        for (ch, sub) in pending {
            let mut info = base(&st);
            info.chan_info = sub.chan_info.clone();
            work.cleanup.push((self.clone(), ch, sub, info));
        }

        let ping = cfg.client_ping_interval;
        if !ping.is_zero() {
            match generation {
                Generation::V2 => {
                    if st.pong_deadline.is_some_and(|d| now >= d) {
                        drop(st);
                        self.disconnect(DisconnectKind::NoPong);
                        self.cancel.cancel();
                        return;
                    }
                    if st.next_ping.is_some_and(|t| now >= t) {
                        st.next_ping = Some(now + ping);
                        if st.pong_deadline.is_none() && self.transport_info.client_pongs() {
                            st.pong_deadline = Some(now + cfg.client_pong_timeout);
                        }
                        let mut buf = Vec::with_capacity(4);
                        crate::hub::encoder_for(generation, self.encoding).ping(&mut buf);
                        crate::metrics::sent(crate::metrics::FrameType::ServerPing, buf.len());
                        self.enqueue(Bytes::from(buf));
                    }
                }
                Generation::V1 => {
                    if now.duration_since(st.last_seen) > ping * 2 {
                        // Nothing heard, not even a pong to our pings: the peer is gone.
                        drop(st);
                        self.drop_transport();
                        self.cancel.cancel();
                        return;
                    }
                    if st.next_ping.is_some_and(|t| now >= t) {
                        st.next_ping = Some(now + ping);
                        self.queue.ping();
                    }
                }
            }
        }

        if st.server_refresh && st.exp.is_some_and(|e| now_unix >= e) {
            // The backend is asked at the expiry itself; until it answers (or if it fails),
            // the next attempt is a minute away.
            st.exp = Some(now_unix + super::proxy::REFRESH_RETRY_SECS);
            work.refresh.push(self.clone());
        } else if !st.server_refresh
            && st
                .exp
                .is_some_and(|e| now_unix > e + cfg.client_expired_close_delay.as_secs() as i64)
        {
            drop(st);
            self.disconnect(DisconnectKind::Expired);
            self.cancel.cancel();
            return;
        }

        if check_positions || st.next_position_check.is_some_and(|t| now >= t) {
            // After a failure, look again soon: two failures in a row mean a real gap.
            let again = if st.subs.values().any(|s| s.position_failures > 0) || check_positions {
                std::time::Duration::from_secs(1)
            } else {
                cfg.client_channel_position_check_delay
            };
            st.next_position_check = Some(now + again);
            let mut unpositioned = Vec::new();
            for (ch, sub) in &st.subs {
                if !matches!(sub.status, super::SubStatus::Subscribed) {
                    continue;
                }
                if sub.positioned {
                    work.positions
                        .push((self.clone(), ch.clone(), sub.offset, sub.epoch.clone()));
                } else if gaps.is_some_and(|g| g.covers(ch)) {
                    unpositioned.push((ch.clone(), sub.server_side));
                }
            }
            // No position to check: the gap itself is the signal (v2: unsubscribe 2500 and the
            // client resubscribes; v1 or a server-side subscription: disconnect 3010 and the
            // client reconnects).
            for (ch, server_side) in unpositioned {
                self.position_lost(&mut st, &ch, generation);
                if server_side || !matches!(generation, Generation::V2) {
                    return;
                }
            }
        }

        if st.next_presence.is_some_and(|t| now >= t) {
            st.next_presence = Some(now + cfg.client_presence_ping_interval);
            let grace = cfg.client_expired_sub_close_delay.as_secs() as i64;
            for (ch, sub) in st.subs.iter_mut() {
                if let Some(proxy) = &sub.refresh_proxy {
                    if sub.expire_at.is_some_and(|e| now_unix > e + grace) {
                        // Asked again in a minute unless the backend answers before.
                        sub.expire_at = Some(now_unix + super::proxy::REFRESH_RETRY_SECS - grace);
                        work.sub_refresh
                            .push((self.clone(), ch.clone(), proxy.clone()));
                    }
                }
            }
            let expired: Vec<String> = st
                .subs
                .iter()
                .filter(|(_, s)| s.refresh_proxy.is_none())
                .filter(|(_, s)| s.expire_at.is_some_and(|e| now_unix > e + grace))
                .map(|(c, _)| c.clone())
                .collect();
            let server_side_expired = expired
                .iter()
                .any(|c| st.subs.get(c).is_some_and(|s| s.server_side));
            if !expired.is_empty() {
                match generation {
                    // Centrifuge closes the connection when a server-side subscription expires.
                    _ if server_side_expired => {
                        drop(st);
                        self.disconnect(DisconnectKind::SubscriptionExpired);
                        self.cancel.cancel();
                        return;
                    }
                    Generation::V1 => {
                        drop(st);
                        self.disconnect(DisconnectKind::SubscriptionExpired);
                        self.cancel.cancel();
                        return;
                    }
                    Generation::V2 => {
                        for ch in expired {
                            if let Some(sub) = st.subs.remove(&ch) {
                                let mut info = base(&st);
                                info.chan_info = sub.chan_info.clone();
                                self.push_unsubscribe(&ch, UnsubscribeCode::EXPIRED);
                                work.cleanup.push((self.clone(), ch, sub, info));
                            }
                        }
                    }
                }
            }
            for (ch, sub) in &st.subs {
                if sub.presence {
                    let mut info = base(&st);
                    info.chan_info = sub.chan_info.clone();
                    work.presence.push((ch.clone(), info));
                }
            }
        }

        // The earliest moment anything above can become due again.
        let mut due: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        consider(st.next_ping);
        consider(st.pong_deadline);
        consider(st.next_presence);
        consider(st.next_position_check);
        if generation == Generation::V1 && !ping.is_zero() {
            consider(Some(st.last_seen + ping * 2));
        }
        if let Some(e) = st.exp {
            let close_at = if st.server_refresh {
                e
            } else {
                e + cfg.client_expired_close_delay.as_secs() as i64 + 1
            };
            let secs = u64::try_from(close_at - now_unix).unwrap_or(0);
            consider(Some(now + std::time::Duration::from_secs(secs)));
        }
        self.next_due
            .store(due.map_or(u64::MAX, mono_ms), Ordering::Relaxed);
    }

    /// Makes the next tick look at this connection whatever its deadlines say (state that the
    /// deadlines do not capture changed: a pending cleanup, a new expiry).
    pub(crate) fn tick_soon(&self) {
        self.next_due.store(0, Ordering::Relaxed);
    }
}

/// Milliseconds since the first call: a compact monotonic clock for deadlines in atomics.
fn mono_ms(t: Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    t.checked_duration_since(epoch)
        .map_or(0, |d| d.as_millis() as u64)
}
