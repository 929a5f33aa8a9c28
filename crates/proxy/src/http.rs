//! HTTP proxy transport (placeholder: being written).

use async_trait::async_trait;
use bytes::Bytes;
use rotor_core::backend::*;

use crate::config::ProxySettings;
use crate::{CallError, CallResult, Caller, ProxyConfigError};

/// The keep-alive client pool shared by every HTTP proxy.
#[derive(Default, Clone)]
pub(crate) struct SharedClient;

pub(crate) struct HttpCaller;

impl HttpCaller {
    pub(crate) fn new(
        _style: BackendStyle,
        _s: &ProxySettings,
        _shared: &SharedClient,
    ) -> Result<Self, ProxyConfigError> {
        Ok(Self)
    }
}

fn todo<T>() -> CallResult<T> {
    Err(CallError::Failed("HTTP proxy not built yet".into()))
}

#[async_trait]
impl Caller for HttpCaller {
    async fn connect(&self, _: &ConnContext, _: &ConnectEvent) -> CallResult<Option<ConnectGrant>> {
        todo()
    }
    async fn refresh(&self, _: &ConnContext) -> CallResult<Option<RefreshGrant>> {
        todo()
    }
    async fn subscribe(
        &self,
        _: &ConnContext,
        _: &SubscribeEvent,
    ) -> CallResult<Option<SubscribeGrant>> {
        todo()
    }
    async fn publish(&self, _: &ConnContext, _: &PublishEvent) -> CallResult<Option<PublishGrant>> {
        todo()
    }
    async fn sub_refresh(
        &self,
        _: &ConnContext,
        _: &SubRefreshEvent,
    ) -> CallResult<Option<SubRefreshGrant>> {
        todo()
    }
    async fn rpc(&self, _: &ConnContext, _: &RpcEvent) -> CallResult<Option<Bytes>> {
        todo()
    }
}
