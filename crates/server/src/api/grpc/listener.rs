//! The gRPC API listener: binds `grpc_api.address:port` (all interfaces by default, port
//! 10000), serves `api.Centrifugo`, `api.Centrifuge` and
//! `centrifugal.centrifugo.api.CentrifugoApi` on one tonic router (plus reflection when
//! enabled), each behind the key check, with the receive limit and the status fix-ups of
//! `fixup`. Plain h2c (prior knowledge, as grpcio's `insecure_channel` speaks) or TLS: the
//! listener's own pair, or for 2.x / 5.x flat configs the HTTP `tls` pair unless
//! `grpc_api_tls_disable`. A bind failure is an error at start; on shutdown the server stops
//! accepting and finishes the calls in flight.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::auth::Auth;
use super::fixup::FixupLayer;
use super::service_v1::{V1Alias, V1Api};
use super::service_v6::V6Api;
use super::v1::centrifuge_server::CentrifugeServer;
use super::v1::centrifugo_server::CentrifugoServer;
use super::v6::centrifugo_api_server::CentrifugoApiServer;
use crate::app::SharedState;
use tonic::service::interceptor::InterceptedService;

/// Calls one connection may have in flight.
const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// Starts the gRPC API listener when enabled; `None` otherwise. It stops when `stop` is
/// cancelled.
pub(crate) async fn spawn(
    state: SharedState,
    stop: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let g = state.settings.grpc_api.clone();
    if !g.enabled() {
        return Ok(None);
    }
    let (cert, key, client_ca) = if g.tls {
        (
            g.tls_cert.as_str(),
            g.tls_key.as_str(),
            g.tls_client_ca.as_str(),
        )
    } else if g.inherits_http_tls() && state.settings.tls {
        let s = &state.settings;
        (s.tls_cert.as_str(), s.tls_key.as_str(), "")
    } else {
        ("", "", "")
    };
    let tls = if cert.is_empty() {
        None
    } else {
        Some(super::tls::acceptor(cert, key, client_ca).map_err(|e| e.context("grpc_api tls"))?)
    };
    let host = if g.address.is_empty() {
        "0.0.0.0"
    } else {
        g.address.as_str()
    };
    let listener = tokio::net::TcpListener::bind((host, g.port))
        .await
        .map_err(|e| anyhow::anyhow!("grpc_api: cannot listen on {host}:{}: {e}", g.port))?;
    let local = listener.local_addr()?;
    println!("grpc_api listening on {local}");
    tracing::info!(%local, "grpc_api listening");
    if g.key.is_empty() {
        if g.insecure {
            tracing::warn!(
                "grpc_api_key is not set and grpc_api_insecure is on: the gRPC API accepts \
                 calls from every peer without a key"
            );
        } else {
            tracing::warn!(
                "grpc_api_key is not set: the gRPC API accepts calls without a key only from \
                 loopback and private-network peers (set grpc_api_key, or grpc_api_insecure to \
                 accept every peer)"
            );
        }
    }

    let auth = Auth::new(&g.key, g.insecure);
    let limit = g.max_receive();
    // Tonic refuses a message over the limit before buffering it (answered
    // RESOURCE_EXHAUSTED by the fix-up layer).
    let v1 = V1Api {
        node: state.node.clone(),
    };
    let v1_svc = CentrifugoServer::new(v1.clone()).max_decoding_message_size(limit);
    let alias_svc = CentrifugeServer::new(V1Alias(v1)).max_decoding_message_size(limit);
    let v6 = V6Api {
        node: state.node.clone(),
        transport_errors: g.transport_errors(),
    };
    let v6_svc = CentrifugoApiServer::new(v6).max_decoding_message_size(limit);
    let (refl_v1, refl_v1alpha) = if g.reflection {
        let v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(super::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| anyhow::anyhow!("grpc_api reflection: {e}"))?;
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(super::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| anyhow::anyhow!("grpc_api reflection: {e}"))?;
        (
            Some(InterceptedService::new(v1, auth.clone())),
            Some(InterceptedService::new(v1alpha, auth.clone())),
        )
    } else {
        (None, None)
    };

    let router = tonic::transport::Server::builder()
        // Bounded calls in flight per connection (tonic's default is unlimited); a client
        // past it waits for a free stream, as HTTP/2 says.
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .http2_keepalive_interval(Some(Duration::from_secs(25)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .layer(FixupLayer)
        .add_service(InterceptedService::new(v1_svc, auth.clone()))
        .add_service(InterceptedService::new(alias_svc, auth.clone()))
        .add_service(InterceptedService::new(v6_svc, auth))
        .add_optional_service(refl_v1)
        .add_optional_service(refl_v1alpha);
    Ok(Some(tokio::spawn(async move {
        let done = match tls {
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                router
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
            }
            Some(acceptor) => {
                let incoming = super::tls::incoming(listener, acceptor);
                router
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
            }
        };
        done.map_err(std::io::Error::other)
    })))
}
