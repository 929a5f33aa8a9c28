//! The session's side of the backend seam: the connection context every backend call carries,
//! how a backend's refusal reaches the client (its code, in the client's generation), client
//! `rpc` and `send`, and the server-side refreshes (connection and subscription) that the
//! housekeeping tick hands to the node.

use std::sync::Arc;

use bytes::Bytes;
use rotor_protocol::command::RpcRequest;
use rotor_protocol::{DisconnectKind, Encoding, ErrorCode, Generation, ReplyBody, UnsubscribeCode};

use super::{ClientShared, CmdError, CmdResult, Session};
use crate::backend::{BackendError, ConnContext, RpcEvent, SubRefreshEvent};
use crate::node::{unix_now, Node};

/// How long a failed server-side refresh waits before it is tried again.
pub(crate) const REFRESH_RETRY_SECS: i64 = 60;

/// Centrifugo 6 caps an expiry a backend sets at one year from now.
const MAX_TTL_SECS: i64 = 365 * 24 * 3600;

impl From<BackendError> for CmdError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Error {
                code,
                message,
                temporary,
            } => CmdError::Error(ErrorCode::custom(code, message, temporary)),
            BackendError::Disconnect {
                code,
                reason,
                reconnect,
            } => CmdError::Close {
                code,
                reason,
                reconnect,
            },
            BackendError::Failed => CmdError::Error(ErrorCode::INTERNAL),
        }
    }
}

/// An expiry from the backend: 0 or absent = never; capped at a year ahead.
pub(crate) fn backend_expiry(expire_at: Option<i64>, now: i64) -> Option<i64> {
    expire_at
        .filter(|e| *e > 0)
        .map(|e| e.min(now + MAX_TTL_SECS))
}

impl ClientShared {
    /// What a backend call is told about this connection.
    pub(crate) fn conn_context(&self) -> ConnContext {
        let (user, meta, emulated) = {
            let st = self.state.lock();
            let b = st.backend.as_deref();
            (
                st.user.clone(),
                b.and_then(|b| b.meta.clone()),
                b.and_then(|b| b.emulated_headers.clone()),
            )
        };
        let (transport, headers) = match self.transport.get() {
            Some(t) => (t.name, t.headers.clone()),
            None => ("websocket", Arc::from(Vec::new())),
        };
        ConnContext {
            client: self.id_arc(),
            transport,
            encoding: self.encoding,
            generation: self.generation(),
            user,
            meta,
            headers,
            emulated_headers: emulated.unwrap_or_else(|| Arc::from(Vec::new())),
        }
    }

    /// A payload from the backend that goes into this client's frames: a JSON client can only
    /// carry JSON. Anything else is the backend's fault, answered as a failed call.
    pub(crate) fn checked_payload(&self, p: Option<Bytes>) -> Result<Option<Bytes>, CmdError> {
        match p {
            Some(b) if self.encoding == Encoding::Json => {
                if serde_json::from_slice::<&serde_json::value::RawValue>(&b).is_ok() {
                    Ok(Some(b))
                } else {
                    tracing::error!(client = %self.id(), "backend answered a payload that is not JSON for a JSON client");
                    Err(CmdError::Error(ErrorCode::INTERNAL))
                }
            }
            other => Ok(other),
        }
    }
}

impl Session {
    /// `rpc`: through the backend, or 108 when nothing handles it.
    pub(super) async fn rpc(&mut self, req: RpcRequest) -> CmdResult {
        let Some(backend) = self
            .node
            .backend()
            .filter(|b| b.capabilities().rpc)
            .cloned()
        else {
            return Err(ErrorCode::NOT_AVAILABLE.into());
        };
        let ctx = self.shared.conn_context();
        let ev = RpcEvent {
            method: req.method,
            data: req.data,
        };
        let data = backend.rpc(&ctx, ev).await?;
        let data = self.shared.checked_payload(data)?;
        Ok(Some(ReplyBody::Rpc(data)))
    }

    /// `send`: no handler in either generation. 2.x drops it; Centrifugo 6 closes the
    /// connection with 3508 "not available".
    pub(super) fn send(&mut self) -> CmdResult {
        match self.shared.generation() {
            Generation::V1 => Ok(None),
            Generation::V2 => Err(DisconnectKind::NotAvailable.into()),
        }
    }
}

impl Node {
    /// A server-side connection refresh through the backend, for a connection whose expiry has
    /// come (the tick already pushed its expiry [`REFRESH_RETRY_SECS`] ahead, so a failed or
    /// slow call is simply tried again then).
    pub(crate) async fn refresh_via_backend(&self, shared: Arc<ClientShared>) {
        let Some(backend) = self.backend().cloned() else {
            return;
        };
        let ctx = shared.conn_context();
        let answer = backend.refresh(&ctx).await;
        let now = unix_now();
        match answer {
            Err(_) => {} // logged by the backend; retried at the pushed expiry
            Ok(Some(g)) if !g.expired && backend_expiry(g.expire_at, now).is_some() => {
                let info = match shared.checked_payload(g.info) {
                    Ok(i) => i,
                    Err(_) => return,
                };
                let mut st = shared.state.lock();
                st.exp = backend_expiry(g.expire_at, now);
                if info.is_some() {
                    st.conn_info = info;
                }
                if g.meta.is_some() {
                    st.backend.get_or_insert_default().meta = g.meta;
                }
                drop(st);
                shared.tick_soon();
            }
            Ok(_) => {
                // Expired, no result, or no new expiry: the connection ends (it may reconnect).
                shared.disconnect(DisconnectKind::Expired);
                shared.cancel.cancel();
            }
        }
    }

    /// A server-side subscription refresh through the backend (6.x `sub_refresh` proxy).
    pub(crate) async fn sub_refresh_via_backend(
        &self,
        shared: Arc<ClientShared>,
        channel: String,
        proxy: String,
    ) {
        let Some(backend) = self.backend().cloned() else {
            return;
        };
        let ctx = shared.conn_context();
        let ev = SubRefreshEvent {
            channel: channel.clone(),
        };
        let answer = backend.sub_refresh(&proxy, &ctx, ev).await;
        let now = unix_now();
        match answer {
            Err(_) => {}
            Ok(Some(g)) if !g.expired && backend_expiry(g.expire_at, now).is_some() => {
                let Ok(info) = shared.checked_payload(g.info) else {
                    return;
                };
                let mut st = shared.state.lock();
                if let Some(sub) = st.subs.get_mut(&channel) {
                    sub.expire_at = backend_expiry(g.expire_at, now);
                    if info.is_some() {
                        sub.chan_info = info;
                    }
                }
            }
            Ok(_) => {
                let removed = {
                    let mut st = shared.state.lock();
                    st.subs.remove(&channel).map(|sub| {
                        let mut info = shared.info_in(&st, &channel);
                        info.chan_info = sub.chan_info.clone();
                        (sub, info)
                    })
                };
                if let Some((sub, info)) = removed {
                    shared.push_unsubscribe(&channel, UnsubscribeCode::EXPIRED);
                    self.drop_subscription(&shared, &channel, &sub, &info).await;
                }
            }
        }
    }
}
