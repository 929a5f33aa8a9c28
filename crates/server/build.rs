//! Generates Rust from the project's `.proto` files, parsed by protox in Rust so no `protoc` is
//! needed on the build machine:
//! * `proto/unistream.proto` (uni_grpc): messages only; the service is written by hand in
//!   `transport::uni::grpc` (it streams the session's already-encoded pushes).
//! * `proto/api_v1.proto` (2.x `api.Centrifugo`, alias `api.Centrifuge`) and
//!   `proto/api_v6.proto` (`centrifugal.centrifugo.api.CentrifugoApi`): messages and the tonic
//!   service traits of the gRPC server API (`api::grpc`), plus a file descriptor set for
//!   reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const UNI: &str = "proto/unistream.proto";
    const API: [&str; 2] = ["proto/api_v1.proto", "proto/api_v6.proto"];
    println!("cargo:rerun-if-changed={UNI}");
    for p in API {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile([UNI], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .build_transport(false)
        .bytes(".")
        .btree_map(".")
        .compile_fds(fds)?;

    let fds = protox::compile(API, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("api_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .build_transport(false)
        .bytes(".")
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
