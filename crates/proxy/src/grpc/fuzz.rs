//! Fuzz entry of the gRPC proxy answers (FUZZING.md, target `grpc_messages`): a response body
//! decoded as the prost message of one call kind and read into the core's grant as
//! [`super::GrpcCaller`] does (envelope order, then the payload rule), for both key styles.

use bytes::Bytes;
use prost::Message;
use rotor_core::backend::{BackendStyle, ConnContext};

use super::convert;
use crate::proto;

/// The call kinds, in mode order.
pub const KINDS: [&str; 6] = [
    "connect",
    "refresh",
    "subscribe",
    "publish",
    "sub_refresh",
    "rpc",
];

fn ctx(binary: bool) -> ConnContext {
    ConnContext {
        client: std::sync::Arc::from("c1"),
        transport: "websocket",
        encoding: if binary {
            rotor_protocol::Encoding::Protobuf
        } else {
            rotor_protocol::Encoding::Json
        },
        generation: rotor_protocol::Generation::V2,
        user: "u".to_string(),
        meta: None,
        headers: std::sync::Arc::from(Vec::new()),
        emulated_headers: std::sync::Arc::from(Vec::new()),
    }
}

/// `body` as the response of call `kind` (an index into [`KINDS`], modulo): `None` when prost
/// refuses it, else per key style (legacy, modern) what the caller gets, as its `Debug` text.
pub fn fuzz_grpc_answer(kind: u8, body: &[u8], binary: bool) -> Option<[String; 2]> {
    let ctx = ctx(binary);
    let body = Bytes::copy_from_slice(body);
    let styles = [BackendStyle::Legacy, BackendStyle::Modern];
    macro_rules! read {
        ($resp:ty, |$r:ident, $style:ident| $grant:expr) => {{
            let resp = <$resp>::decode(body).ok()?;
            Some(styles.map(|$style| {
                let r = convert::answer(
                    resp.result.clone(),
                    resp.error.clone(),
                    resp.disconnect.clone(),
                );
                let out = r.map(|o| o.map(|$r| $grant));
                format!("{out:?}")
            }))
        }};
    }
    match usize::from(kind) % KINDS.len() {
        0 => read!(proto::ConnectResponse, |r, s| convert::connect_grant(
            s, &ctx, r
        )),
        // Refresh and sub_refresh read only `result` (as the caller does).
        1 => {
            let resp = proto::RefreshResponse::decode(body).ok()?;
            Some(styles.map(|s| {
                let out = resp
                    .result
                    .clone()
                    .map(|r| convert::refresh_grant(s, &ctx, r));
                format!("{out:?}")
            }))
        }
        2 => read!(proto::SubscribeResponse, |r, s| convert::subscribe_grant(
            s, &ctx, r
        )),
        3 => read!(proto::PublishResponse, |r, s| convert::publish_grant(
            s, &ctx, r
        )),
        4 => {
            let resp = proto::SubRefreshResponse::decode(body).ok()?;
            Some(styles.map(|s| {
                let out = resp
                    .result
                    .clone()
                    .map(|r| convert::sub_refresh_grant(s, &ctx, r));
                format!("{out:?}")
            }))
        }
        _ => read!(proto::RpcResponse, |r, s| convert::rpc_data(s, &ctx, r)),
    }
}
