//! Delivery to one connection from the hub's fan-out: a publication (plain or in a delta
//! form, after the position and filter checks), join/leave, and what a lost position does.

use bytes::Bytes;
use rotor_protocol::{DisconnectKind, Generation, Publication, Push, UnsubscribeCode};

use super::{ClientShared, ClientState, SubStatus};
use crate::hub::PreparedPush;
use crate::metrics::{self, FrameType};

impl ClientShared {
    /// Fan-out entry point for publications.
    pub(crate) fn deliver_publication(
        &self,
        channel: &str,
        publication: &Publication,
        prepared: &PreparedPush<'_>,
    ) {
        let generation = self.generation();
        let mut st = self.state.lock();
        let Some(sub) = st.subs.get_mut(channel) else {
            return;
        };
        match &mut sub.status {
            SubStatus::Subscribing(buf) => buf.push(publication.clone()),
            SubStatus::Subscribed => {
                if sub.positioned && publication.offset > 0 {
                    if publication.offset <= sub.offset {
                        return; // already delivered (recovered or duplicate)
                    }
                    if publication.offset != sub.offset + 1 {
                        self.position_lost(&mut st, channel, generation);
                        return;
                    }
                    sub.offset = publication.offset;
                }
                if let Some(f) = &sub.filter {
                    if !f.matches(publication.tags.as_deref()) {
                        return;
                    }
                }
                let b = if sub.delta {
                    // A patch needs the previous publication on the client: one delivered since
                    // the subscribe (or recovered), and no gap (checked above when positioned).
                    let may_patch = sub.delta_ready && sub.positioned && publication.offset > 0;
                    sub.delta_ready = true;
                    prepared.delta_bytes(self.encoding, may_patch)
                } else {
                    prepared.bytes(generation, self.encoding)
                };
                metrics::sent(FrameType::PushPublication, b.len());
                self.enqueue(b);
            }
        }
    }

    /// A recoverable subscription skipped an offset: v1 reconnects (3010); v2 resubscribes
    /// with recovery (unsubscribe push 2500), except from a server-side subscription, which it
    /// cannot resubscribe to: that connection closes with 3010 too.
    pub(crate) fn position_lost(
        &self,
        st: &mut ClientState,
        channel: &str,
        generation: Generation,
    ) {
        let server_side = st.subs.get(channel).is_some_and(|s| s.server_side);
        match generation {
            Generation::V1 => self.disconnect(DisconnectKind::InsufficientState),
            Generation::V2 if server_side => self.disconnect(DisconnectKind::InsufficientState),
            Generation::V2 => {
                if let Some(sub) = st.subs.remove(channel) {
                    st.pending_cleanup.push((channel.to_string(), sub));
                    self.tick_soon();
                }
                self.push_unsubscribe(channel, UnsubscribeCode::INSUFFICIENT_STATE);
            }
        }
    }

    pub(crate) fn push_unsubscribe(&self, channel: &str, code: UnsubscribeCode) {
        let mut buf = Vec::with_capacity(96);
        let enc = crate::hub::encoder_for(self.generation(), self.encoding);
        enc.push(&mut buf, &Push::Unsubscribe { channel, code });
        metrics::sent(FrameType::PushUnsubscribe, buf.len());
        metrics::METRICS.server_unsubscribes.inc(code.code);
        self.enqueue(Bytes::from(buf));
    }

    /// Fan-out entry point for join/leave.
    pub(crate) fn deliver_join_leave(
        &self,
        channel: &str,
        prepared: &PreparedPush<'_>,
        frame_type: FrameType,
    ) {
        let st = self.state.lock();
        if let Some(sub) = st.subs.get(channel) {
            if sub.push_join_leave && matches!(sub.status, SubStatus::Subscribed) {
                let b = prepared.bytes(self.generation(), self.encoding);
                metrics::sent(frame_type, b.len());
                self.enqueue(b);
            }
        }
    }
}
