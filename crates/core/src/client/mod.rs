//! One connection: its shared state (reachable from the hub's fan-out, timers and the server
//! API) and the [`Session`] that the transport drives with inbound frames.
//!
//! Commands of one connection run one at a time in the transport's reader task. State lives
//! behind a short, never-awaited lock; engine calls happen outside it. The replies to the
//! commands of one frame are merged and queued together, except where a subscription's buffered
//! publications must follow its reply.

mod commands;
mod connect;
mod deliver;
mod delta;
mod proxy;
mod recovery;
mod subscribe;
mod tick;

pub(crate) use delta::DeltaForms;
pub(crate) use subscribe::apply_overrides;
pub use tick::Gaps;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use rotor_protocol::codec::{decode_command, decode_frame};
use rotor_protocol::{
    ClientInfo, CommandKind, DisconnectKind, Encoding, ErrorCode, Generation, Publication, Push,
    ReplyBody,
};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, FrameType};
use crate::node::Node;
use crate::transport::TransportInfo;
use crate::writer::{CloseFrame, WriterQueue};

pub(crate) use tick::TickWork;

/// How a command fails: an error reply, or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CmdError {
    Error(ErrorCode),
    Disconnect(DisconnectKind),
    /// A close the application backend chose: its code, reason and (v1) reconnect advice.
    Close {
        code: u16,
        reason: String,
        reconnect: bool,
    },
}

impl From<ErrorCode> for CmdError {
    fn from(e: ErrorCode) -> Self {
        CmdError::Error(e)
    }
}

impl From<DisconnectKind> for CmdError {
    fn from(d: DisconnectKind) -> Self {
        CmdError::Disconnect(d)
    }
}

pub(crate) type CmdResult = Result<Option<ReplyBody>, CmdError>;

/// Where a subscription stands.
#[derive(Debug)]
pub(crate) enum SubStatus {
    /// Added to the hub, reply not sent yet: live publications wait here so none is lost or
    /// delivered before the reply.
    Subscribing(Vec<Publication>),
    Subscribed,
}

/// One channel subscription of a connection.
#[derive(Debug)]
pub(crate) struct SubState {
    pub status: SubStatus,
    pub chan_info: Option<Bytes>,
    /// Unix seconds; `None` = never expires.
    pub expire_at: Option<i64>,
    /// This connection receives join/leave pushes (v2 asks for them; v1 gets them when on).
    pub push_join_leave: bool,
    /// The channel's options say to publish join/leave for this subscriber.
    pub emit_join_leave: bool,
    pub presence: bool,
    /// Live publications must arrive without gaps: offsets are checked and a gap loses the
    /// position (recoverable subscriptions, and positioned ones: `force_positioning`, or asked
    /// for and allowed).
    pub positioned: bool,
    /// Last offset delivered (positioned subscriptions).
    pub offset: u64,
    /// Stream epoch the subscription follows (positioned subscriptions).
    pub epoch: String,
    /// Consecutive position checks that found the stream ahead of this subscription.
    pub position_failures: u8,
    /// The backend proxy that refreshes this subscription at its expiry (6.x `sub_refresh`);
    /// `None`: it expires (or the client refreshes it with a token).
    pub refresh_proxy: Option<Arc<str>>,
    /// The server chose it (connect answer, token `subs`, server API `subscribe`): when it
    /// expires or loses its position the connection closes (Centrifuge unsubscribes only
    /// client-side subscriptions).
    pub server_side: bool,
    /// The client's tags filter (`tf`, `allow_tags_filter` channels): publications it does not
    /// match are not sent, but still advance the position.
    pub filter: Option<Arc<rotor_protocol::filter::FilterNode>>,
    /// Fossil deltas were negotiated (`delta: "fossil"` on an `allowed_delta_types` channel):
    /// on JSON every publication's data goes as a JSON string, full or patch.
    pub delta: bool,
    /// The client holds the previous publication of the stream, so the next one marked for
    /// delta delivery may go as a patch (Centrifuge's `flagDeltaAllowed`): set by the first
    /// publication delivered, or by a recovery that returned at least one.
    pub delta_ready: bool,
}

/// Per-connection state only a backend uses.
#[derive(Debug, Default)]
pub(crate) struct BackendConn {
    /// Connection meta from the backend (never sent to the client).
    pub meta: Option<Bytes>,
    /// v2 connect-frame headers the backend wants (header emulation).
    pub emulated_headers: Option<Arc<[(String, String)]>>,
}

/// Mutable per-connection state.
#[derive(Debug)]
pub(crate) struct ClientState {
    pub connected: bool,
    pub closed: bool,
    pub user: String,
    pub conn_info: Option<Bytes>,
    /// Connection expiry, unix seconds.
    pub exp: Option<i64>,
    /// The server refreshes this connection through the backend at `exp` (refresh proxy).
    pub server_refresh: bool,
    /// What only a backend uses (boxed: a connection without a backend pays one pointer).
    pub backend: Option<Box<BackendConn>>,
    pub subs: HashMap<String, SubState>,
    /// Subscriptions dropped from inside the fan-out, to be cleaned up by the next tick.
    pub pending_cleanup: Vec<(String, SubState)>,
    pub last_seen: Instant,
    pub next_ping: Option<Instant>,
    pub pong_deadline: Option<Instant>,
    pub next_presence: Option<Instant>,
    pub next_position_check: Option<Instant>,
}

/// The part of a connection that others reach: hub fan-out, timers, server API.
pub struct ClientShared {
    id: Arc<str>,
    generation: OnceLock<Generation>,
    encoding: Encoding,
    pub(crate) state: Mutex<ClientState>,
    /// Outbound messages; the transport's writer task drains it.
    pub queue: WriterQueue,
    /// Cancelled when the connection must stop reading (closed by the server or the peer).
    pub cancel: CancellationToken,
    /// When the housekeeping tick next needs to look at this connection (see `tick`).
    pub(crate) next_due: std::sync::atomic::AtomicU64,
    /// What the transport told about itself for the backend (set once, only with a backend).
    transport: OnceLock<Box<TransportMeta>>,
    /// The transport's shape and abilities.
    transport_info: &'static TransportInfo,
    /// Emulation and unidirectional transports: the session id sent in the connect result.
    session_id: Option<Arc<str>>,
}

/// The transport request as the backend sees it: its name and the headers it asked for.
#[derive(Debug, Default)]
struct TransportMeta {
    name: &'static str,
    headers: Arc<[(String, String)]>,
}

impl std::fmt::Debug for ClientShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientShared")
            .field("id", &self.id)
            .finish()
    }
}

/// A random UUIDv4 for a new connection, from the thread-local CSPRNG: asking the kernel for
/// entropy on every connect (what `Uuid::new_v4` does) is a syscall per connection under churn.
fn new_client_id() -> Arc<str> {
    let id = uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>()).into_uuid();
    Arc::from(
        &*id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )
}

impl ClientShared {
    fn new(
        queue_max: usize,
        transport_info: &'static TransportInfo,
        forced: Option<Generation>,
        encoding: Encoding,
    ) -> Self {
        let generation = OnceLock::new();
        if let Some(g) = forced {
            let _ = generation.set(g);
        }
        Self {
            id: new_client_id(),
            generation,
            encoding,
            state: Mutex::new(ClientState {
                connected: false,
                closed: false,
                user: String::new(),
                conn_info: None,
                exp: None,
                server_refresh: false,
                backend: None,
                subs: HashMap::new(),
                pending_cleanup: Vec::new(),
                last_seen: Instant::now(),
                next_ping: None,
                pong_deadline: None,
                next_presence: None,
                next_position_check: None,
            }),
            queue: WriterQueue::new(queue_max),
            cancel: CancellationToken::new(),
            next_due: std::sync::atomic::AtomicU64::new(0),
            transport: OnceLock::new(),
            transport_info,
            session_id: transport_info.has_session().then(new_client_id),
        }
    }

    /// The transport this connection came by.
    pub fn transport(&self) -> &'static TransportInfo {
        self.transport_info
    }

    /// The session id of an emulation or unidirectional connection (`None` on WebSocket and
    /// SockJS).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The server-generated client ID (UUIDv4).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn id_arc(&self) -> Arc<str> {
        self.id.clone()
    }

    /// The connection's generation; v1 until its first command says otherwise.
    pub fn generation(&self) -> Generation {
        self.generation.get().copied().unwrap_or(Generation::V1)
    }

    /// The connection's wire encoding, fixed by the transport at the handshake.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn user(&self) -> String {
        self.state.lock().user.clone()
    }

    /// The channels this connection is subscribed to, sorted (for the admin UI).
    pub fn channels(&self) -> Vec<String> {
        let mut list: Vec<String> = self.state.lock().subs.keys().cloned().collect();
        list.sort();
        list
    }

    /// This connection as seen in `channel` (with its channel info).
    pub(crate) fn info_in(&self, st: &ClientState, channel: &str) -> ClientInfo {
        ClientInfo {
            user: st.user.clone(),
            client: self.id.to_string(),
            conn_info: st.conn_info.clone(),
            chan_info: st.subs.get(channel).and_then(|s| s.chan_info.clone()),
        }
    }

    fn close_frame(&self, kind: DisconnectKind) -> CloseFrame {
        let g = self.generation();
        let d = kind.for_generation(g);
        CloseFrame {
            code: d.code,
            reason: d.close_text(g),
        }
    }

    /// Queues an encoded message; overflow closes the connection as slow.
    pub(crate) fn enqueue(&self, msg: Bytes) {
        if self
            .queue
            .push(msg, || self.close_frame(DisconnectKind::Slow))
            .is_err()
        {
            // The queue overflowed (once per connection): counted like any server disconnect.
            let code = self.close_frame(DisconnectKind::Slow).code;
            metrics::METRICS.server_disconnects.inc(u32::from(code));
            self.cancel.cancel();
        }
    }

    /// Closes the connection with `kind`'s code after what is queued has been written.
    pub fn disconnect(&self, kind: DisconnectKind) {
        let frame = self.close_frame(kind);
        let code = frame.code;
        if self.queue.close(Some(frame)) {
            metrics::METRICS.server_disconnects.inc(u32::from(code));
        }
    }

    /// Closes with a code and reason the application backend chose. v1 clients get the reason
    /// as JSON advice with `reconnect`; v2 clients read plain text and decide from the code.
    pub(crate) fn disconnect_with(&self, code: u16, reason: &str, reconnect: bool) {
        let reason = match self.generation() {
            Generation::V1 => {
                serde_json::json!({ "reason": reason, "reconnect": reconnect }).to_string()
            }
            Generation::V2 => reason.to_string(),
        };
        let frame = CloseFrame {
            code,
            reason: truncate_close_reason(reason),
        };
        if self.queue.close(Some(frame)) {
            metrics::METRICS.server_disconnects.inc(u32::from(code));
        }
    }

    /// Closes without a close frame (the peer sees an abnormal closure and reconnects).
    pub fn drop_transport(&self) {
        self.queue.close(None);
    }

    /// Runs one transport write bounded by `timeout` (the configured write timeout): true
    /// when it completed. A write that fails or outlasts `timeout` ends the connection as a
    /// write error ([`DisconnectKind::WriteError`], 3009), counted once like every server
    /// disconnect, unless a close was already decided (a queue overflow is counted as slow,
    /// 3008, when it happens). No close frame is attempted: the peer is not reading. Every
    /// transport's writer goes through here, so a stalled client is accounted the same on
    /// each.
    pub async fn write_within<T, E>(
        &self,
        timeout: std::time::Duration,
        write: impl std::future::Future<Output = Result<T, E>>,
    ) -> bool {
        if matches!(tokio::time::timeout(timeout, write).await, Ok(Ok(_))) {
            return true;
        }
        self.write_failed();
        false
    }

    /// The transport could not write: see [`ClientShared::write_within`].
    pub fn write_failed(&self) {
        if self.queue.close(None) {
            let code = self.close_frame(DisconnectKind::WriteError).code;
            metrics::METRICS.server_disconnects.inc(u32::from(code));
        }
        self.cancel.cancel();
    }
}

/// The transport's handle on a connection: feed it frames, then [`Session::close`] it.
pub struct Session {
    node: Node,
    shared: Arc<ClientShared>,
    out: Vec<u8>,
    /// Subscriptions whose reply is being sent; activated once it is queued.
    to_activate: Vec<String>,
    /// Rate-limit state of this connection (created on first use, only with limits).
    rate: Option<Box<crate::ratelimit::ConnLimiter>>,
}

impl Session {
    pub(crate) fn new(
        node: Node,
        transport: &'static TransportInfo,
        forced: Option<Generation>,
        encoding: Encoding,
    ) -> Self {
        metrics::METRICS.transport_connects[transport.id].inc();
        let shared = Arc::new(ClientShared::new(
            node.config().client_queue_max_size,
            transport,
            forced,
            encoding,
        ));
        Self {
            node,
            shared,
            out: Vec::new(),
            to_activate: Vec::new(),
            rate: None,
        }
    }

    pub fn shared(&self) -> &Arc<ClientShared> {
        &self.shared
    }

    /// Tells the backend which transport this is (`websocket`, `sockjs`, ...) and hands it the
    /// request headers it wants (`(name, value)`; names are compared lower-cased). A no-op
    /// without a backend, so a transport may call it unconditionally, but it should skip
    /// collecting headers when [`Node::backend`] is `None`.
    pub fn set_transport<'a>(
        &self,
        name: &'static str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) {
        let Some(backend) = self.node.backend() else {
            return;
        };
        let mut kept = Vec::new();
        for (k, v) in headers {
            let k = k.to_ascii_lowercase();
            if backend.wants_header(&k) {
                kept.push((k, String::from_utf8_lossy(v).into_owned()));
            }
        }
        let _ = self.shared.transport.set(Box::new(TransportMeta {
            name,
            headers: Arc::from(kept),
        }));
    }

    /// Whether the connect command has succeeded.
    pub fn is_connected(&self) -> bool {
        self.shared.state.lock().connected
    }

    /// Records inbound activity that is not a frame (a WebSocket pong).
    pub fn touch(&self) {
        self.shared.state.lock().last_seen = Instant::now();
    }

    /// Handles one inbound frame. Returns false once the connection is closing.
    pub async fn handle_frame(&mut self, frame: &[u8]) -> bool {
        self.touch();
        let mut any = false;
        for line in decode_frame(self.shared.encoding, frame) {
            any = true;
            let Ok(line) = line else {
                self.flush();
                self.disconnect(DisconnectKind::BadRequest);
                return false;
            };
            if !self.handle_command(line).await {
                self.flush();
                return false;
            }
        }
        self.flush();
        if !any {
            self.disconnect(DisconnectKind::BadRequest);
            return false;
        }
        true
    }

    /// Connects a unidirectional client with its bare connect request: on success the connect
    /// result goes out as the first push (then the server-side subscriptions' pushes follow);
    /// on failure the connection closes with the disconnect Centrifugo maps the error to
    /// (expired → 3005, permission denied → 3507, too many requests → 3013, anything else →
    /// 3004). `Err` carries the connect's error when it failed with one (not when it ended in
    /// a disconnect), for transports that answer it in HTTP (`connect_code_to_http_response`);
    /// the close frame is queued either way.
    pub async fn connect_unidirectional(
        &mut self,
        req: rotor_protocol::ConnectRequest,
    ) -> Result<(), Option<ErrorCode>> {
        let _ = self.shared.generation.set(Generation::V2);
        self.touch();
        metrics::received(FrameType::Connect, 0);
        let started = Instant::now();
        let result = self.connect(req).await;
        let m = &metrics::METRICS;
        m.command_duration[FrameType::Connect as usize].observe(started.elapsed());
        match result {
            Ok(Some(ReplyBody::Connect(r))) => {
                let enc = self
                    .node
                    .hub()
                    .encoder(Generation::V2, self.shared.encoding);
                enc.push(&mut self.out, &Push::Connect(&r));
                metrics::sent(FrameType::Connect, self.out.len());
                self.flush();
                for ch in std::mem::take(&mut self.to_activate) {
                    self.node.activate_subscription(&self.shared, &ch).await;
                }
                if self.node.config().user_personal_single_connection {
                    if let Err(kind) = self.enforce_single_connection().await {
                        self.disconnect(kind);
                        return Err(None);
                    }
                }
                Ok(())
            }
            Ok(_) => {
                self.disconnect(DisconnectKind::InternalError);
                Err(None)
            }
            Err(CmdError::Error(e)) => {
                m.reply_errors[FrameType::Connect as usize].inc(e.code);
                let (code, reason) = match e.code {
                    109 | 110 => (3005, "connection expired"),
                    103 => (3507, "permission denied"),
                    111 => (3013, "too many requests"),
                    _ => (3004, "internal server error"),
                };
                self.shared.disconnect_with(code, reason, code != 3507);
                self.shared.cancel.cancel();
                Err(Some(e))
            }
            Err(CmdError::Disconnect(kind)) => {
                self.disconnect(kind);
                Err(None)
            }
            Err(CmdError::Close {
                code,
                reason,
                reconnect,
            }) => {
                self.shared.disconnect_with(code, &reason, reconnect);
                self.shared.cancel.cancel();
                Err(None)
            }
        }
    }

    /// Closes the connection as a bad request (e.g. an undecodable transport message).
    pub fn reject_bad_request(&mut self) {
        self.flush();
        self.disconnect(DisconnectKind::BadRequest);
    }

    fn disconnect(&self, kind: DisconnectKind) {
        self.shared.disconnect(kind);
        self.shared.cancel.cancel();
    }

    /// Moves the merged replies of this frame to the writer.
    pub(crate) fn flush(&mut self) {
        if !self.out.is_empty() {
            let b = Bytes::copy_from_slice(&self.out);
            self.out.clear();
            self.shared.enqueue(b);
        }
    }

    async fn handle_command(&mut self, line: &[u8]) -> bool {
        let known = self.shared.generation.get().copied();
        let (generation, cmd) = match decode_command(self.shared.encoding, line, known) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(client = %self.shared.id, error = %e, "bad command");
                self.disconnect(DisconnectKind::BadRequest);
                return false;
            }
        };
        if known.is_none() {
            let _ = self.shared.generation.set(generation);
        }
        let connected = self.is_connected();
        let is_connect = matches!(cmd.kind, CommandKind::Connect(_));
        if connected == is_connect || (cmd.id == 0 && !cmd.kind.allows_zero_id()) {
            // First command must be connect, exactly once; only send and pong may omit the id.
            self.disconnect(DisconnectKind::BadRequest);
            return false;
        }
        let id = cmd.id;
        let frame_type = frame_type(&cmd.kind);
        metrics::received(frame_type, line.len());
        let started = Instant::now();
        let result = self.dispatch(cmd.kind).await;
        let m = &metrics::METRICS;
        m.command_duration[frame_type as usize].observe(started.elapsed());
        let enc = self.node.hub().encoder(generation, self.shared.encoding);
        let before = self.out.len();
        match result {
            Ok(Some(body)) => enc.reply(&mut self.out, id, &Ok(body)),
            Ok(None) => {}
            Err(CmdError::Error(e)) => {
                m.reply_errors[frame_type as usize].inc(e.code);
                let spent = self.error_budget_spent(e.code);
                enc.reply(&mut self.out, id, &Err(e));
                if spent {
                    self.flush();
                    self.shared.disconnect_with(3509, "too many errors", false);
                    self.shared.cancel.cancel();
                    return false;
                }
            }
            Err(CmdError::Disconnect(kind)) => {
                self.flush();
                self.disconnect(kind);
                return false;
            }
            Err(CmdError::Close {
                code,
                reason,
                reconnect,
            }) => {
                self.flush();
                self.shared.disconnect_with(code, &reason, reconnect);
                self.shared.cancel.cancel();
                return false;
            }
        }
        if self.out.len() > before {
            metrics::sent(frame_type, self.out.len() - before);
        }
        if !self.to_activate.is_empty() {
            // Buffered publications and joins must follow the reply.
            self.flush();
            for ch in std::mem::take(&mut self.to_activate) {
                self.node.activate_subscription(&self.shared, &ch).await;
            }
        }
        if is_connect && self.node.config().user_personal_single_connection && self.is_connected() {
            // After the reply, as Centrifugo's connect handler runs once its reply is written.
            self.flush();
            if let Err(kind) = self.enforce_single_connection().await {
                self.disconnect(kind);
                return false;
            }
        }
        true
    }

    async fn dispatch(&mut self, kind: CommandKind) -> CmdResult {
        if self.node.rate_limits().is_some() {
            self.rate_limit(&kind).await?;
        }
        match kind {
            CommandKind::Connect(req) => self.connect(req).await,
            CommandKind::Subscribe(req) => self.subscribe(req).await,
            CommandKind::Unsubscribe(req) => self.unsubscribe(req).await,
            CommandKind::Publish(req) => self.publish(req).await,
            CommandKind::Presence(req) => self.presence(req).await,
            CommandKind::PresenceStats(req) => self.presence_stats(req).await,
            CommandKind::History(req) => self.history(req).await,
            CommandKind::Ping => Ok(Some(ReplyBody::Ping)),
            CommandKind::Send(_) => self.send(),
            CommandKind::Rpc(req) => self.rpc(req).await,
            CommandKind::Refresh(req) => self.refresh(req).await,
            CommandKind::SubRefresh(req) => self.sub_refresh(req).await,
            CommandKind::Pong => self.pong(),
            CommandKind::Unknown(_) => Err(ErrorCode::METHOD_NOT_FOUND.into()),
        }
    }

    fn pong(&mut self) -> CmdResult {
        let mut st = self.shared.state.lock();
        let Some(deadline) = st.pong_deadline.take() else {
            // A pong nobody asked for.
            return Err(DisconnectKind::BadRequest.into());
        };
        // The ping went out `client_pong_timeout` before the deadline.
        let sent = deadline.checked_sub(self.node.config().client_pong_timeout);
        if let Some(sent) = sent {
            metrics::METRICS.ping_pong.observe(sent.elapsed());
        }
        Ok(None)
    }

    /// Ends the connection: drops its subscriptions (presence, leave) and unregisters it.
    /// Call once, after the transport stopped reading.
    pub async fn close(self) {
        self.shared.cancel.cancel();
        let (user, subs, info_base) = {
            let mut st = self.shared.state.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            let was_connected = std::mem::replace(&mut st.connected, false);
            let mut subs: Vec<(String, SubState)> = st.subs.drain().collect();
            subs.append(&mut st.pending_cleanup);
            let info = ClientInfo {
                user: st.user.clone(),
                client: self.shared.id.to_string(),
                conn_info: st.conn_info.clone(),
                chan_info: None,
            };
            if !was_connected {
                return;
            }
            (st.user.clone(), subs, info)
        };
        for (channel, sub) in subs {
            self.node
                .drop_subscription(&self.shared, &channel, &sub, &info_base)
                .await;
        }
        self.node.hub().remove_client(&self.shared, &user);
    }
}

/// A WebSocket close reason holds at most 123 bytes: longer ones are cut at a character boundary.
fn truncate_close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut end = MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// The metrics label of a command.
fn frame_type(kind: &CommandKind) -> FrameType {
    match kind {
        CommandKind::Connect(_) => FrameType::Connect,
        CommandKind::Subscribe(_) => FrameType::Subscribe,
        CommandKind::Unsubscribe(_) => FrameType::Unsubscribe,
        CommandKind::Publish(_) => FrameType::Publish,
        CommandKind::Presence(_) => FrameType::Presence,
        CommandKind::PresenceStats(_) => FrameType::PresenceStats,
        CommandKind::History(_) => FrameType::History,
        CommandKind::Ping => FrameType::Ping,
        CommandKind::Send(_) => FrameType::Send,
        CommandKind::Rpc(_) => FrameType::Rpc,
        CommandKind::Refresh(_) => FrameType::Refresh,
        CommandKind::SubRefresh(_) => FrameType::SubRefresh,
        CommandKind::Pong => FrameType::ClientPong,
        CommandKind::Unknown(_) => FrameType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::new_client_id;

    #[test]
    fn client_ids_are_distinct_uuid_v4() {
        let a = new_client_id();
        let b = new_client_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(
                id.len(),
                36,
                "hyphenated form, as Centrifugo sends it: {id}"
            );
        }
    }
}
