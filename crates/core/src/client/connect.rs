//! The connect and refresh commands: credentials, expiry, server-side subscriptions.

use std::time::Instant;

use rotor_protocol::command::{ConnectRequest, RefreshRequest, SubscribeRequest};
use rotor_protocol::reply::{ConnectResult, RefreshResult};
use rotor_protocol::{DisconnectKind, ErrorCode, Generation, ReplyBody};

use super::proxy::backend_expiry;
use super::{CmdError, CmdResult, Session};
use crate::auth::{ConnectClaims, TokenError};
use crate::backend::{Backend, ConnectEvent, ServerSub};
use crate::control::DisconnectReason;
use crate::node::unix_now;
use crate::transport::TransportKind;

/// Who a connection is, whichever way it was established (token, backend, anonymous).
#[derive(Default)]
struct Credentials {
    user: String,
    exp: Option<i64>,
    info: Option<bytes::Bytes>,
    /// Connect reply `data` (backend only).
    data: Option<bytes::Bytes>,
    subs: Vec<ServerSub>,
    meta: Option<bytes::Bytes>,
}

impl Credentials {
    fn from_claims(c: ConnectClaims, insecure: bool) -> Self {
        Self {
            user: c.user,
            // Insecure mode ignores a token's expiry (the backend's is kept).
            exp: if insecure { None } else { c.exp },
            info: c.info,
            data: None,
            // A v6 token's `subs` wins over its `channels`.
            subs: if c.subs.is_empty() {
                c.channels
                    .into_iter()
                    .map(|channel| ServerSub {
                        channel,
                        ..ServerSub::default()
                    })
                    .collect()
            } else {
                c.subs
            },
            meta: c.meta,
        }
    }
}

impl Session {
    /// A connect without a token, decided by the backend. `Ok(None)`: it gave no credentials.
    async fn connect_via_backend(
        &mut self,
        backend: std::sync::Arc<dyn Backend>,
        req: &ConnectRequest,
    ) -> Result<Option<Credentials>, CmdError> {
        if !req.headers.is_empty() {
            let kept: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .filter(|(k, _)| backend.wants_emulated_header(k))
                .collect();
            if !kept.is_empty() {
                let mut st = self.shared.state.lock();
                st.backend.get_or_insert_default().emulated_headers = Some(kept.into());
            }
        }
        let ctx = self.shared.conn_context();
        let ev = ConnectEvent {
            data: req.data.clone(),
            name: req.name.clone(),
            version: req.version.clone(),
            channels: req.subs.keys().cloned().collect(),
        };
        let Some(g) = backend.connect(&ctx, ev).await? else {
            return Ok(None);
        };
        let shared = &self.shared;
        let mut subs = Vec::with_capacity(g.subs.len());
        for mut s in g.subs {
            s.info = shared.checked_payload(s.info)?;
            s.data = shared.checked_payload(s.data)?;
            subs.push(s);
        }
        Ok(Some(Credentials {
            user: g.user,
            exp: backend_expiry(g.expire_at, unix_now()),
            info: shared.checked_payload(g.info)?,
            data: shared.checked_payload(g.data)?,
            subs,
            meta: g.meta,
        }))
    }

    pub(super) async fn connect(&mut self, req: ConnectRequest) -> CmdResult {
        let node = self.node.clone();
        let cfg = node.config();
        let generation = self.shared.generation();
        let now = unix_now();
        let backend = node.backend();
        let creds = if req.token.is_empty() {
            let granted = match backend.filter(|b| b.capabilities().connect) {
                Some(b) => self.connect_via_backend(b.clone(), &req).await?,
                None => None,
            };
            match granted {
                Some(c) => c,
                None if cfg.client_anonymous || cfg.client_insecure => Credentials::default(),
                // No credentials and no anonymous access.
                None => return Err(DisconnectKind::BadRequest.into()),
            }
        } else {
            let verifier = std::sync::Arc::clone(&node.verifier());
            let claims = match verifier
                .verify_connect_async(&req.token, now, !cfg.client_insecure)
                .await
            {
                Ok(c) => c,
                Err(TokenError::Expired) => return Err(ErrorCode::TOKEN_EXPIRED.into()),
                Err(TokenError::Invalid(e)) => {
                    tracing::debug!(client = %self.shared.id(), error = %e, "invalid connection token");
                    return Err(DisconnectKind::InvalidToken.into());
                }
            };
            if generation == Generation::V2 && claims.has_channel_claim {
                // A subscription token used as a connection token.
                return Err(DisconnectKind::InvalidToken.into());
            }
            Credentials::from_claims(claims, cfg.client_insecure)
        };
        let exp = creds.exp;
        // With a refresh proxy the server refreshes every expiring connection itself.
        let server_refresh = exp.is_some() && backend.is_some_and(|b| b.capabilities().refresh);
        let ttl = match exp {
            Some(e) if e <= now => return Err(ErrorCode::EXPIRED.into()),
            Some(_) if server_refresh => 0,
            Some(e) => u32::try_from(e - now).unwrap_or(u32::MAX),
            None => 0,
        };
        let claims = creds;
        if node.rate_limits().is_some() && !claims.user.is_empty() {
            let cmd = crate::ratelimit::Command::Connect;
            self.rate_check(cmd, "", "", Some(&claims.user)).await?;
        }
        let limit = cfg.client_user_connection_limit;
        if limit > 0
            && !claims.user.is_empty()
            && node.hub().user_connection_count(&claims.user) >= limit
        {
            return Err(DisconnectKind::ConnectionLimit.into());
        }

        // Server-side subscriptions: the token's (or backend's) channels and the personal channel.
        let mut server_subs = claims.subs;
        if cfg.user_subscribe_to_personal && !claims.user.is_empty() {
            let personal = cfg.personal_channel(&claims.user);
            if !server_subs.iter().any(|s| s.channel == personal) {
                server_subs.push(ServerSub {
                    channel: personal,
                    ..ServerSub::default()
                });
            }
        }
        for s in &server_subs {
            if node.rules().options(&s.channel).is_none() {
                return Err(ErrorCode::UNKNOWN_CHANNEL.into());
            }
        }
        if self.shared.transport().kind == TransportKind::Unidirectional {
            self.add_requested_subs(&req, &claims.user, &mut server_subs)?;
        }
        // Centrifugo 6: more server-side subscriptions than `channel_limit` close the
        // connection (3505); 2.x had no such check.
        let channel_limit = cfg.client_channel_limit;
        if generation == Generation::V2 && channel_limit > 0 && server_subs.len() > channel_limit {
            return Err(DisconnectKind::ChannelLimit.into());
        }

        {
            let mut st = self.shared.state.lock();
            st.connected = true;
            st.user = claims.user.clone();
            st.conn_info = claims.info.clone();
            st.exp = exp;
            st.server_refresh = server_refresh;
            if claims.meta.is_some() {
                st.backend.get_or_insert_default().meta = claims.meta;
            }
            let now_i = Instant::now();
            st.last_seen = now_i;
            st.next_presence = Some(now_i + cfg.client_presence_ping_interval);
            st.next_position_check = Some(now_i + cfg.client_channel_position_check_delay);
            let app_pings = self.shared.transport().app_pings;
            if generation == Generation::V2 && !app_pings {
                // This transport has its own keepalive (uni_grpc).
            } else if generation == Generation::V2 && !cfg.client_ping_interval.is_zero() {
                // First ping at a random point in [P/2, P] so pings of many clients spread out.
                let p = cfg.client_ping_interval;
                let jitter = rand::random_range(0..=p.as_millis() as u64 / 2);
                st.next_ping = Some(now_i + p / 2 + std::time::Duration::from_millis(jitter));
            } else if !cfg.client_ping_interval.is_zero() {
                st.next_ping = Some(now_i + cfg.client_ping_interval);
            }
        }
        node.hub().add_client(&self.shared, &claims.user);

        let mut subs = Vec::new();
        for sub in server_subs {
            let ch = sub.channel.clone();
            let recover = req.subs.get(&ch).cloned().unwrap_or_default();
            let sub_req = SubscribeRequest {
                channel: ch.clone(),
                ..recover
            };
            match self.subscribe_server_side(sub_req, sub).await {
                Ok(r) => subs.push((ch, r)),
                Err(e) => {
                    tracing::warn!(client = %self.shared.id(), channel = %ch, error = ?e, "server-side subscribe failed");
                }
            }
        }

        let transport = self.shared.transport();
        let ping_secs = if generation == Generation::V2 && transport.app_pings {
            cfg.client_ping_interval.as_secs() as u32
        } else {
            0
        };
        let emulated = transport.kind == TransportKind::Emulation;
        Ok(Some(ReplyBody::Connect(ConnectResult {
            client: self.shared.id().to_string(),
            version: cfg.version.clone(),
            expires: exp.is_some() && !server_refresh,
            ttl,
            data: claims.data,
            subs,
            ping: ping_secs,
            pong: ping_secs > 0 && transport.client_pongs(),
            session: self.shared.session_id().unwrap_or_default().to_string(),
            node: if emulated {
                node.uid().to_string()
            } else {
                String::new()
            },
        })))
    }

    /// A unidirectional client names the channels it wants in its connect request (`subs`):
    /// each becomes a server-side subscription when a client could subscribe to it without a
    /// token or the backend (a channel of a known namespace, not private, not user-limited, not
    /// proxied, anonymous access as the channel allows). An unknown namespace refuses the
    /// connection (bad request), as Centrifugo does; other channels are skipped.
    fn add_requested_subs(
        &self,
        req: &ConnectRequest,
        user: &str,
        server_subs: &mut Vec<ServerSub>,
    ) -> Result<(), CmdError> {
        let node = &self.node;
        let cfg = node.config();
        let rules = node.rules();
        for ch in req.subs.keys() {
            if ch.is_empty() || server_subs.iter().any(|s| &s.channel == ch) {
                continue;
            }
            let Some(opts) = rules.options(ch) else {
                return Err(DisconnectKind::BadRequest.into());
            };
            let anonymous_ok = !user.is_empty() || opts.anonymous || cfg.client_insecure;
            if ch.len() > cfg.channel_max_length
                || opts.server_side
                || opts.proxy_subscribe
                || rules.is_private(ch)
                || rules.is_user_limited(ch)
                || !anonymous_ok
            {
                tracing::debug!(client = %self.shared.id(), channel = %ch, "unidirectional subscription not allowed; skipped");
                continue;
            }
            server_subs.push(ServerSub {
                channel: ch.clone(),
                ..ServerSub::default()
            });
        }
        Ok(())
    }

    /// Single-connection mode (`user_personal_single_connection`), as Centrifugo 2.x does it
    /// once a connection is established: this connection is already in its personal channel's
    /// presence, so a second entry there means an older connection of the same user, on some
    /// node. Every connection of the user but this one is then closed with `connection limit`,
    /// on every node. Failing to check or to tell the other nodes closes this connection as an
    /// internal error instead (it may reconnect), so that two connections never both stay.
    pub(super) async fn enforce_single_connection(&self) -> Result<(), DisconnectKind> {
        let cfg = self.node.config();
        if !(cfg.user_subscribe_to_personal && cfg.user_personal_single_connection) {
            return Ok(());
        }
        let user = self.shared.state.lock().user.clone();
        if user.is_empty() {
            return Ok(());
        }
        let personal = cfg.personal_channel(&user);
        let id = self.shared.id();
        let stats = self
            .node
            .presence()
            .presence_stats(&personal)
            .await
            .map_err(|e| {
                tracing::error!(client = %id, user = %user, error = %e, "single connection: presence stats failed");
                DisconnectKind::InternalError
            })?;
        if stats.num_clients < 2 {
            return Ok(());
        }
        self.node
            .disconnect_user(&user, "", id, DisconnectReason::ConnectionLimit)
            .await
            .map_err(|e| {
                tracing::error!(client = %id, user = %user, error = %e, "single connection: disconnect failed");
                DisconnectKind::InternalError
            })
    }

    pub(super) async fn refresh(&mut self, req: RefreshRequest) -> CmdResult {
        if req.token.is_empty() || self.shared.state.lock().server_refresh {
            // No token, or the server refreshes this connection through the backend.
            return Err(DisconnectKind::BadRequest.into());
        }
        let cfg = self.node.config();
        let now = unix_now();
        let verifier = std::sync::Arc::clone(&self.node.verifier());
        let claims = match verifier
            .verify_connect_async(&req.token, now, !cfg.client_insecure)
            .await
        {
            Ok(c) => c,
            Err(TokenError::Expired) => return Err(DisconnectKind::Expired.into()),
            Err(TokenError::Invalid(_)) => return Err(DisconnectKind::InvalidToken.into()),
        };
        let mut st = self.shared.state.lock();
        if claims.user != st.user {
            return Err(DisconnectKind::InvalidToken.into());
        }
        let exp = if cfg.client_insecure {
            None
        } else {
            claims.exp
        };
        let ttl = match exp {
            Some(e) if e <= now => return Err(ErrorCode::EXPIRED.into()),
            Some(e) => u32::try_from(e - now).unwrap_or(u32::MAX),
            None => 0,
        };
        st.exp = exp;
        self.shared.tick_soon();
        if claims.info.is_some() {
            st.conn_info = claims.info;
        }
        Ok(Some(ReplyBody::Refresh(RefreshResult {
            client: self.shared.id().to_string(),
            version: cfg.version.clone(),
            expires: exp.is_some(),
            ttl,
        })))
    }
}
