//! The gRPC server API end to end (GRPC-API.md §1, §2, §4, §5): the real `rotor` binary with
//! `grpc_api` on, called by a tonic client with the messages generated from the same
//! `proto/api_v1.proto` / `proto/api_v6.proto` (OUT_DIR of this package). Covers the shapes
//! that differ between `api.Centrifugo` and `centrifugal.centrifugo.api.CentrifugoApi`, the key
//! check, the empty-key rule for a loopback peer, the transport error mode with its details,
//! UNIMPLEMENTED for PRO / unknown methods, the receive limit, undecodable bodies, TLS (own pair,
//! inherited 2.x pair, mutual), reflection, the metrics and a bind failure at start.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use prost::Message;
use serde_json::{json, Value};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tonic::codegen::http;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

#[allow(clippy::all, dead_code, missing_docs)]
mod v1 {
    include!(concat!(env!("OUT_DIR"), "/api.rs"));
}

#[allow(clippy::all, dead_code, missing_docs)]
mod v6 {
    include!(concat!(env!("OUT_DIR"), "/centrifugal.centrifugo.api.rs"));
}

const V1: &str = "/api.Centrifugo/";
const ALIAS: &str = "/api.Centrifuge/";
const V6: &str = "/centrifugal.centrifugo.api.CentrifugoApi/";

/// `google.rpc.Status` and `google.protobuf.Any`, to read `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// Field 1 as a varint: not a `string` on the wire, so no `PublishRequest` decodes from it.
#[derive(Clone, PartialEq, Message)]
struct WrongWireType {
    #[prost(uint64, tag = "1")]
    channel: u64,
}

/// `PublishRequest` with raw bytes where the schema has `string channel`.
#[derive(Clone, PartialEq, Message)]
struct RawPublish {
    #[prost(bytes = "vec", tag = "1")]
    channel: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    data: Vec<u8>,
}

/// A running server with `grpc_api` on its own free port.
struct Api {
    server: Server,
    grpc_port: u16,
}

impl Api {
    /// Starts rotor with `extra` (which should enable the API) on gRPC port 0 and reads the
    /// port it bound from its `grpc_api listening on ADDR` line (no race with other tests).
    async fn start(mut extra: Value) -> Api {
        if let Some(section) = extra.get_mut("grpc_api").and_then(Value::as_object_mut) {
            section.insert("port".into(), json!(0));
        } else {
            extra["grpc_api_port"] = json!(0);
        }
        let server = Server::start(extra).await;
        let needle = "grpc_api listening on 0.0.0.0:";
        let out = server.wait_output(needle).await;
        let grpc_port = out
            .lines()
            .find_map(|l| l.strip_prefix(needle))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {needle:?} line in:\n{out}"));
        Api { server, grpc_port }
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://127.0.0.1:{}", self.grpc_port))
            .unwrap()
            .connect_timeout(WAIT)
            .timeout(WAIT)
            .connect()
            .await
            .expect("h2c connect")
    }
}

/// One unary call with optional metadata.
async fn call<Req, Resp>(
    ch: &Channel,
    path: &str,
    req: Req,
    meta: &[(&'static str, &str)],
) -> Result<Resp, Status>
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut r = Request::new(req);
    for (k, v) in meta {
        r.metadata_mut().insert(*k, v.parse().unwrap());
    }
    let path = http::uri::PathAndQuery::try_from(path.to_string()).unwrap();
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(r, path, codec).await.map(|r| r.into_inner())
}

fn path(service: &str, method: &str) -> String {
    format!("{service}{method}")
}

fn v1_publish(channel: &str, data: &[u8]) -> v1::PublishRequest {
    v1::PublishRequest {
        channel: channel.into(),
        data: data.to_vec().into(),
    }
}

fn v6_publish(channel: &str, data: &[u8]) -> v6::PublishRequest {
    v6::PublishRequest {
        channel: channel.into(),
        data: data.to_vec().into(),
        ..Default::default()
    }
}

fn history_config() -> Value {
    json!({"grpc_api": true, "prometheus": true,
        "namespaces": [{"name": "hh", "history_size": 10, "history_lifetime": 60}]})
}

#[tokio::test]
async fn publish_and_shapes_of_both_generations() {
    let api = Api::start(history_config()).await;
    // Empty key: a loopback peer may call (Rotor's rule, with a warning at start).
    let out = api.server.wait_output("grpc_api_key is not set").await;
    assert!(out.contains("only from"), "{out}");
    let ch = api.channel().await;

    // Publish: 2.x leaves `result` unset, v6 sets it; the alias is the same handler.
    for svc in [V1, ALIAS] {
        let r: v1::PublishResponse = call(
            &ch,
            &path(svc, "Publish"),
            v1_publish("hh:a", b"{\"n\":1}"),
            &[],
        )
        .await
        .unwrap();
        assert_eq!((r.error, r.result), (None, None), "{svc}");
    }
    let r: v6::PublishResponse = call(
        &ch,
        &path(V6, "Publish"),
        v6_publish("hh:a", b"{\"n\":3}"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.error, None);
    let res = r.result.expect("v6 sets result");
    assert_eq!(res.offset, 3);
    assert!(!res.epoch.is_empty());

    // Errors inside the response, in each generation's words; trap 7 (check order).
    let r: v1::PublishResponse = call(&ch, &path(V1, "Publish"), v1_publish("nope:a", b"1"), &[])
        .await
        .unwrap();
    let e = r.error.unwrap();
    assert_eq!((e.code, e.message.as_str()), (102, "namespace not found"));
    let r: v6::PublishResponse = call(&ch, &path(V6, "Publish"), v6_publish("nope:a", b"1"), &[])
        .await
        .unwrap();
    let e = r.error.unwrap();
    assert_eq!((e.code, e.message.as_str()), (102, "unknown channel"));
    assert_eq!(r.result, None);
    let r: v1::PublishResponse = call(&ch, &path(V1, "Publish"), v1_publish("nope:a", b""), &[])
        .await
        .unwrap();
    assert_eq!(r.error.unwrap().code, 107, "2.x checks the payload first");
    let r: v6::PublishResponse = call(&ch, &path(V6, "Publish"), v6_publish("nope:a", b""), &[])
        .await
        .unwrap();
    assert_eq!(r.error.unwrap().code, 102, "v6 checks the namespace first");

    // History: 2.x everything, v6 nothing without a limit, everything with -1.
    let r: v1::HistoryResponse = call(
        &ch,
        &path(V1, "History"),
        v1::HistoryRequest {
            channel: "hh:a".into(),
        },
        &[],
    )
    .await
    .unwrap();
    let pubs = r.result.unwrap().publications;
    assert_eq!(pubs.len(), 3);
    assert_eq!(&pubs[0].data[..], b"{\"n\":1}");
    assert!(pubs.iter().all(|p| p.uid.is_empty() && p.info.is_none()));
    let hist = |limit| v6::HistoryRequest {
        channel: "hh:a".into(),
        limit,
        ..Default::default()
    };
    let r: v6::HistoryResponse = call(&ch, &path(V6, "History"), hist(0), &[]).await.unwrap();
    let h = r.result.unwrap();
    assert_eq!((h.publications.len(), h.offset), (0, 3));
    let r: v6::HistoryResponse = call(&ch, &path(V6, "History"), hist(-1), &[])
        .await
        .unwrap();
    let h = r.result.unwrap();
    assert_eq!(
        h.publications.iter().map(|p| p.offset).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    // Channels: a list in 2.x, a map with counts in v6 (trap 6).
    let (mut ws, _) = api.server.v2_client("u1").await;
    ws.subscribe_v2("live").await;
    let r: v1::ChannelsResponse = call(&ch, &path(V1, "Channels"), v1::ChannelsRequest {}, &[])
        .await
        .unwrap();
    assert_eq!(r.result.unwrap().channels, ["live"]);
    let r: v6::ChannelsResponse = call(
        &ch,
        &path(V6, "Channels"),
        v6::ChannelsRequest::default(),
        &[],
    )
    .await
    .unwrap();
    let chans = r.result.unwrap().channels;
    assert_eq!(chans.get("live").map(|c| c.num_clients), Some(1));

    // Info: v6 counts subscriptions; 2.x has no metrics here.
    let r: v1::InfoResponse = call(&ch, &path(V1, "Info"), v1::InfoRequest {}, &[])
        .await
        .unwrap();
    let nodes = r.result.unwrap().nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].num_clients, 1);
    assert!(nodes[0].metrics.is_none());
    let r: v6::InfoResponse = call(&ch, &path(V6, "Info"), v6::InfoRequest {}, &[])
        .await
        .unwrap();
    let nodes = r.result.unwrap().nodes;
    assert_eq!((nodes[0].num_clients, nodes[0].num_subs), (1, 1));

    // Methods without result fields: unset in 2.x, empty in v6.
    let r: v1::HistoryRemoveResponse = call(
        &ch,
        &path(V1, "HistoryRemove"),
        v1::HistoryRemoveRequest {
            channel: "hh:a".into(),
        },
        &[],
    )
    .await
    .unwrap();
    assert_eq!((r.error, r.result), (None, None));
    let r: v6::DisconnectResponse = call(
        &ch,
        &path(V6, "Disconnect"),
        v6::DisconnectRequest {
            user: "nobody".into(),
            ..Default::default()
        },
        &[],
    )
    .await
    .unwrap();
    assert_eq!((r.error, r.result), (None, Some(v6::DisconnectResult {})));

    // RPC: no handlers, 104 in each generation's words.
    let r: v1::RpcResponse = call(
        &ch,
        &path(V1, "RPC"),
        v1::RpcRequest {
            method: "m".into(),
            params: Default::default(),
        },
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.error.unwrap().message, "method not found");
    let r: v6::RpcResponse = call(
        &ch,
        &path(V6, "RPC"),
        v6::RpcRequest {
            method: "m".into(),
            params: Default::default(),
        },
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.error.unwrap().message, "not found");

    // Batch: one reply per command, a command without a known field → 104.
    let batch = v6::BatchRequest {
        commands: vec![
            v6::Command {
                publish: Some(v6_publish("hh:b", b"{}")),
                ..Default::default()
            },
            v6::Command::default(),
            v6::Command {
                info: Some(v6::InfoRequest {}),
                ..Default::default()
            },
        ],
        parallel: false,
    };
    let r: v6::BatchResponse = call(&ch, &path(V6, "Batch"), batch, &[]).await.unwrap();
    assert_eq!(r.replies.len(), 3);
    assert_eq!(r.replies[0].publish.as_ref().map(|p| p.offset), Some(1));
    assert_eq!(r.replies[1].error.as_ref().map(|e| e.code), Some(104));
    assert!(r.replies[2].info.is_some());

    // The calls are counted with protocol="grpc".
    let metrics = http()
        .get(api.server.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("centrifugo_api_command_duration_seconds_count")
                && l.contains("protocol=\"grpc\"")
                && l.contains("method=\"publish\"")
        })
        .unwrap_or_else(|| panic!("no grpc publish series in:\n{metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 6.0, "{line}");
    ws.close().await;
}

#[tokio::test]
async fn key_must_match_exactly_on_both_services_and_reflection() {
    let api =
        Api::start(json!({"grpc_api": {"enabled": true, "key": "gk", "reflection": true}})).await;
    let ch = api.channel().await;
    let ok = [("authorization", "apikey gk")];
    let r: v1::PublishResponse = call(&ch, &path(V1, "Publish"), v1_publish("a", b"1"), &ok)
        .await
        .unwrap();
    assert_eq!(r.error, None);
    let r: v6::PublishResponse = call(&ch, &path(V6, "Publish"), v6_publish("a", b"1"), &ok)
        .await
        .unwrap();
    assert!(r.result.is_some());
    for bad in [
        None,
        Some("Apikey gk"),
        Some("apikey  gk"),
        Some("apikey gk "),
        Some("bearer gk"),
        Some("apikey g"),
    ] {
        let meta: Vec<(&'static str, &str)> =
            bad.map(|v| ("authorization", v)).into_iter().collect();
        for svc in [V1, ALIAS] {
            let e = call::<_, v1::PublishResponse>(
                &ch,
                &path(svc, "Publish"),
                v1_publish("a", b"1"),
                &meta,
            )
            .await
            .unwrap_err();
            assert_eq!(
                (e.code(), e.message()),
                (Code::Unauthenticated, "unauthenticated"),
                "{bad:?}"
            );
        }
        let e =
            call::<_, v6::PublishResponse>(&ch, &path(V6, "Publish"), v6_publish("a", b"1"), &meta)
                .await
                .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{bad:?}");
    }
    // Reflection is guarded too (Centrifugo leaves it open).
    let e = list_services(&ch, &[]).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let names = list_services(&ch, &ok).await.unwrap();
    let alpha = list_services_v1alpha(&ch, &ok).await.unwrap();
    let api_only = |l: &[String]| -> Vec<String> {
        l.iter()
            .filter(|n| !n.starts_with("grpc.reflection."))
            .cloned()
            .collect()
    };
    assert_eq!(
        api_only(&names),
        api_only(&alpha),
        "v1 and v1alpha list the same API"
    );
    for want in [
        "api.Centrifugo",
        "api.Centrifuge",
        "centrifugal.centrifugo.api.CentrifugoApi",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
}

/// A reflection `list_services` of one protocol version (`v1`, `v1alpha`): the service names.
macro_rules! list_services_fn {
    ($name:ident, $v:ident) => {
        async fn $name(ch: &Channel, meta: &[(&'static str, &str)]) -> Result<Vec<String>, Status> {
            use futures_util::StreamExt;
            use tonic_reflection::pb::$v::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$v::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$v::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$v::ServerReflectionRequest;
            let req = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut r = Request::new(futures_util::stream::iter([req]));
            for (k, v) in meta {
                r.metadata_mut().insert(*k, v.parse().unwrap());
            }
            let mut stream = ServerReflectionClient::new(ch.clone())
                .server_reflection_info(r)
                .await?
                .into_inner();
            let first = stream.next().await.expect("one response")?;
            match first.message_response {
                Some(MessageResponse::ListServicesResponse(l)) => {
                    Ok(l.service.into_iter().map(|s| s.name).collect())
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
}

list_services_fn!(list_services, v1);
list_services_fn!(list_services_v1alpha, v1alpha);

#[tokio::test]
async fn transport_error_mode_per_call_and_global() {
    let api = Api::start(history_config()).await;
    let ch = api.channel().await;
    let mode = [("x-centrifugo-error-mode", "transport")];
    let e = call::<_, v6::PublishResponse>(
        &ch,
        &path(V6, "Publish"),
        v6_publish("nope:a", b"1"),
        &mode,
    )
    .await
    .unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::NotFound, "unknown channel"));
    let details = RpcStatus::decode(e.details()).unwrap();
    assert_eq!(details.code, Code::NotFound as i32);
    assert_eq!(details.message, "unknown channel");
    assert_eq!(details.details.len(), 1);
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/centrifugal.centrifugo.api.Error"
    );
    let inner = v6::Error::decode(&details.details[0].value[..]).unwrap();
    assert_eq!(
        (inner.code, inner.message.as_str()),
        (102, "unknown channel")
    );

    let e = call::<_, v6::PublishResponse>(&ch, &path(V6, "Publish"), v6_publish("", b"1"), &mode)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "bad request")
    );
    let since = v6::HistoryRequest {
        channel: "hh:a".into(),
        since: Some(v6::StreamPosition {
            offset: 0,
            epoch: "other".into(),
        }),
        ..Default::default()
    };
    let e = call::<_, v6::HistoryResponse>(&ch, &path(V6, "History"), since, &mode)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    // Without the header, or another value: the error stays in the body.
    for meta in [&[][..], &[("x-centrifugo-error-mode", "Transport")][..]] {
        let r: v6::PublishResponse =
            call(&ch, &path(V6, "Publish"), v6_publish("nope:a", b"1"), meta)
                .await
                .unwrap();
        assert_eq!(r.error.unwrap().code, 102);
    }
    // 2.x never converts; Batch never; Broadcast only its top-level error.
    let r: v1::PublishResponse = call(&ch, &path(V1, "Publish"), v1_publish("nope:a", b"1"), &mode)
        .await
        .unwrap();
    assert_eq!(r.error.unwrap().code, 102);
    let batch = v6::BatchRequest {
        commands: vec![v6::Command {
            publish: Some(v6_publish("nope:a", b"1")),
            ..Default::default()
        }],
        parallel: true,
    };
    let r: v6::BatchResponse = call(&ch, &path(V6, "Batch"), batch, &mode).await.unwrap();
    assert_eq!(r.replies[0].error.as_ref().map(|e| e.code), Some(102));
    let bc = |channels: &[&str]| v6::BroadcastRequest {
        channels: channels.iter().map(|s| s.to_string()).collect(),
        data: b"1".to_vec().into(),
        ..Default::default()
    };
    let r: v6::BroadcastResponse =
        call(&ch, &path(V6, "Broadcast"), bc(&["hh:a", "nope:a"]), &mode)
            .await
            .unwrap();
    let responses = r.result.unwrap().responses;
    assert!(responses[0].result.is_some());
    assert_eq!(responses[1].error.as_ref().map(|e| e.code), Some(102));
    let e = call::<_, v6::BroadcastResponse>(&ch, &path(V6, "Broadcast"), bc(&[]), &mode)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    drop(api);

    let api = Api::start(json!({"grpc_api": {"enabled": true, "error_mode": "transport"}})).await;
    let ch = api.channel().await;
    let e =
        call::<_, v6::PublishResponse>(&ch, &path(V6, "Publish"), v6_publish("nope:a", b"1"), &[])
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_input_gets_grpc_codes_and_the_server_stays_healthy() {
    let api =
        Api::start(json!({"grpc_api": {"enabled": true, "max_receive_message_size": 1000}})).await;
    let ch = api.channel().await;
    // PRO methods (not declared), another service's method, an unknown service.
    for p in [
        path(V6, "Connections"),
        path(V6, "DeviceRegister"),
        path(V1, "Batch"),
        "/nope.Service/Method".to_string(),
    ] {
        let e = call::<_, v6::PublishResponse>(&ch, &p, v6::InfoRequest {}, &[])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented, "{p}");
        assert!(
            e.message().ends_with("not implemented"),
            "{p}: {}",
            e.message()
        );
    }
    let e = call::<_, v6::PublishResponse>(&ch, &path(V6, "Connections"), v6::InfoRequest {}, &[])
        .await
        .unwrap_err();
    assert_eq!(e.message(), "method Connections not implemented");

    // Over the receive limit: RESOURCE_EXHAUSTED; just under it works.
    let e = call::<_, v6::PublishResponse>(
        &ch,
        &path(V6, "Publish"),
        v6_publish("a", &[b'1'; 1200]),
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let r: v6::PublishResponse = call(
        &ch,
        &path(V6, "Publish"),
        v6_publish("a", &[b'1'; 900]),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.error, None);

    // Not the method's message, invalid UTF-8 in a string: INVALID_ARGUMENT, both services.
    for svc in [V1, V6] {
        let e = call::<_, v6::PublishResponse>(
            &ch,
            &path(svc, "Publish"),
            WrongWireType { channel: 7 },
            &[],
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{svc}: {e:?}");
        let bad = RawPublish {
            channel: vec![b'a', 0xff, 0xfe],
            data: b"1".to_vec(),
        };
        let e = call::<_, v6::PublishResponse>(&ch, &path(svc, "Publish"), bad, &[])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{svc}: {e:?}");
        assert!(e.message().contains("UTF-8"), "{}", e.message());
    }
    let r: v1::PublishResponse = call(&ch, &path(V1, "Publish"), v1_publish("a", b"1"), &[])
        .await
        .unwrap();
    assert_eq!(r.error, None);
    api.server.assert_alive();
}

#[tokio::test]
async fn default_receive_limit_is_4_mib() {
    let api = Api::start(json!({"grpc_api": true})).await;
    let ch = api.channel().await;
    let big = vec![b'1'; 4 * 1024 * 1024 + 16];
    let e = call::<_, v1::PublishResponse>(&ch, &path(V1, "Publish"), v1_publish("a", &big), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let r: v1::PublishResponse = call(
        &ch,
        &path(V1, "Publish"),
        v1_publish("a", &big[..4_000_000]),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.error, None);
}

/// A self-signed pair for localhost: (cert PEM, key PEM, DER for the client's roots).
fn self_signed() -> (String, String, CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
        CertificateDer::from(ck.cert.der().to_vec()),
    )
}

/// A channel over TLS (ALPN h2) trusting `root`, optionally with a client certificate.
async fn tls_channel(
    port: u16,
    root: CertificateDer<'static>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(root).unwrap();
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::from_shared(format!("http://localhost:{port}"))
        .unwrap()
        .connect_timeout(WAIT)
        .timeout(WAIT)
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
}

async fn publishes_over(ch: &Channel) -> bool {
    call::<_, v6::PublishResponse>(ch, &path(V6, "Publish"), v6_publish("a", b"1"), &[])
        .await
        .is_ok_and(|r| r.result.is_some())
}

#[tokio::test]
async fn tls_own_pair_inherited_pair_and_mutual() {
    // v6: the pair given inline as PEM text.
    let (cert, key, der) = self_signed();
    let api = Api::start(json!({"grpc_api": {"enabled": true,
        "tls": {"enabled": true, "cert_pem": cert, "key_pem": key}}}))
    .await;
    let ch = tls_channel(api.grpc_port, der.clone(), None).await.unwrap();
    assert!(publishes_over(&ch).await);
    // Plain h2c to the TLS port gets no answer.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", api.grpc_port))
        .unwrap()
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    if let Ok(plain) = plain {
        assert!(!publishes_over(&plain).await);
    }
    drop(api);

    // 2.x: `grpc_api: true` with the HTTP `tls` pair (files) inherits it, unless disabled.
    let dir = std::env::temp_dir().join(format!(
        "rotor-grpc-tls-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, der) = self_signed();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let tls = json!({"grpc_api": true, "tls": true,
        "tls_cert": dir.join("cert.pem"), "tls_key": dir.join("key.pem")});
    let api = Api::start(tls.clone()).await;
    let ch = tls_channel(api.grpc_port, der.clone(), None).await.unwrap();
    assert!(publishes_over(&ch).await);
    drop(api);
    let mut off = tls;
    off["grpc_api_tls_disable"] = json!(true);
    let api = Api::start(off).await;
    assert!(
        publishes_over(&api.channel().await).await,
        "h2c when disabled"
    );
    drop(api);

    // Mutual TLS: a client certificate signed by client_ca (base64 PEM) is required.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = rcgen::CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    use base64::Engine as _;
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca.pem());
    let (cert, key, der) = self_signed();
    let api = Api::start(
        json!({"grpc_api": {"enabled": true, "tls": {"enabled": true,
        "cert_pem": cert, "key_pem": key, "client_ca_pem": ca_b64}}}),
    )
    .await;
    let anonymous = tls_channel(api.grpc_port, der.clone(), None).await;
    if let Ok(ch) = anonymous {
        assert!(!publishes_over(&ch).await, "no client certificate");
    }
    let chain = vec![CertificateDer::from(client_cert.der().to_vec())];
    let key = PrivateKeyDer::try_from(client_key.serialize_der()).unwrap();
    let ch = tls_channel(api.grpc_port, der, Some((chain, key)))
        .await
        .unwrap();
    assert!(publishes_over(&ch).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn taken_port_or_bad_error_mode_stop_the_start() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut cfg = base_config(free_port());
    cfg["grpc_api"] = json!(true);
    cfg["grpc_api_port"] = json!(port);
    let (status, out) = run_rotor_with_config_text(&cfg.to_string(), Duration::from_secs(10));
    let status = status.expect("rotor exits by itself");
    assert!(!status.success(), "{out}");
    assert!(
        out.contains(&format!("grpc_api: cannot listen on 0.0.0.0:{port}")),
        "{out}"
    );

    let mut cfg = base_config(free_port());
    cfg["grpc_api"] = json!({"enabled": true, "error_mode": "custom"});
    let (status, out) = run_rotor_with_config_text(&cfg.to_string(), Duration::from_secs(10));
    assert!(!status.expect("rotor exits by itself").success(), "{out}");
    assert!(out.contains("grpc_api.error_mode"), "{out}");
    drop(taken);
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let api = Api::start(json!({"grpc_api": true})).await;
    assert!(publishes_over(&api.channel().await).await);
    api.server.terminate();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api.server.exit_status().is_none() {
        assert!(std::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        api.server.exit_status().unwrap().success(),
        "{}",
        api.server.output()
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", api.grpc_port)).is_err());
}
