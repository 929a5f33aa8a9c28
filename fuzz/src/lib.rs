//! Rotor's fuzz targets (FUZZING.md): one function per target, each taking the fuzzer's bytes,
//! running one of Rotor's parsers on them and asserting what must hold beyond "no panic".
//! The libFuzzer binaries (`fuzz_targets/`) call these; so does the corpus replay
//! (`tests/replay.rs`), which runs on the stable toolchain without libFuzzer.
//!
//! Many targets read their first input byte as a mode (a generation, an encoding, a file
//! format) and the rest as the document, so one corpus covers every variant of a parser.

mod docs;
mod protocol;
mod server;
mod token;
mod transport;
mod wire;

pub use docs::{api_http, jwks, proxy_response};
pub use protocol::{protocol_json, protocol_protobuf};
pub use server::{config, emulation_body, sockjs, websocket_upgrade};
pub use token::jwt;
pub use transport::{uni_connect, websocket_deflate};
pub use wire::{grpc_messages, redis_reply};

/// A target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name, for the replay and for `scripts/fuzz.sh`.
pub const TARGETS: &[Target] = &[
    ("protocol_json", protocol_json),
    ("protocol_protobuf", protocol_protobuf),
    ("api_http", api_http),
    ("jwt", jwt),
    ("jwks", jwks),
    ("proxy_response", proxy_response),
    ("websocket_upgrade", websocket_upgrade),
    ("sockjs", sockjs),
    ("emulation_body", emulation_body),
    ("config", config),
    ("grpc_messages", grpc_messages),
    ("websocket_deflate", websocket_deflate),
    ("uni_connect", uni_connect),
    ("redis_reply", redis_reply),
];

/// The first byte as a mode and the rest; `None` for an empty input.
fn split_mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (*m, rest))
}

/// Whether `part` lies inside `whole` (a decoder's slice of its input).
fn within(whole: &[u8], part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    part.is_empty() || (p >= w && p + part.len() <= w + whole.len())
}
