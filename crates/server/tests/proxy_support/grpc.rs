//! A real gRPC backend for the proxy tests: a tonic server of
//! `centrifugal.centrifugo.proxy.CentrifugoProxy` (the generated `rotor_proxy::proto`) on a free
//! port, recording every call with its metadata and answering by a fixed, documented rule so the
//! tests can predict each answer:
//!
//! * Connect: data `{"deny":true}` → error 1000 "denied"; else user `grpc-user`, info
//!   `{"via":"grpc"}`, data `{"grpc":"welcome"}`, channel `grpc-news`.
//! * RPC: method `fail` → error 1001 "grpc says no"; else data `{"method":M,"echo":<data>}`.
//! * Subscribe: a channel ending in `denied` → error 1403 "grpc forbidden"; else info
//!   `{"chan":"grpc"}`, data `{"sub":"grpc"}`.
//! * Publish: data `{"grpc_replaced":<data>}`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rotor_proxy::proto::centrifugo_proxy_server::{CentrifugoProxy, CentrifugoProxyServer};
use rotor_proxy::proto::{
    ConnectRequest, ConnectResponse, ConnectResult, Error, PublishRequest, PublishResponse,
    PublishResult, RpcRequest, RpcResponse, RpcResult, SubscribeRequest, SubscribeResponse,
    SubscribeResult,
};
use tonic::{Request, Response, Status};

/// One request the gRPC backend received.
#[derive(Debug, Clone)]
pub enum GReq {
    Connect(ConnectRequest),
    Rpc(RpcRequest),
    Subscribe(SubscribeRequest),
    Publish(PublishRequest),
}

/// A call: the request and its metadata (lower-case keys, as tonic gives them).
#[derive(Debug, Clone)]
pub struct GSeen {
    pub req: GReq,
    pub metadata: Vec<(String, String)>,
}

impl GSeen {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Svc {
    seen: Arc<Mutex<Vec<GSeen>>>,
}

impl Svc {
    fn record<T>(&self, r: &Request<T>, req: GReq) {
        let metadata = r
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => Some((
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )),
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        self.seen.lock().unwrap().push(GSeen { req, metadata });
    }
}

fn json_bytes(v: serde_json::Value) -> Bytes {
    Bytes::from(v.to_string())
}

fn as_json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or(serde_json::Value::Null)
}

fn err(code: u32, message: &str) -> Option<Error> {
    Some(Error {
        code,
        message: message.to_string(),
        temporary: false,
    })
}

#[tonic::async_trait]
impl CentrifugoProxy for Svc {
    async fn connect(
        &self,
        r: Request<ConnectRequest>,
    ) -> Result<Response<ConnectResponse>, Status> {
        self.record(&r, GReq::Connect(r.get_ref().clone()));
        let req = r.into_inner();
        if as_json(&req.data) == serde_json::json!({"deny": true}) {
            return Ok(Response::new(ConnectResponse {
                error: err(1000, "denied"),
                ..Default::default()
            }));
        }
        Ok(Response::new(ConnectResponse {
            result: Some(ConnectResult {
                user: "grpc-user".into(),
                info: json_bytes(serde_json::json!({"via": "grpc"})),
                data: json_bytes(serde_json::json!({"grpc": "welcome"})),
                channels: vec!["grpc-news".into()],
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn rpc(&self, r: Request<RpcRequest>) -> Result<Response<RpcResponse>, Status> {
        self.record(&r, GReq::Rpc(r.get_ref().clone()));
        let req = r.into_inner();
        if req.method == "fail" {
            return Ok(Response::new(RpcResponse {
                error: err(1001, "grpc says no"),
                ..Default::default()
            }));
        }
        Ok(Response::new(RpcResponse {
            result: Some(RpcResult {
                data: json_bytes(
                    serde_json::json!({"method": req.method, "echo": as_json(&req.data)}),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<SubscribeResponse>, Status> {
        self.record(&r, GReq::Subscribe(r.get_ref().clone()));
        let req = r.into_inner();
        if req.channel.ends_with("denied") {
            return Ok(Response::new(SubscribeResponse {
                error: err(1403, "grpc forbidden"),
                ..Default::default()
            }));
        }
        Ok(Response::new(SubscribeResponse {
            result: Some(SubscribeResult {
                info: json_bytes(serde_json::json!({"chan": "grpc"})),
                data: json_bytes(serde_json::json!({"sub": "grpc"})),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn publish(
        &self,
        r: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        self.record(&r, GReq::Publish(r.get_ref().clone()));
        let req = r.into_inner();
        Ok(Response::new(PublishResponse {
            result: Some(PublishResult {
                data: json_bytes(serde_json::json!({"grpc_replaced": as_json(&req.data)})),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// The running gRPC backend, stopped when dropped.
pub struct GrpcBackend {
    pub addr: SocketAddr,
    svc: Svc,
    task: tokio::task::JoinHandle<()>,
}

impl GrpcBackend {
    pub async fn start() -> GrpcBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gRPC backend");
        let addr = listener.local_addr().unwrap();
        let svc = Svc::default();
        let incoming = futures_util::stream::unfold(listener, |l| async move {
            let next = l.accept().await.map(|(s, _)| s);
            Some((next, l))
        });
        let server = CentrifugoProxyServer::new(svc.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(incoming)
                .await;
        });
        GrpcBackend { addr, svc, task }
    }

    /// `grpc://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<GSeen> {
        self.svc.seen.lock().unwrap().clone()
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
