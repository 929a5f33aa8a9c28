//! The current service `centrifugal.centrifugo.api.CentrifugoApi` (GRPC-API.md §2): current
//! rules and texts, an (empty) `result` on every success, `Batch` (one `Reply` per command;
//! a command without a known field → 104), and the transport error mode (see `errors`).

use rotor_core::api::{ApiError, ApiGeneration, ApiProtocol, ApiResult};
use rotor_core::Node;
use rotor_protocol::api::{ApiCommand, BatchEntry};
use tonic::{Request, Response, Status};

use super::convert::{self, v6_error};
use super::errors::{to_status, wants_transport};
use super::v6;
use super::v6::centrifugo_api_server::CentrifugoApi;

/// The current handlers.
#[derive(Clone)]
pub(crate) struct V6Api {
    pub(crate) node: Node,
    /// `grpc_api.error_mode: transport`.
    pub(crate) transport_errors: bool,
}

type Answer<T> = Result<Response<T>, Status>;

impl V6Api {
    async fn run(&self, cmd: ApiCommand) -> Result<ApiResult, ApiError> {
        self.node
            .api_execute(ApiGeneration::V2, ApiProtocol::Grpc, cmd)
            .await
    }
}

/// Runs `$cmd` and answers `XxxResponse { error, result }`, or in transport mode a status for
/// an error; `$ok` maps the success.
macro_rules! call {
    ($self:ident, $req:ident, $resp:ident, $conv:expr, $pat:pat => $ok:expr) => {{
        let transport = wants_transport($self.transport_errors, &$req);
        let out = $self.run($conv($req.into_inner())).await;
        let (error, result) = match out {
            Ok($pat) => (None, Some($ok)),
            // A result of another method cannot happen; answer it as internal.
            Ok(_) => (Some(v6_error(ApiError::INTERNAL)), None),
            Err(e) => (Some(v6_error(e)), None),
        };
        match error {
            Some(e) if transport => Err(to_status(&e)),
            error => Ok(Response::new(v6::$resp { error, result })),
        }
    }};
}

#[tonic::async_trait]
impl CentrifugoApi for V6Api {
    async fn batch(&self, req: Request<v6::BatchRequest>) -> Answer<v6::BatchResponse> {
        let v6::BatchRequest { commands, parallel } = req.into_inner();
        let entries = commands
            .into_iter()
            .map(|c| match convert::v6_command(c) {
                Some(cmd) => BatchEntry::Command(cmd),
                None => BatchEntry::NoMethod,
            })
            .collect();
        let out = self
            .node
            .api_batch(ApiProtocol::Grpc, entries, parallel)
            .await;
        Ok(Response::new(v6::BatchResponse {
            replies: out.into_iter().map(convert::v6_reply).collect(),
        }))
    }

    async fn publish(&self, req: Request<v6::PublishRequest>) -> Answer<v6::PublishResponse> {
        call!(self, req, PublishResponse, convert::v6_publish,
            ApiResult::Publish(p) => convert::v6_publish_result(p))
    }

    async fn broadcast(&self, req: Request<v6::BroadcastRequest>) -> Answer<v6::BroadcastResponse> {
        call!(self, req, BroadcastResponse, convert::v6_broadcast,
            ApiResult::Broadcast(l) => convert::v6_broadcast_result(l))
    }

    async fn subscribe(&self, req: Request<v6::SubscribeRequest>) -> Answer<v6::SubscribeResponse> {
        call!(self, req, SubscribeResponse, convert::v6_subscribe,
            ApiResult::Subscribe => v6::SubscribeResult {})
    }

    async fn unsubscribe(
        &self,
        req: Request<v6::UnsubscribeRequest>,
    ) -> Answer<v6::UnsubscribeResponse> {
        call!(self, req, UnsubscribeResponse, convert::v6_unsubscribe,
            ApiResult::Unsubscribe => v6::UnsubscribeResult {})
    }

    async fn disconnect(
        &self,
        req: Request<v6::DisconnectRequest>,
    ) -> Answer<v6::DisconnectResponse> {
        call!(self, req, DisconnectResponse, convert::v6_disconnect,
            ApiResult::Disconnect => v6::DisconnectResult {})
    }

    async fn presence(&self, req: Request<v6::PresenceRequest>) -> Answer<v6::PresenceResponse> {
        let conv = |r: v6::PresenceRequest| ApiCommand::Presence(convert::channel(r.channel));
        call!(self, req, PresenceResponse, conv,
            ApiResult::Presence(l) => convert::v6_presence(&l))
    }

    async fn presence_stats(
        &self,
        req: Request<v6::PresenceStatsRequest>,
    ) -> Answer<v6::PresenceStatsResponse> {
        let conv =
            |r: v6::PresenceStatsRequest| ApiCommand::PresenceStats(convert::channel(r.channel));
        call!(self, req, PresenceStatsResponse, conv,
            ApiResult::PresenceStats(s) => convert::v6_presence_stats(s))
    }

    async fn history(&self, req: Request<v6::HistoryRequest>) -> Answer<v6::HistoryResponse> {
        call!(self, req, HistoryResponse, convert::v6_history,
            ApiResult::History(h) => convert::v6_history_result(h))
    }

    async fn history_remove(
        &self,
        req: Request<v6::HistoryRemoveRequest>,
    ) -> Answer<v6::HistoryRemoveResponse> {
        let conv =
            |r: v6::HistoryRemoveRequest| ApiCommand::HistoryRemove(convert::channel(r.channel));
        call!(self, req, HistoryRemoveResponse, conv,
            ApiResult::HistoryRemove => v6::HistoryRemoveResult {})
    }

    async fn info(&self, req: Request<v6::InfoRequest>) -> Answer<v6::InfoResponse> {
        let conv = |_: v6::InfoRequest| ApiCommand::Info;
        call!(self, req, InfoResponse, conv, ApiResult::Info(n) => convert::v6_info(&n))
    }

    async fn rpc(&self, req: Request<v6::RpcRequest>) -> Answer<v6::RpcResponse> {
        call!(self, req, RpcResponse, convert::v6_rpc,
            ApiResult::Rpc(d) => convert::v6_rpc_result(d))
    }

    async fn refresh(&self, req: Request<v6::RefreshRequest>) -> Answer<v6::RefreshResponse> {
        call!(self, req, RefreshResponse, convert::v6_refresh,
            ApiResult::Refresh => v6::RefreshResult {})
    }

    async fn channels(&self, req: Request<v6::ChannelsRequest>) -> Answer<v6::ChannelsResponse> {
        call!(self, req, ChannelsResponse, convert::v6_channels,
            ApiResult::Channels(l) => convert::v6_channels_result(l))
    }
}
