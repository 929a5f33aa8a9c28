//! The engine seen through the metrics: [`MeteredBroker`] and [`MeteredPresence`] wrap the
//! node's broker and presence manager, count each call (messages sent, broker actions) and
//! hand the inner future back unchanged, so counting adds no allocation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use rotor_protocol::ClientInfo;

use super::{action, message_sent, Action, MessageType};
use crate::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryFilter, HistoryPage, PresenceManager,
    PresenceStats, PublishOptions, StreamPosition,
};

/// A boxed engine future, as `async_trait` methods return.
type EngineFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Counts what the node asks of its broker (messages sent, broker actions) and forwards every
/// call as is: the inner future is returned unchanged, so counting adds no allocation.
pub(crate) struct MeteredBroker(pub Arc<dyn Broker>);

impl Broker for MeteredBroker {
    fn set_handler(&self, handler: Arc<dyn BrokerEventHandler>) {
        self.0.set_handler(handler)
    }

    fn publish<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
        data: Bytes,
        info: Option<Arc<ClientInfo>>,
        opts: PublishOptions,
    ) -> EngineFuture<'t, Result<StreamPosition, EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        message_sent(MessageType::Publication);
        self.0.publish(channel, data, info, opts)
    }

    fn publish_join<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
        info: ClientInfo,
    ) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        message_sent(MessageType::Join);
        self.0.publish_join(channel, info)
    }

    fn publish_leave<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
        info: ClientInfo,
    ) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        message_sent(MessageType::Leave);
        self.0.publish_leave(channel, info)
    }

    fn subscribe<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
    ) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        action(Action::BrokerSubscribe);
        self.0.subscribe(channel)
    }

    fn unsubscribe<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
    ) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        action(Action::BrokerUnsubscribe);
        self.0.unsubscribe(channel)
    }

    fn history<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
        filter: HistoryFilter,
    ) -> EngineFuture<'t, Result<HistoryPage, EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        action(if filter.limit == Some(0) {
            Action::HistoryStreamTop
        } else if filter.since.is_some() {
            Action::HistoryRecover
        } else {
            Action::History
        });
        self.0.history(channel, filter)
    }

    fn remove_history<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
    ) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        action(Action::HistoryRemove);
        self.0.remove_history(channel)
    }

    fn publish_control<'a, 't>(&'a self, data: Bytes) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        Self: 't,
    {
        message_sent(MessageType::Control);
        self.0.publish_control(data)
    }

    fn is_healthy(&self) -> bool {
        self.0.is_healthy()
    }
}

/// Counts presence actions and forwards, like [`MeteredBroker`].
pub(crate) struct MeteredPresence(pub Arc<dyn PresenceManager>);

impl PresenceManager for MeteredPresence {
    fn add_presence<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
        info: ClientInfo,
        expire_secs: u64,
    ) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        action(Action::AddPresence);
        self.0.add_presence(channel, info, expire_secs)
    }

    fn remove_presence<'a, 'b, 'c, 't>(
        &'a self,
        channel: &'b str,
        client_id: &'c str,
    ) -> EngineFuture<'t, Result<(), EngineError>>
    where
        'a: 't,
        'b: 't,
        'c: 't,
        Self: 't,
    {
        action(Action::RemovePresence);
        self.0.remove_presence(channel, client_id)
    }

    fn presence<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
    ) -> EngineFuture<'t, Result<Vec<ClientInfo>, EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        action(Action::Presence);
        self.0.presence(channel)
    }

    fn presence_stats<'a, 'b, 't>(
        &'a self,
        channel: &'b str,
    ) -> EngineFuture<'t, Result<PresenceStats, EngineError>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        action(Action::PresenceStats);
        self.0.presence_stats(channel)
    }

    fn is_healthy(&self) -> bool {
        self.0.is_healthy()
    }
}
