//! Generates the gRPC client of the server API (`centrifugal.centrifugo.api.CentrifugoApi`,
//! `../server/proto/api_v6.proto`) for the `api-publish` scenario. The file is parsed by protox
//! in Rust, so no system `protoc` is needed; tonic's client codegen only (no server, no
//! transport helpers: the scenario builds its channel itself).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "../server/proto/api_v6.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let fds = protox::compile([PROTO], ["../server/proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .build_transport(false)
        .bytes(".")
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
