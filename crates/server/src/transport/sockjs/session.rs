//! The SockJS session registry (TRANSPORTS.md §1.4 "Session lifecycle"): a SockJS session is
//! one rotor [`Session`] owned and driven by one task, reached by its id from the requests of
//! the HTTP sub-transports.
//!
//! * A receiving request (xhr, xhr_streaming, eventsource, htmlfile, jsonp) attaches itself as
//!   the receiver: at most one at a time, a second gets `c[2010,"Another connection still
//!   open"]`. The first receiver of a new session gets `o`; messages queued while no receiver
//!   was attached go out as one `a[...]`; a polling receiver ends after one frame, a streaming
//!   one after `streaming_limit` bytes.
//! * `h` heartbeats run every `heartbeat_delay` only while a receiver is attached.
//! * Without a receiver for `disconnect_delay` the session (and its client) is closed; a
//!   receiver that goes away before its answer is complete closes it at once.
//! * A closed session answers every later receiver with its `c` frame for `disconnect_delay`,
//!   then its id is forgotten.
//!
//! Memory is bounded: what the session queues while no receiver is attached is counted against
//! `client_queue_max_size` (the client is closed as slow past it), the control channel and the
//! receiver channels hold a few items, and the registry holds at most [`MAX_SESSIONS`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rotor_core::writer::WriterStep;
use rotor_core::Session;
use rotor_protocol::{DisconnectKind, Encoding, Generation};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::frames::{self, Wrap};
use crate::app::SharedState;

/// Most SockJS sessions one process holds; past it new sessions are refused (503).
pub(crate) const MAX_SESSIONS: usize = 200_000;

/// The frame of a session that timed out without a receiver or whose task is gone.
const GO_AWAY: (u16, &str) = (3000, "Go away!");

/// The frame of a session whose receiver went away mid-answer.
const INTERRUPTED: (u16, &str) = (1002, "Connection interrupted");

/// A receiving request's end of the session: the session writes wire-ready chunks into `tx`;
/// dropping it ends the response.
pub(crate) struct Receiver {
    pub tx: mpsc::Sender<Bytes>,
    pub wrap: Wrap,
    /// Streaming receivers stay attached after a frame; polling ones end.
    pub streaming: bool,
}

impl Receiver {
    /// A receiver and the stream its response body reads.
    pub(crate) fn new(wrap: Wrap, streaming: bool) -> (Self, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(4);
        (
            Self {
                tx,
                wrap,
                streaming,
            },
            rx,
        )
    }

    /// Answers with one frame and ends (the receiver was not attached).
    pub(crate) fn answer(self, frame: &str) {
        let _ = self.tx.try_send(self.wrap.one(frame));
    }
}

enum Control {
    Attach(Receiver),
    /// Client messages (each one client frame); `done` says whether the session was open.
    Send {
        messages: Vec<String>,
        done: oneshot::Sender<bool>,
    },
}

/// The registry's handle on a session task.
struct Entry {
    ctl: mpsc::Sender<Control>,
}

/// Why an `xhr_send`/`jsonp_send` was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// No such session (or it is closed): 404.
    NotFound,
}

/// Every SockJS session of this process, by id.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<Arc<str>, Arc<Entry>>>,
}

impl Registry {
    /// Attaches `receiver` to session `id`, creating the session (with the generation
    /// `forced`) when the id is unknown. Returns false when the registry is full (the receiver
    /// has been dropped).
    pub(crate) async fn receive(
        self: &Arc<Self>,
        state: &SharedState,
        id: &str,
        forced: Option<Generation>,
        headers: &axum::http::HeaderMap,
        receiver: Receiver,
    ) -> bool {
        let entry = {
            let mut map = self.sessions.lock();
            match map.get(id) {
                Some(e) => e.clone(),
                None => {
                    // A new session is a new connection: the node limits apply.
                    if map.len() >= MAX_SESSIONS || state.limits.admit(&state.connections).is_err()
                    {
                        return false;
                    }
                    let id: Arc<str> = Arc::from(id);
                    let (ctl, rx) = mpsc::channel(8);
                    let entry = Arc::new(Entry { ctl });
                    map.insert(id.clone(), entry.clone());
                    let session = state.node.new_session_on(
                        &rotor_core::transport::SOCKJS,
                        forced,
                        Encoding::Json,
                    );
                    if state.node.backend().is_some() {
                        let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
                        session.set_transport("sockjs", pairs);
                    }
                    let task = Task::new(state.clone(), self.clone(), id, entry.clone(), session);
                    tokio::spawn(task.run(rx));
                    entry
                }
            }
        };
        if let Err(mpsc::error::SendError(Control::Attach(r))) =
            entry.ctl.send(Control::Attach(receiver)).await
        {
            // The task ended between the lookup and now.
            r.answer(&frames::close(GO_AWAY.0, GO_AWAY.1));
        }
        true
    }

    /// Delivers client messages to session `id`.
    pub(crate) async fn send(&self, id: &str, messages: Vec<String>) -> Result<(), SendError> {
        let entry = self.sessions.lock().get(id).cloned();
        let entry = entry.ok_or(SendError::NotFound)?;
        let (done, rx) = oneshot::channel();
        if entry
            .ctl
            .send(Control::Send { messages, done })
            .await
            .is_err()
        {
            return Err(SendError::NotFound);
        }
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(SendError::NotFound),
        }
    }

    fn forget(&self, id: &str, entry: &Arc<Entry>) {
        let mut map = self.sessions.lock();
        if map.get(id).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(id);
        }
    }
}

/// The receiver attached now and what it has been sent.
struct Attached {
    r: Receiver,
    sent: usize,
}

/// One session's task state.
struct Task {
    state: SharedState,
    registry: Arc<Registry>,
    id: Arc<str>,
    entry: Arc<Entry>,
    session: Option<Session>,
    /// Messages queued by the session and not yet sent (no receiver was attached).
    pending: Vec<Bytes>,
    pending_bytes: usize,
    /// Whether `o` has been sent.
    opened: bool,
    /// A frame could not be written because the receiver's response was already gone: the
    /// client left mid-answer (as `receiver_gone` finds when it is waiting).
    lost: bool,
    /// The `c` frame once the session is closed.
    closed: Option<String>,
    receiver: Option<Attached>,
    /// When the last receiver left (or the session was created).
    detached_at: Instant,
    next_heartbeat: Instant,
}

impl Task {
    fn new(
        state: SharedState,
        registry: Arc<Registry>,
        id: Arc<str>,
        entry: Arc<Entry>,
        session: Session,
    ) -> Self {
        let now = Instant::now();
        Self {
            state,
            registry,
            id,
            entry,
            session: Some(session),
            pending: Vec::new(),
            pending_bytes: 0,
            opened: false,
            lost: false,
            closed: None,
            receiver: None,
            detached_at: now,
            next_heartbeat: now,
        }
    }

    async fn run(mut self, mut ctl: mpsc::Receiver<Control>) {
        let _tracked = self.state.connections.token();
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let shared = session.shared().clone();
        let node = self.state.node.clone();
        let shutdown = node.shutdown_token();
        let cfg = self.state.settings.transports.sockjs.clone();
        let queue_max = node.config().client_queue_max_size;
        let stale_at = Instant::now() + node.config().client_stale_close_delay;
        let mut stale_checked = false;
        let mut shutting_down = false;
        if self.state.draining.is_cancelled() || shutdown.is_cancelled() {
            shared.disconnect(DisconnectKind::Shutdown);
            shutting_down = true;
        }
        let mut batch: Vec<Bytes> = Vec::new();
        // Set once closed: the end of the replay window.
        let mut forget_at: Option<Instant> = None;
        loop {
            let attached = self.receiver.is_some();
            let heartbeat = !cfg.heartbeat_delay.is_zero() && attached && self.closed.is_none();
            let detached_deadline = self.detached_at + cfg.disconnect_delay;
            tokio::select! {
                biased;
                step = shared.queue.next(&mut batch), if self.closed.is_none() => {
                    match step {
                        WriterStep::Ping => {}
                        WriterStep::Data => {
                            tokio::task::yield_now().await;
                            shared.queue.take_more(&mut batch);
                            self.pending_bytes += batch.iter().map(Bytes::len).sum::<usize>();
                            self.pending.append(&mut batch);
                            if self.receiver.is_none() && self.pending_bytes > queue_max {
                                self.pending.clear();
                                self.pending_bytes = 0;
                                shared.disconnect(DisconnectKind::Slow);
                            }
                        }
                        WriterStep::Close(frame) => {
                            self.pending_bytes += batch.iter().map(Bytes::len).sum::<usize>();
                            self.pending.append(&mut batch);
                            let c = match frame {
                                Some(f) => frames::close(f.code, &f.reason),
                                None => frames::close(GO_AWAY.0, GO_AWAY.1),
                            };
                            self.close(c).await;
                            forget_at = Some(Instant::now() + cfg.disconnect_delay);
                        }
                    }
                    self.flush(&shared).await;
                }
                _ = receiver_gone(&self.receiver) => {
                    // The client went away before its answer was complete.
                    self.receiver = None;
                    self.detached_at = Instant::now();
                    if self.closed.is_none() {
                        shared.drop_transport();
                        self.close(frames::close(INTERRUPTED.0, INTERRUPTED.1)).await;
                        forget_at = Some(Instant::now() + cfg.disconnect_delay);
                    }
                }
                msg = ctl.recv() => {
                    match msg {
                        None => break,
                        Some(Control::Attach(r)) => {
                            if self.receiver.is_some() {
                                r.answer(&frames::another_connection());
                            } else {
                                self.receiver = Some(Attached { r, sent: 0 });
                                self.next_heartbeat = Instant::now() + cfg.heartbeat_delay;
                                self.flush(&shared).await;
                            }
                        }
                        Some(Control::Send { messages, done }) => {
                            let open = self.closed.is_none();
                            if open {
                                if let Some(s) = self.session.as_mut() {
                                    for m in messages {
                                        if !Box::pin(s.handle_frame(m.as_bytes())).await {
                                            break;
                                        }
                                    }
                                }
                            }
                            let _ = done.send(open);
                        }
                    }
                }
                _ = tokio::time::sleep_until(self.next_heartbeat), if heartbeat => {
                    self.next_heartbeat = Instant::now() + cfg.heartbeat_delay;
                    self.send_frame(frames::HEARTBEAT).await;
                }
                _ = tokio::time::sleep_until(detached_deadline), if !attached && self.closed.is_none() => {
                    // No receiver for disconnect_delay: the client is gone, and so is the id.
                    shared.drop_transport();
                    self.close(frames::close(GO_AWAY.0, GO_AWAY.1)).await;
                    break;
                }
                _ = sleep_until_opt(forget_at), if forget_at.is_some() => break,
                _ = shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    shared.disconnect(DisconnectKind::Shutdown);
                }
                _ = tokio::time::sleep_until(stale_at), if !stale_checked => {
                    stale_checked = true;
                    if self.session.as_ref().is_some_and(|s| !s.is_connected()) {
                        shared.disconnect(DisconnectKind::Stale);
                    }
                }
            }
            if std::mem::take(&mut self.lost) && self.closed.is_none() {
                // The same as a receiver found gone while waiting.
                shared.drop_transport();
                self.close(frames::close(INTERRUPTED.0, INTERRUPTED.1))
                    .await;
                forget_at = Some(Instant::now() + cfg.disconnect_delay);
            }
            if shutting_down && self.closed.is_some() && self.receiver.is_none() {
                // No replay window while the process stops.
                break;
            }
        }
        self.registry.forget(&self.id, &self.entry);
        drop(ctl);
        if let Some(s) = self.session.take() {
            s.close().await;
        }
    }

    /// Marks the session closed with frame `c` and ends the rotor session.
    async fn close(&mut self, c: String) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(c);
        if let Some(s) = self.session.take() {
            s.close().await;
        }
    }

    /// Sends the attached receiver what is due: `o` first, then pending messages as one
    /// `a[...]`, then the `c` frame once closed.
    async fn flush(&mut self, shared: &rotor_core::ClientShared) {
        if self.receiver.is_none() {
            return;
        }
        if !self.opened {
            self.opened = true;
            if !self.send_frame(frames::OPEN).await {
                return;
            }
        }
        if !self.pending.is_empty() {
            let frame = data_frame(&self.pending, shared.generation());
            self.pending.clear();
            self.pending_bytes = 0;
            if !self.send_frame(&frame).await {
                return;
            }
        }
        if let Some(c) = self.closed.clone() {
            self.send_frame(&c).await;
            // The close ends every receiver.
            self.detach();
        }
    }

    /// Writes one frame to the receiver; false when the receiver is no longer attached (it
    /// ended after this frame, or went away).
    async fn send_frame(&mut self, frame: &str) -> bool {
        let Some(a) = self.receiver.as_mut() else {
            return false;
        };
        let mut out = BytesMut::with_capacity(frame.len() + 16);
        a.r.wrap.put(frame, &mut out);
        a.sent += out.len();
        let timeout = self
            .state
            .node
            .config()
            .client_message_write_timeout
            .max(Duration::from_millis(100));
        let sent = tokio::time::timeout(timeout, a.r.tx.send(out.freeze())).await;
        let ok = matches!(sent, Ok(Ok(())));
        let limit = self.state.settings.transports.sockjs.streaming_limit;
        if let Ok(Err(_)) = sent {
            // The response is gone (the client left before this frame): interrupted.
            self.lost = true;
            self.detach();
            return false;
        }
        if !ok {
            // A receiver that does not read: it is dropped; the session waits for another.
            self.detach();
            return false;
        }
        if !a.r.streaming || a.sent >= limit {
            self.detach();
            return false;
        }
        true
    }

    fn detach(&mut self) {
        self.receiver = None;
        self.detached_at = Instant::now();
    }
}

/// Resolves when the attached receiver's response went away; never without one.
async fn receiver_gone(r: &Option<Attached>) {
    match r {
        Some(a) => a.r.tx.closed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The `a[...]` frame of queued session output: everything queued is one SockJS message. v1
/// keeps each reply's trailing `\n`; v2 (Centrifugo 5 over SockJS) drops the last one.
pub(crate) fn data_frame(batch: &[Bytes], generation: Generation) -> String {
    let total = batch.iter().map(Bytes::len).sum();
    let mut joined = Vec::with_capacity(total);
    for b in batch {
        joined.extend_from_slice(b);
    }
    if generation == Generation::V2 && joined.last() == Some(&b'\n') {
        joined.pop();
    }
    frames::array([String::from_utf8_lossy(&joined).as_ref()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_per_generation() {
        let batch = [
            Bytes::from_static(b"{\"id\":1}\n"),
            Bytes::from_static(b"{\"id\":2}\n"),
        ];
        assert_eq!(
            data_frame(&batch, Generation::V1),
            r#"a["{\"id\":1}\n{\"id\":2}\n"]"#
        );
        assert_eq!(
            data_frame(&batch, Generation::V2),
            r#"a["{\"id\":1}\n{\"id\":2}"]"#
        );
    }
}
