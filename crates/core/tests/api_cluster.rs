//! The server API across nodes: two nodes on one in-memory broker (each node's handler
//! registered with it, as every node subscribes to a Redis broker's channels), a call made on
//! one node and its effect on a connection of the other, carried by the control messages with
//! every field.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rotor_core::api::{ApiGeneration, ApiProtocol, ApiResult};
use rotor_core::auth::sign_hs256;
use rotor_core::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryFilter, HistoryPage, PresenceManager,
    PublishOptions, StreamPosition,
};
use rotor_core::memory::MemoryEngine;
use rotor_core::transport::UNI_SSE;
use rotor_core::writer::{CloseFrame, WriterStep};
use rotor_core::{ChannelOptions, Namespace, Node, NodeConfig, Session};
use rotor_protocol::api::{decode_api_params, ApiCommand};
use rotor_protocol::{ClientInfo, ConnectRequest, Encoding, Generation, Publication};
use serde_json::{json, Value};

/// Hands every event of the shared broker to each node's handler.
#[derive(Default)]
struct Handlers(Mutex<Vec<Arc<dyn BrokerEventHandler>>>);

impl Handlers {
    fn each(&self, f: impl Fn(&dyn BrokerEventHandler)) {
        let list = self.0.lock().clone();
        for h in list {
            f(&*h);
        }
    }
}

impl BrokerEventHandler for Handlers {
    fn handle_publication(&self, channel: &str, publication: Publication) {
        self.each(|h| h.handle_publication(channel, publication.clone()));
    }
    fn handle_join(&self, channel: &str, info: ClientInfo) {
        self.each(|h| h.handle_join(channel, info.clone()));
    }
    fn handle_leave(&self, channel: &str, info: ClientInfo) {
        self.each(|h| h.handle_leave(channel, info.clone()));
    }
    fn handle_control(&self, data: &[u8]) {
        self.each(|h| h.handle_control(data));
    }
}

/// One node's view of the shared broker: its handler joins the others.
struct NodeBroker {
    shared: Arc<dyn Broker>,
    handlers: Arc<Handlers>,
}

#[async_trait]
impl Broker for NodeBroker {
    fn set_handler(&self, handler: Arc<dyn BrokerEventHandler>) {
        self.handlers.0.lock().push(handler);
    }
    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        info: Option<Arc<ClientInfo>>,
        opts: PublishOptions,
    ) -> Result<StreamPosition, EngineError> {
        self.shared.publish(channel, data, info, opts).await
    }
    async fn publish_join(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        self.shared.publish_join(channel, info).await
    }
    async fn publish_leave(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        self.shared.publish_leave(channel, info).await
    }
    async fn subscribe(&self, _channel: &str) -> Result<(), EngineError> {
        Ok(())
    }
    async fn unsubscribe(&self, _channel: &str) -> Result<(), EngineError> {
        Ok(())
    }
    async fn history(
        &self,
        channel: &str,
        filter: HistoryFilter,
    ) -> Result<HistoryPage, EngineError> {
        self.shared.history(channel, filter).await
    }
    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        self.shared.remove_history(channel).await
    }
    async fn publish_control(&self, data: Bytes) -> Result<(), EngineError> {
        self.shared.publish_control(data).await
    }
}

fn config(name: &str) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        token_hmac_secret_key: "secret".into(),
        namespaces: vec![Namespace {
            name: "chat".into(),
            options: ChannelOptions {
                presence: true,
                ..Default::default()
            },
        }],
        ..Default::default()
    }
}

/// Two started nodes on one memory broker and presence.
fn cluster() -> (Node, Node) {
    let mem = MemoryEngine::new(Duration::ZERO);
    let handlers = Arc::new(Handlers::default());
    mem.broker.set_handler(handlers.clone());
    let shared: Arc<dyn Broker> = mem.broker.clone();
    let presence: Arc<dyn PresenceManager> = mem.presence.clone();
    let mk = |name: &str| {
        let broker = Arc::new(NodeBroker {
            shared: shared.clone(),
            handlers: handlers.clone(),
        });
        let node = Node::with_engine(config(name), broker, presence.clone()).expect("config");
        node.start();
        node
    };
    (mk("a"), mk("b"))
}

fn token(user: &str) -> String {
    sign_hs256("secret", &json!({ "sub": user }).to_string())
}

async fn connect(node: &Node, g: Generation, user: &str) -> Session {
    let mut s = node.new_session(Some(g), Encoding::Json);
    let frame = match g {
        Generation::V1 => json!({"id": 1, "params": {"token": token(user)}}),
        Generation::V2 => json!({"id": 1, "connect": {"token": token(user)}}),
    };
    assert!(s.handle_frame(frame.to_string().as_bytes()).await);
    drain(&s).await;
    s
}

/// What reaches the session within 300 ms (control messages are applied on their own task).
async fn drain(s: &Session) -> (Vec<Value>, Option<Option<CloseFrame>>) {
    let mut lines = Vec::new();
    loop {
        let mut out = Vec::new();
        let step =
            tokio::time::timeout(Duration::from_millis(300), s.shared().queue.next(&mut out));
        let Ok(step) = step.await else {
            return (lines, None);
        };
        for m in &out {
            for l in m.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_slice(l).expect("JSON line"));
            }
        }
        if let WriterStep::Close(f) = step {
            return (lines, Some(f));
        }
    }
}

async fn call(node: &Node, method: &str, params: Value) -> ApiResult {
    let cmd: ApiCommand = decode_api_params(method, params.to_string().as_bytes())
        .expect("decodes")
        .expect("a method");
    node.api_execute(ApiGeneration::V2, ApiProtocol::Grpc, cmd)
        .await
        .expect("the call succeeds")
}

fn close_of(close: Option<Option<CloseFrame>>) -> (u16, String) {
    let f = close.expect("closed").expect("with a close frame");
    (f.code, f.reason)
}

#[tokio::test]
async fn subscribe_on_one_node_reaches_the_other_with_every_field() {
    let (a, b) = cluster();
    let far = connect(&b, Generation::V2, "42").await;
    let mut sse = b.new_session_on(&UNI_SSE, Some(Generation::V2), Encoding::Json);
    let req = ConnectRequest {
        token: token("42"),
        ..Default::default()
    };
    assert!(sse.connect_unidirectional(req).await.is_ok());
    drain(&sse).await;
    let session = sse.shared().session_id().expect("session").to_string();
    // Binary data survives the trip (base64 in the control message); JSON data for JSON.
    let params = json!({"channel": "chat:x", "user": "42", "b64data": "eyJiIjoxfQ==",
        "b64info": "AAE=", "override": {"presence": {"value": false}}});
    call(&a, "subscribe", params).await;
    let (lines, _) = drain(&far).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["push"]["subscribe"]["data"], json!({"b": 1}));
    assert_eq!(drain(&sse).await.0.len(), 1);
    let presence = call(&a, "presence", json!({"channel": "chat:x"})).await;
    assert_eq!(
        presence,
        ApiResult::Presence(Vec::new()),
        "override reached node b"
    );
    // A session filter on the other node.
    call(
        &a,
        "subscribe",
        json!({"channel": "chat:y", "user": "42", "session": session}),
    )
    .await;
    assert!(drain(&far).await.0.is_empty());
    let (lines, _) = drain(&sse).await;
    assert_eq!(lines[0]["push"]["channel"], "chat:y", "{lines:?}");
    // Unsubscribe with a client filter, from node a.
    let id = far.shared().id().to_string();
    call(
        &a,
        "unsubscribe",
        json!({"channel": "chat:x", "user": "42", "client": id}),
    )
    .await;
    let (lines, _) = drain(&far).await;
    assert_eq!(lines[0]["push"]["unsubscribe"]["code"], 2000, "{lines:?}");
    assert!(drain(&sse).await.0.is_empty());
    assert_eq!(sse.shared().channels().len(), 2);
}

#[tokio::test]
async fn disconnect_and_refresh_on_one_node_reach_the_other() {
    let (a, b) = cluster();
    let v2 = connect(&b, Generation::V2, "42").await;
    let v1 = connect(&b, Generation::V1, "42").await;
    let spared = connect(&b, Generation::V2, "42").await;
    call(
        &a,
        "refresh",
        json!({"user": "42", "expire_at": 4_000_000_000i64}),
    )
    .await;
    let (lines, _) = drain(&v2).await;
    assert_eq!(lines[0]["push"]["refresh"]["expires"], true, "{lines:?}");
    assert!(drain(&v1).await.0.is_empty(), "v1 has no refresh push");
    let params = json!({"user": "42", "disconnect": {"code": 4501, "reason": "gone"},
        "whitelist": [spared.shared().id()]});
    call(&a, "disconnect", params).await;
    assert_eq!(close_of(drain(&v2).await.1), (4501, "gone".into()));
    assert_eq!(
        close_of(drain(&v1).await.1),
        (4501, r#"{"reason":"gone","reconnect":false}"#.into())
    );
    assert!(drain(&spared).await.1.is_none());
    call(&a, "refresh", json!({"user": "42", "expired": true})).await;
    assert_eq!(
        close_of(drain(&spared).await.1),
        (3005, "connection expired".into())
    );
}

#[tokio::test]
async fn info_and_channels_count_the_other_nodes_subscriptions() {
    let (a, b) = cluster();
    let _near = connect(&a, Generation::V2, "1").await;
    let _far = connect(&b, Generation::V2, "2").await;
    call(&a, "subscribe", json!({"channel": "chat:1", "user": "1"})).await;
    call(&a, "subscribe", json!({"channel": "chat:1", "user": "2"})).await;
    call(&a, "subscribe", json!({"channel": "chat:2", "user": "2"})).await;
    // Node b announces itself every few seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let ApiResult::Info(nodes) = call(&a, "info", json!({})).await else {
            panic!("info");
        };
        let subs: Vec<_> = nodes.iter().map(|n| (n.name.clone(), n.num_subs)).collect();
        if subs == vec![("a".to_string(), 1), ("b".to_string(), 2)] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{subs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let channels = call(&a, "channels", json!({"pattern": "chat:?"})).await;
    assert_eq!(
        channels,
        ApiResult::Channels(vec![("chat:1".into(), 2), ("chat:2".into(), 1)])
    );
}
