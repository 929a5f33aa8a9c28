//! Bidirectional emulation (TRANSPORTS.md §2.4, §2.8): the commands of an HTTP-streaming or SSE
//! connection arrive as separate `/emulation` requests, which any node may receive.
//!
//! The connection's stream task registers an [`EmulationInbox`] under its session id and feeds
//! what arrives there to its session, one frame at a time, in order. [`Node::emulate`] delivers
//! a request's data: to the local inbox when the request names this node, otherwise through the
//! broker's control channel to the node that holds the session, which answers once the frame
//! was handled, so the `/emulation` request ends (204) after its commands ran, wherever they ran.
//!
//! Bounded: each inbox holds at most [`INBOX_CAPACITY`] frames (a sender waits, up to the
//! deadline), and a forwarded request waits at most [`FORWARD_TIMEOUT`] for its answer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::control::ControlMessage;
use crate::node::Node;

/// Frames waiting for one session.
pub const INBOX_CAPACITY: usize = 32;

/// How long an emulation request waits for its frame to be handled (locally or on another node).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// One `/emulation` request's data for a session: handled as one inbound frame; `done` is
/// answered after.
#[derive(Debug)]
pub struct EmulationFrame {
    pub data: Bytes,
    pub done: oneshot::Sender<()>,
}

/// Why an emulation request could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmulationError {
    /// The request names a node that is not alive (HTTP 404).
    #[error("unknown node")]
    UnknownNode,
    /// The node was not reached or did not answer in time (HTTP 500).
    #[error("emulation request not delivered")]
    Failed,
}

/// The sessions of this node that accept emulation requests, and forwarded requests waiting for
/// their answer.
#[derive(Default)]
pub(crate) struct EmulationRegistry {
    sessions: Mutex<HashMap<Arc<str>, Arc<Queue>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_id: AtomicU64,
}

/// One session's frames. A plain deque with two wake-ups rather than a channel: an idle
/// emulation connection should not hold a channel's preallocated block.
#[derive(Default)]
struct Queue {
    /// `None` once the inbox is gone.
    frames: Mutex<Option<VecDeque<EmulationFrame>>>,
    /// A frame arrived (one reader).
    arrived: Notify,
    /// A frame was taken (senders waiting for room).
    room: Notify,
}

/// A session's inbox; dropping it unregisters the session.
pub struct EmulationInbox {
    queue: Arc<Queue>,
    session: Arc<str>,
    registry: Arc<EmulationRegistry>,
}

impl EmulationInbox {
    /// The next frame for the session.
    pub async fn recv(&mut self) -> Option<EmulationFrame> {
        loop {
            if let Some(f) = self.queue.frames.lock().as_mut()?.pop_front() {
                self.queue.room.notify_one();
                return Some(f);
            }
            // A frame pushed since the check left a permit: no wake-up is lost.
            self.queue.arrived.notified().await;
        }
    }
}

impl Drop for EmulationInbox {
    fn drop(&mut self) {
        self.registry.sessions.lock().remove(&self.session);
        // Frames still queued are dropped: their senders see the session gone.
        let left = self.queue.frames.lock().take();
        drop(left);
        self.queue.room.notify_waiters();
    }
}

impl EmulationRegistry {
    /// Hands `data` to the local session `session`; `Ok` also when there is no such session
    /// (Centrifugo answers 204 then: the reply codes are not the request's business).
    async fn deliver(&self, session: &str, data: Bytes) -> Result<(), EmulationError> {
        let Some(queue) = self.sessions.lock().get(session).cloned() else {
            return Ok(());
        };
        let (done, handled) = oneshot::channel();
        let mut frame = Some(EmulationFrame { data, done });
        let wait = async {
            while let Some(f) = frame.take() {
                let room = queue.room.notified();
                {
                    let mut g = queue.frames.lock();
                    let Some(frames) = g.as_mut() else {
                        return; // the session ended meanwhile
                    };
                    if frames.len() < INBOX_CAPACITY {
                        frames.push_back(f);
                        drop(g);
                        queue.arrived.notify_one();
                        break;
                    }
                    frame = Some(f);
                }
                room.await;
            }
            let _ = handled.await;
        };
        tokio::time::timeout(FORWARD_TIMEOUT, wait)
            .await
            .map_err(|_| EmulationError::Failed)
    }
}

impl Node {
    /// Registers `session` (a connection's session id) for emulation requests.
    pub fn emulation_inbox(&self, session: &str) -> EmulationInbox {
        let queue = Arc::new(Queue {
            frames: Mutex::new(Some(VecDeque::new())),
            ..Queue::default()
        });
        let session: Arc<str> = Arc::from(session);
        let registry = self.emulation_registry().clone();
        registry
            .sessions
            .lock()
            .insert(session.clone(), queue.clone());
        EmulationInbox {
            queue,
            session,
            registry,
        }
    }

    /// Delivers one emulation request's `data` to session `session` on node `node` and waits
    /// until it was handled there.
    pub async fn emulate(
        &self,
        node: &str,
        session: &str,
        data: Bytes,
    ) -> Result<(), EmulationError> {
        let registry = self.emulation_registry().clone();
        if node == self.uid() {
            return registry.deliver(session, data).await;
        }
        if !self.is_live_node(node) {
            return Err(EmulationError::UnknownNode);
        }
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        registry.pending.lock().insert(id, tx);
        let msg = ControlMessage::Emulation {
            from: self.uid().to_string(),
            to: node.to_string(),
            id,
            session: session.to_string(),
            data: base64::engine::general_purpose::STANDARD.encode(&data),
        };
        let sent = self.broker().publish_control(msg.encode()).await;
        let result = match sent {
            Ok(()) => match tokio::time::timeout(FORWARD_TIMEOUT, rx).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(EmulationError::Failed),
            },
            Err(e) => {
                tracing::warn!(error = %e, "emulation request not forwarded");
                Err(EmulationError::Failed)
            }
        };
        registry.pending.lock().remove(&id);
        result
    }

    /// A forwarded emulation request for this node: handled, then answered.
    pub(crate) fn handle_emulation(&self, from: String, id: u64, session: String, data: String) {
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(data) else {
            tracing::warn!(%from, "undecodable emulation request");
            return;
        };
        let node = self.clone();
        tokio::spawn(async move {
            let registry = node.emulation_registry().clone();
            if registry.deliver(&session, Bytes::from(data)).await.is_err() {
                return; // the requester times out with 500
            }
            let done = ControlMessage::EmulationDone { to: from, id };
            if let Err(e) = node.broker().publish_control(done.encode()).await {
                tracing::warn!(error = %e, "emulation answer not sent");
            }
        });
    }

    /// The answer to one of this node's forwarded requests.
    pub(crate) fn handle_emulation_done(&self, id: u64) {
        if let Some(tx) = self.emulation_registry().pending.lock().remove(&id) {
            let _ = tx.send(());
        }
    }
}
