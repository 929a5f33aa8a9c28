//! Status codes for bad input, as grpc-go answers them (GRPC-API.md §5, traps 16–18), set on
//! the trailers-only error responses tonic produces before a handler runs:
//!
//! * a request over the receive limit: tonic says OUT_OF_RANGE, Rotor answers
//!   RESOURCE_EXHAUSTED (the standard code for an over-size message, and grpc-go's);
//! * a body that does not decode as the method's request (including invalid UTF-8 in a
//!   `string` field): tonic-prost says INTERNAL, Rotor answers INVALID_ARGUMENT (the client
//!   sent something wrong; grpc-go says INTERNAL, clients handle both alike);
//! * an unknown service or method, which includes every Centrifugo PRO method (not declared
//!   in Rotor's protos): UNIMPLEMENTED as tonic answers, with Centrifugo's message
//!   `method <Name> not implemented` added.
//!
//! Statuses raised by the handlers (transport error mode) are left alone: their messages are
//! API error texts, never tonic's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http;
use tonic::{Code, Status};

/// Tonic's message for a message over the decoding limit (`codec/decode.rs`).
const TOO_LARGE: &str = "Error, decoded message length too large";
/// prost's `DecodeError` text, which tonic-prost puts in its INTERNAL status.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// The layer for `tonic::transport::Server::builder().layer(..)`.
#[derive(Clone, Copy, Default)]
pub(crate) struct FixupLayer;

impl<S> tower::Layer<S> for FixupLayer {
    type Service = Fixup<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fixup { inner }
    }
}

#[derive(Clone)]
pub(crate) struct Fixup<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Fixup<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // A refcounted copy: the method name is only needed for an UNIMPLEMENTED answer.
        let path = req.uri().path_and_query().cloned();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            let method = path
                .as_ref()
                .and_then(|p| p.path().rsplit('/').next())
                .unwrap_or_default();
            if let Some(status) = replacement(method, resp.headers()) {
                // Only grpc-status / grpc-message change; a header value that cannot be
                // written leaves tonic's answer as it was.
                let _ = status.add_header(resp.headers_mut());
            }
            Ok(resp)
        })
    }
}

/// The status that replaces a trailers-only error answered by tonic itself, if any.
fn replacement(method: &str, headers: &http::HeaderMap) -> Option<Status> {
    let status = Status::from_header_map(headers)?;
    let msg = status.message();
    match status.code() {
        Code::OutOfRange if msg.starts_with(TOO_LARGE) => Some(Status::resource_exhausted(
            msg.replacen("Error, decoded", "decoded", 1),
        )),
        Code::Internal if msg.starts_with(UNDECODABLE) => Some(Status::invalid_argument(msg)),
        Code::Unimplemented if msg.is_empty() => {
            let name = if method.is_empty() { "unknown" } else { method };
            Some(Status::unimplemented(format!(
                "method {name} not implemented"
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(s: Status) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        s.add_header(&mut h).unwrap();
        h
    }

    #[test]
    fn tonic_statuses_are_mapped_handler_statuses_kept() {
        let big =
            Status::out_of_range(format!("{TOO_LARGE}: found 9 bytes, the limit is: 4 bytes"));
        let r = replacement("Publish", &headers(big)).unwrap();
        assert_eq!(r.code(), Code::ResourceExhausted);
        let bad = Status::internal(format!("{UNDECODABLE}: invalid wire type value: 7"));
        assert_eq!(
            replacement("Publish", &headers(bad)).unwrap().code(),
            Code::InvalidArgument
        );
        let r = replacement("Connections", &headers(Status::unimplemented(""))).unwrap();
        assert_eq!(r.code(), Code::Unimplemented);
        assert_eq!(r.message(), "method Connections not implemented");
        // Transport-mode answers of the handlers.
        for s in [
            Status::out_of_range("unrecoverable position"),
            Status::internal("internal server error"),
            Status::unauthenticated("unauthenticated"),
        ] {
            assert!(replacement("History", &headers(s)).is_none());
        }
        assert!(replacement("History", &http::HeaderMap::new()).is_none());
    }
}
