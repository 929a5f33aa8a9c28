//! Generates the uni_grpc messages (`proto/unistream.proto`) for `transport::uni::grpc`. The
//! file is parsed by protox, in Rust, so no `protoc` is needed. The service itself is written
//! by hand there (it streams the session's already-encoded pushes), so only messages are
//! generated.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/unistream.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let fds = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .build_transport(false)
        .bytes(".")
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
