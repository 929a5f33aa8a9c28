//! The session against a scripted backend, through the public API exactly as a transport drives
//! it (frames in through `Session::handle_frame`, encoded messages and the close frame out of the
//! connection's `WriterQueue`): what each backend answer makes the client see, in both
//! generations, and what the backend was asked. The HTTP and gRPC proxies are tested on real
//! sockets in `rotor-proxy` and `rotor-server`; this pins the core's decisions.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rotor_core::backend::{
    Backend, BackendError, BackendResult, BackendStyle, Capabilities, ConnContext, ConnectEvent,
    ConnectGrant, PublishEvent, PublishGrant, RefreshGrant, RpcEvent, ServerSub, SubOverride,
    SubscribeEvent, SubscribeGrant,
};
use rotor_core::writer::{CloseFrame, WriterStep};
use rotor_core::{ChannelOptions, Namespace, Node, NodeConfig, Session};
use rotor_protocol::{Encoding, Generation};
use serde_json::{json, Value};

/// What the scripted backend answers, per event.
#[derive(Clone)]
enum Answer<T> {
    Grant(T),
    Fail(BackendError),
}

#[derive(Clone)]
struct Script {
    style: BackendStyle,
    connect: Option<Answer<Option<ConnectGrant>>>,
    refresh: Option<Answer<Option<RefreshGrant>>>,
    subscribe: Answer<SubscribeGrant>,
    publish: Answer<PublishGrant>,
    rpc: Option<Answer<Option<Bytes>>>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            style: BackendStyle::Modern,
            connect: None,
            refresh: None,
            subscribe: Answer::Grant(SubscribeGrant::default()),
            publish: Answer::Grant(PublishGrant::default()),
            rpc: None,
        }
    }
}

/// Records every call: (event, user, detail).
#[derive(Default)]
struct Calls(Mutex<Vec<(String, String, String)>>);

struct Scripted {
    script: Script,
    calls: Arc<Calls>,
}

fn answer<T: Clone>(a: &Answer<T>) -> BackendResult<T> {
    match a {
        Answer::Grant(t) => Ok(t.clone()),
        Answer::Fail(e) => Err(e.clone()),
    }
}

impl Scripted {
    fn record(&self, event: &str, ctx: &ConnContext, detail: String) {
        self.calls
            .0
            .lock()
            .push((event.to_string(), ctx.user.clone(), detail));
    }
}

#[async_trait]
impl Backend for Scripted {
    fn style(&self) -> BackendStyle {
        self.script.style
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            connect: self.script.connect.is_some(),
            refresh: self.script.refresh.is_some(),
            rpc: self.script.rpc.is_some(),
        }
    }
    fn wants_emulated_header(&self, name: &str) -> bool {
        name == "authorization"
    }
    async fn connect(
        &self,
        ctx: &ConnContext,
        ev: ConnectEvent,
    ) -> BackendResult<Option<ConnectGrant>> {
        let headers: Vec<String> = ctx
            .emulated_headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let data = ev
            .data
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default();
        self.record(
            "connect",
            ctx,
            format!("{data} {} {}", ev.channels.join(","), headers.join(",")),
        );
        answer(self.script.connect.as_ref().expect("connect scripted"))
    }
    async fn refresh(&self, ctx: &ConnContext) -> BackendResult<Option<RefreshGrant>> {
        let meta = ctx
            .meta
            .as_ref()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_default();
        self.record("refresh", ctx, meta);
        answer(self.script.refresh.as_ref().expect("refresh scripted"))
    }
    async fn subscribe(
        &self,
        proxy: &str,
        ctx: &ConnContext,
        ev: SubscribeEvent,
    ) -> BackendResult<SubscribeGrant> {
        self.record("subscribe", ctx, format!("{proxy} {}", ev.channel));
        answer(&self.script.subscribe)
    }
    async fn publish(
        &self,
        proxy: &str,
        ctx: &ConnContext,
        ev: PublishEvent,
    ) -> BackendResult<PublishGrant> {
        let data = String::from_utf8_lossy(&ev.data).into_owned();
        self.record("publish", ctx, format!("{proxy} {} {data}", ev.channel));
        answer(&self.script.publish)
    }
    async fn rpc(&self, ctx: &ConnContext, ev: RpcEvent) -> BackendResult<Option<Bytes>> {
        self.record("rpc", ctx, ev.method.clone());
        answer(self.script.rpc.as_ref().expect("rpc scripted"))
    }
}

fn node_with(script: Script, tweak: impl FnOnce(&mut NodeConfig)) -> (Node, Arc<Calls>) {
    let mut cfg = NodeConfig {
        token_hmac_secret_key: "secret".into(),
        namespaces: vec![Namespace {
            name: "proxied".into(),
            options: ChannelOptions {
                proxy_subscribe: true,
                proxy_publish: true,
                publish: true,
                presence: true,
                subscribe_proxy_name: "named".into(),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    tweak(&mut cfg);
    let node = Node::new(cfg).expect("config");
    let calls = Arc::new(Calls::default());
    let backend = Scripted {
        script,
        calls: calls.clone(),
    };
    assert!(node.set_backend(Arc::new(backend)).is_ok());
    (node, calls)
}

/// Everything queued so far, split into JSON lines, and the close frame if one was queued.
async fn drain(s: &Session) -> (Vec<Value>, Option<Option<CloseFrame>>) {
    let mut lines = Vec::new();
    let mut close = None;
    loop {
        let mut out = Vec::new();
        let step =
            tokio::time::timeout(Duration::from_millis(50), s.shared().queue.next(&mut out)).await;
        let Ok(step) = step else { break };
        for m in &out {
            for l in m.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_slice(l).expect("JSON line"));
            }
        }
        match step {
            WriterStep::Close(f) => {
                close = Some(f);
                break;
            }
            WriterStep::Data | WriterStep::Ping => {}
        }
    }
    (lines, close)
}

async fn frame(s: &mut Session, v: Value) -> bool {
    s.handle_frame(v.to_string().as_bytes()).await
}

fn v2(node: &Node) -> Session {
    node.new_session(Some(Generation::V2), Encoding::Json)
}

fn v1(node: &Node) -> Session {
    node.new_session(Some(Generation::V1), Encoding::Json)
}

fn grant(user: &str) -> ConnectGrant {
    ConnectGrant {
        user: user.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn v2_connect_without_token_takes_the_backends_user_data_and_channels() {
    let script = Script {
        connect: Some(Answer::Grant(Some(ConnectGrant {
            user: "42".into(),
            data: Some(Bytes::from_static(b"{\"hello\":1}")),
            info: Some(Bytes::from_static(b"{\"name\":\"Ann\"}")),
            subs: vec![ServerSub {
                channel: "news".into(),
                data: Some(Bytes::from_static(b"{\"welcome\":true}")),
                ..Default::default()
            }],
            meta: Some(Bytes::from_static(b"{\"tenant\":7}")),
            ..Default::default()
        }))),
        rpc: Some(Answer::Grant(Some(Bytes::from_static(b"{\"ok\":1}")))),
        ..Script::default()
    };
    let (node, calls) = node_with(script, |_| {});
    let mut s = v2(&node);
    let connect = json!({"id":1,"connect":{"data":{"a":1},"name":"js",
        "subs":{"asked":{}},"headers":{"Authorization":"Bearer x","X-Other":"no"}}});
    assert!(frame(&mut s, connect).await);
    let (lines, close) = drain(&s).await;
    assert!(close.is_none(), "{lines:?}");
    let c = &lines[0]["connect"];
    assert_eq!(c["data"], json!({"hello":1}));
    assert_eq!(c["subs"]["news"]["data"], json!({"welcome":true}));
    assert!(
        c["subs"].get("asked").is_none(),
        "client subs are only forwarded"
    );
    assert_eq!(s.shared().user(), "42");
    // The connect call saw the data, the client's channels and only the wanted emulated header.
    let got = calls.0.lock().clone();
    assert_eq!(
        got[0],
        (
            "connect".into(),
            String::new(),
            "{\"a\":1} asked authorization=Bearer x".into()
        )
    );
    assert!(frame(&mut s, json!({"id":2,"rpc":{"method":"m","data":{}}})).await);
    let (lines, _) = drain(&s).await;
    assert_eq!(lines[0], json!({"id":2,"rpc":{"data":{"ok":1}}}));
    assert_eq!(calls.0.lock()[1], ("rpc".into(), "42".into(), "m".into()));
}

#[tokio::test]
async fn backend_errors_and_disconnects_reach_the_client_in_its_generation() {
    let err = BackendError::Error {
        code: 1001,
        message: "nope".into(),
        temporary: true,
    };
    let (node, _) = node_with(
        Script {
            connect: Some(Answer::Fail(err.clone())),
            ..Script::default()
        },
        |_| {},
    );
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    let (lines, _) = drain(&s).await;
    assert_eq!(
        lines[0],
        json!({"id":1,"error":{"code":1001,"message":"nope","temporary":true}})
    );
    let mut s = v1(&node);
    assert!(frame(&mut s, json!({"id":1,"params":{}})).await);
    let (lines, _) = drain(&s).await;
    assert_eq!(
        lines[0],
        json!({"id":1,"error":{"code":1001,"message":"nope"}})
    );

    let bye = BackendError::Disconnect {
        code: 4000,
        reason: "bye \"now\"".into(),
        reconnect: true,
    };
    let (node, _) = node_with(
        Script {
            connect: Some(Answer::Fail(bye)),
            ..Script::default()
        },
        |_| {},
    );
    let mut s = v1(&node);
    assert!(!frame(&mut s, json!({"id":1,"params":{}})).await);
    let (_, close) = drain(&s).await;
    let f = close.flatten().expect("a close frame");
    assert_eq!(f.code, 4000);
    let advice: Value = serde_json::from_str(&f.reason).expect("v1 advice is JSON");
    assert_eq!(advice, json!({"reason":"bye \"now\"","reconnect":true}));
    let mut s = v2(&node);
    assert!(!frame(&mut s, json!({"id":1,"connect":{}})).await);
    let f = drain(&s).await.1.flatten().expect("a close frame");
    assert_eq!((f.code, f.reason.as_str()), (4000, "bye \"now\""));

    // A failed call: 100, temporary on v2, the connection stays.
    let (node, _) = node_with(
        Script {
            connect: Some(Answer::Fail(BackendError::Failed)),
            ..Script::default()
        },
        |_| {},
    );
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    let (lines, close) = drain(&s).await;
    assert!(close.is_none());
    assert_eq!(lines[0]["error"]["code"], 100);
    assert_eq!(lines[0]["error"]["temporary"], true);
}

#[tokio::test]
async fn no_credentials_from_the_backend_is_anonymous_only_when_allowed() {
    let script = Script {
        connect: Some(Answer::Grant(None)),
        ..Script::default()
    };
    let (node, _) = node_with(script.clone(), |_| {});
    let mut s = v2(&node);
    assert!(!frame(&mut s, json!({"id":1,"connect":{}})).await);
    assert_eq!(drain(&s).await.1.flatten().map(|f| f.code), Some(3501));
    let (node, _) = node_with(script, |c| c.client_anonymous = true);
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    assert!(drain(&s).await.0[0]["connect"]["client"].is_string());
    // A grant with an empty user is anonymous even with anonymous mode off.
    let (node, _) = node_with(
        Script {
            connect: Some(Answer::Grant(Some(grant("")))),
            ..Script::default()
        },
        |_| {},
    );
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    assert!(drain(&s).await.0[0]["connect"]["client"].is_string());
}

#[tokio::test]
async fn a_token_connect_never_asks_the_backend() {
    let (node, calls) = node_with(
        Script {
            connect: Some(Answer::Grant(Some(grant("proxy-user")))),
            ..Script::default()
        },
        |_| {},
    );
    let token = rotor_core::auth::sign_hs256("secret", r#"{"sub":"jwt-user"}"#);
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{"token":token}})).await);
    drain(&s).await;
    assert_eq!(s.shared().user(), "jwt-user");
    assert!(calls.0.lock().is_empty());
}

#[tokio::test]
async fn proxied_subscribe_and_publish() {
    let script = Script {
        connect: Some(Answer::Grant(Some(grant("7")))),
        subscribe: Answer::Grant(SubscribeGrant {
            info: Some(Bytes::from_static(b"{\"role\":\"admin\"}")),
            data: Some(Bytes::from_static(b"{\"sub\":\"data\"}")),
            overrides: SubOverride {
                presence: Some(false),
                ..Default::default()
            },
            ..Default::default()
        }),
        publish: Answer::Grant(PublishGrant {
            data: Some(Bytes::from_static(b"{\"replaced\":true}")),
            skip_history: false,
        }),
        ..Script::default()
    };
    let (node, calls) = node_with(script, |_| {});
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    assert!(
        frame(
            &mut s,
            json!({"id":2,"subscribe":{"channel":"proxied:room"}})
        )
        .await
    );
    assert!(
        frame(
            &mut s,
            json!({"id":3,"publish":{"channel":"proxied:room","data":{"orig":1}}})
        )
        .await
    );
    let (lines, close) = drain(&s).await;
    assert!(close.is_none(), "{lines:?}");
    let sub = lines
        .iter()
        .find(|l| l["id"] == 2)
        .expect("subscribe reply");
    assert_eq!(sub["subscribe"]["data"], json!({"sub":"data"}));
    let push = lines
        .iter()
        .find(|l| l.get("push").is_some())
        .expect("publication push");
    assert_eq!(push["push"]["pub"]["data"], json!({"replaced":true}));
    assert_eq!(
        push["push"]["pub"]["info"]["chan_info"],
        json!({"role":"admin"}),
        "{push}"
    );
    // The override switched presence off for this subscription.
    assert!(
        frame(
            &mut s,
            json!({"id":4,"presence":{"channel":"proxied:room"}})
        )
        .await
    );
    let (lines, _) = drain(&s).await;
    assert_eq!(lines[0]["presence"], json!({"presence":{}}), "{lines:?}");
    let got = calls.0.lock().clone();
    assert_eq!(got[1].2, "named proxied:room");
    assert_eq!(got[2].2, " proxied:room {\"orig\":1}");
}

#[tokio::test]
async fn refused_subscribe_and_publish_keep_the_connection() {
    let refuse = BackendError::Error {
        code: 1002,
        message: "forbidden".into(),
        temporary: false,
    };
    let script = Script {
        connect: Some(Answer::Grant(Some(grant("7")))),
        subscribe: Answer::Fail(refuse.clone()),
        publish: Answer::Fail(refuse),
        ..Script::default()
    };
    let (node, _) = node_with(script, |_| {});
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    assert!(
        frame(
            &mut s,
            json!({"id":2,"subscribe":{"channel":"proxied:room"}})
        )
        .await
    );
    assert!(
        frame(
            &mut s,
            json!({"id":3,"publish":{"channel":"proxied:room","data":{}}})
        )
        .await
    );
    let (lines, close) = drain(&s).await;
    assert!(close.is_none());
    for id in [2, 3] {
        let l = lines.iter().find(|l| l["id"] == id).expect("reply");
        assert_eq!(l["error"], json!({"code":1002,"message":"forbidden"}));
    }
    assert!(s.shared().channels().is_empty());
}

#[tokio::test]
async fn send_and_rpc_without_a_handler() {
    let (node, _) = node_with(
        Script {
            connect: Some(Answer::Grant(Some(grant("7")))),
            ..Script::default()
        },
        |_| {},
    );
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    assert!(frame(&mut s, json!({"id":2,"rpc":{"method":"m"}})).await);
    let (lines, _) = drain(&s).await;
    assert_eq!(lines[1]["error"]["code"], 108);
    assert!(!frame(&mut s, json!({"send":{"data":{}}})).await);
    assert_eq!(drain(&s).await.1.flatten().map(|f| f.code), Some(3508));
    // v1: send is dropped and the connection goes on.
    let mut s = v1(&node);
    assert!(frame(&mut s, json!({"id":1,"params":{}})).await);
    assert!(frame(&mut s, json!({"method":8,"params":{"data":{}}})).await);
    assert!(frame(&mut s, json!({"id":2,"method":7})).await);
    let (lines, close) = drain(&s).await;
    assert!(close.is_none());
    assert_eq!(lines.last().map(|l| l["id"].clone()), Some(json!(2)));
}

#[tokio::test]
async fn a_non_json_payload_for_a_json_client_is_a_failed_call() {
    let (node, _) = node_with(
        Script {
            connect: Some(Answer::Grant(Some(grant("7")))),
            rpc: Some(Answer::Grant(Some(Bytes::from_static(b"\xff not json")))),
            ..Script::default()
        },
        |_| {},
    );
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    assert!(frame(&mut s, json!({"id":2,"rpc":{"method":"m"}})).await);
    let (lines, close) = drain(&s).await;
    assert!(close.is_none());
    assert_eq!(lines[1]["error"]["code"], 100);
}

#[tokio::test]
async fn the_server_refreshes_an_expiring_connection_through_the_backend() {
    let now = rotor_core::node::unix_now();
    let extend = RefreshGrant {
        expire_at: Some(now + 3600),
        ..Default::default()
    };
    let script = Script {
        connect: Some(Answer::Grant(Some(ConnectGrant {
            user: "7".into(),
            expire_at: Some(now + 1),
            meta: Some(Bytes::from_static(b"{\"m\":1}")),
            ..Default::default()
        }))),
        refresh: Some(Answer::Grant(Some(extend))),
        ..Script::default()
    };
    let (node, calls) = node_with(script, |_| {});
    let _tick = node.start();
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    let (lines, _) = drain(&s).await;
    // Server-side refresh: the client is not told to refresh itself.
    assert!(lines[0]["connect"].get("expires").is_none(), "{lines:?}");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let got = calls.0.lock().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1], ("refresh".into(), "7".into(), "{\"m\":1}".into()));
    assert!(
        drain(&s).await.1.is_none(),
        "still connected after the refresh"
    );
    // A client refresh is then a bad request.
    assert!(!frame(&mut s, json!({"id":2,"refresh":{"token":"t"}})).await);
    assert_eq!(drain(&s).await.1.flatten().map(|f| f.code), Some(3501));

    // Told it expired: closed with 3005, which reconnects.
    let now = rotor_core::node::unix_now();
    let script = Script {
        connect: Some(Answer::Grant(Some(ConnectGrant {
            user: "7".into(),
            expire_at: Some(now + 1),
            ..Default::default()
        }))),
        refresh: Some(Answer::Grant(Some(RefreshGrant {
            expired: true,
            ..Default::default()
        }))),
        ..Script::default()
    };
    let (node, _) = node_with(script, |_| {});
    let _tick = node.start();
    let mut s = v2(&node);
    assert!(frame(&mut s, json!({"id":1,"connect":{}})).await);
    drain(&s).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let f = drain(&s).await.1.flatten().expect("closed");
    assert_eq!((f.code, f.reason.as_str()), (3005, "connection expired"));
}
