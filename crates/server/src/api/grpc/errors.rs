//! The transport error mode of the current service (GRPC-API.md §2.4): instead of status OK
//! with `error` inside the response, the call fails with a gRPC status whose message is the
//! error text and whose `grpc-status-details-bin` is a `google.rpc.Status` carrying the
//! `centrifugal.centrifugo.api.Error` as an `Any`. On for every call with
//! `grpc_api.error_mode: transport`, or per call with metadata
//! `x-centrifugo-error-mode: transport` (exact value). Never for `Batch`; `Broadcast` only for
//! its top-level error. The 2.x service never uses it.

use bytes::Bytes;
use prost::Message;
use tonic::{Code, Status};

use super::v6;

/// The metadata key that turns the mode on for one call.
pub(crate) const MODE_HEADER: &str = "x-centrifugo-error-mode";

/// `type_url` of the detail.
pub(crate) const ERROR_TYPE_URL: &str = "type.googleapis.com/centrifugal.centrifugo.api.Error";

/// `google.rpc.Status` (the standard status-details message), defined here for encoding.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// Whether this call answers errors as statuses.
pub(crate) fn wants_transport<T>(global: bool, req: &tonic::Request<T>) -> bool {
    global
        || req
            .metadata()
            .get(MODE_HEADER)
            .is_some_and(|v| v.as_bytes() == b"transport")
}

/// The status code an API error maps to.
pub(crate) fn code_of(api_code: u32) -> Code {
    match api_code {
        102 | 104 => Code::NotFound,
        107 | 108 => Code::InvalidArgument,
        112 => Code::OutOfRange,
        113 => Code::AlreadyExists,
        _ => Code::Internal,
    }
}

/// The status of an API error in transport mode.
pub(crate) fn to_status(e: &v6::Error) -> Status {
    let code = code_of(e.code);
    let details = RpcStatus {
        code: code as i32,
        message: e.message.clone(),
        details: vec![ProtoAny {
            type_url: ERROR_TYPE_URL.to_string(),
            value: e.encode_to_vec(),
        }],
    };
    Status::with_details(
        code,
        e.message.clone(),
        Bytes::from(details.encode_to_vec()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_and_details() {
        for (api, code) in [
            (100, Code::Internal),
            (102, Code::NotFound),
            (104, Code::NotFound),
            (107, Code::InvalidArgument),
            (108, Code::InvalidArgument),
            (112, Code::OutOfRange),
            (113, Code::AlreadyExists),
            (106, Code::Internal),
        ] {
            assert_eq!(code_of(api), code, "{api}");
        }
        let s = to_status(&v6::Error {
            code: 102,
            message: "unknown channel".into(),
        });
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "unknown channel");
        let d = RpcStatus::decode(s.details()).unwrap();
        assert_eq!(d.code, Code::NotFound as i32);
        assert_eq!(d.details.len(), 1);
        assert_eq!(d.details[0].type_url, ERROR_TYPE_URL);
        let e = v6::Error::decode(&d.details[0].value[..]).unwrap();
        assert_eq!((e.code, e.message.as_str()), (102, "unknown channel"));
    }
}
