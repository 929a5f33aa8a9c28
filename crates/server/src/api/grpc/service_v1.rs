//! The Centrifugo 2.x service `api.Centrifugo` (GRPC-API.md §1) and its pre-2.2.1 name
//! `api.Centrifuge` (same handlers). Every call answers status OK with the API error inside
//! the response (2.x texts); on success methods without result fields leave `result` unset
//! (trap 2), `Channels` is a list of names (trap 6), `History` returns everything (trap 5).

use rotor_core::api::{ApiError, ApiGeneration, ApiProtocol, ApiResult};
use rotor_core::Node;
use rotor_protocol::api::ApiCommand;
use tonic::{Request, Response, Status};

use super::convert::{self, v1_error};
use super::v1;
use super::v1::centrifuge_server::Centrifuge;
use super::v1::centrifugo_server::Centrifugo;

/// The 2.x handlers.
#[derive(Clone)]
pub(crate) struct V1Api {
    pub(crate) node: Node,
}

type Answer<T> = Result<Response<T>, Status>;

impl V1Api {
    async fn run(&self, cmd: ApiCommand) -> Result<ApiResult, ApiError> {
        self.node
            .api_execute(ApiGeneration::V1, ApiProtocol::Grpc, cmd)
            .await
    }
}

/// `XxxResponse { error, result }` from an outcome: `$ok` maps the success.
macro_rules! respond {
    ($resp:ident, $outcome:expr, $pat:pat => $ok:expr) => {{
        let (error, result) = match $outcome {
            Ok($pat) => (None, $ok),
            // A result of another method cannot happen; answer it as internal.
            Ok(_) => (Some(v1_error(ApiError::INTERNAL)), None),
            Err(e) => (Some(v1_error(e)), None),
        };
        Ok(Response::new(v1::$resp { error, result }))
    }};
}

#[tonic::async_trait]
impl Centrifugo for V1Api {
    async fn publish(&self, req: Request<v1::PublishRequest>) -> Answer<v1::PublishResponse> {
        let out = self.run(convert::v1_publish(req.into_inner())).await;
        respond!(PublishResponse, out, ApiResult::Publish(_) => None)
    }

    async fn broadcast(&self, req: Request<v1::BroadcastRequest>) -> Answer<v1::BroadcastResponse> {
        let out = self.run(convert::v1_broadcast(req.into_inner())).await;
        respond!(BroadcastResponse, out, ApiResult::Broadcast(_) => None)
    }

    async fn unsubscribe(
        &self,
        req: Request<v1::UnsubscribeRequest>,
    ) -> Answer<v1::UnsubscribeResponse> {
        let out = self.run(convert::v1_unsubscribe(req.into_inner())).await;
        respond!(UnsubscribeResponse, out, ApiResult::Unsubscribe => None)
    }

    async fn disconnect(
        &self,
        req: Request<v1::DisconnectRequest>,
    ) -> Answer<v1::DisconnectResponse> {
        let out = self.run(convert::v1_disconnect(req.into_inner())).await;
        respond!(DisconnectResponse, out, ApiResult::Disconnect => None)
    }

    async fn presence(&self, req: Request<v1::PresenceRequest>) -> Answer<v1::PresenceResponse> {
        let cmd = ApiCommand::Presence(convert::channel(req.into_inner().channel));
        let out = self.run(cmd).await;
        respond!(PresenceResponse, out, ApiResult::Presence(l) => Some(convert::v1_presence(&l)))
    }

    async fn presence_stats(
        &self,
        req: Request<v1::PresenceStatsRequest>,
    ) -> Answer<v1::PresenceStatsResponse> {
        let cmd = ApiCommand::PresenceStats(convert::channel(req.into_inner().channel));
        let out = self.run(cmd).await;
        respond!(PresenceStatsResponse, out, ApiResult::PresenceStats(s) => {
            Some(v1::PresenceStatsResult { num_clients: s.num_clients, num_users: s.num_users })
        })
    }

    async fn history(&self, req: Request<v1::HistoryRequest>) -> Answer<v1::HistoryResponse> {
        let out = self
            .run(convert::v1_history(req.into_inner().channel))
            .await;
        respond!(HistoryResponse, out, ApiResult::History(h) => Some(convert::v1_history_result(h)))
    }

    async fn history_remove(
        &self,
        req: Request<v1::HistoryRemoveRequest>,
    ) -> Answer<v1::HistoryRemoveResponse> {
        let cmd = ApiCommand::HistoryRemove(convert::channel(req.into_inner().channel));
        let out = self.run(cmd).await;
        respond!(HistoryRemoveResponse, out, ApiResult::HistoryRemove => None)
    }

    async fn channels(&self, _req: Request<v1::ChannelsRequest>) -> Answer<v1::ChannelsResponse> {
        let cmd = ApiCommand::Channels(Default::default());
        let out = self.run(cmd).await;
        respond!(ChannelsResponse, out, ApiResult::Channels(l) => Some(v1::ChannelsResult {
            channels: l.into_iter().map(|(ch, _)| ch).collect(),
        }))
    }

    async fn info(&self, _req: Request<v1::InfoRequest>) -> Answer<v1::InfoResponse> {
        let out = self.run(ApiCommand::Info).await;
        respond!(InfoResponse, out, ApiResult::Info(n) => Some(convert::v1_info(&n)))
    }

    async fn rpc(&self, req: Request<v1::RpcRequest>) -> Answer<v1::RpcResponse> {
        let out = self.run(convert::v1_rpc(req.into_inner())).await;
        respond!(RpcResponse, out, ApiResult::Rpc(data) => Some(v1::RpcResult { data }))
    }
}

/// `api.Centrifuge`: the same handlers under the service's 2.0–2.2.0 name.
#[derive(Clone)]
pub(crate) struct V1Alias(pub(crate) V1Api);

macro_rules! delegate {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {
        #[tonic::async_trait]
        impl Centrifuge for V1Alias {
            $(
                async fn $name(&self, req: Request<v1::$req>) -> Answer<v1::$resp> {
                    Centrifugo::$name(&self.0, req).await
                }
            )*
        }
    };
}

delegate! {
    publish(PublishRequest) -> PublishResponse;
    broadcast(BroadcastRequest) -> BroadcastResponse;
    unsubscribe(UnsubscribeRequest) -> UnsubscribeResponse;
    disconnect(DisconnectRequest) -> DisconnectResponse;
    presence(PresenceRequest) -> PresenceResponse;
    presence_stats(PresenceStatsRequest) -> PresenceStatsResponse;
    history(HistoryRequest) -> HistoryResponse;
    history_remove(HistoryRemoveRequest) -> HistoryRemoveResponse;
    channels(ChannelsRequest) -> ChannelsResponse;
    info(InfoRequest) -> InfoResponse;
    rpc(RpcRequest) -> RpcResponse;
}
