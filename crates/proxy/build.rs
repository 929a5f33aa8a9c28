//! Generates the gRPC proxy protocol's Rust code (messages, client, server) from
//! `proto/proxy.proto`. The file is parsed by protox, in Rust, so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/proxy.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let fds = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // Test and example backends implement only the methods they need.
        .generate_default_stubs(true)
        // Payloads stay `Bytes` end to end; maps keep a stable order.
        .bytes(".")
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
