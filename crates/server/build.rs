//! Generates Rust from the project's `.proto` files, parsed by protox in Rust so no `protoc` is
//! needed on the build machine:
//! * `proto/unistream.proto` (uni_grpc): messages only; the service is written by hand in
//!   `transport::uni::grpc` (it streams the session's already-encoded pushes).
//! * `proto/api_v1.proto` (2.x `api.Centrifugo`, alias `api.Centrifuge`) and
//!   `proto/api_v6.proto` (`centrifugal.centrifugo.api.CentrifugoApi`): messages and the tonic
//!   service traits of the gRPC server API (`api::grpc`), plus a file descriptor set for
//!   reflection.
//!
//! It also records what the build is (`rotor version`, the admin `/info`): the git commit of the
//! checkout when there is one (`ROTOR_BUILD_COMMIT` overrides it, e.g. for a build from a
//! tarball), the profile and the target triple.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    build_info();
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

/// Exports `ROTOR_BUILD_COMMIT`, `ROTOR_BUILD_PROFILE` and `ROTOR_BUILD_TARGET` to the crate.
fn build_info() {
    println!("cargo:rerun-if-env-changed=ROTOR_BUILD_COMMIT");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = std::env::var("ROTOR_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Rerun when HEAD moves, and after a failed `git` too (it may have been transient); only
    // paths that exist are named (a missing one would rerun every build).
    let git_dir = git(&["rev-parse", "--absolute-git-dir"])
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let here = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?);
            here.ancestors()
                .map(|d| d.join(".git"))
                .find(|g| g.is_dir())
        });
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map(std::path::PathBuf::from);
    for dir in git_dir.iter().chain(common.iter()) {
        for p in ["HEAD", "refs/heads", "packed-refs"] {
            let path = dir.join(p);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=ROTOR_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=ROTOR_BUILD_PROFILE={profile}");
    println!("cargo:rustc-env=ROTOR_BUILD_TARGET={target}");
}
