//! What this binary is: version, git commit, profile and target, recorded by `build.rs`.
//! `rotor version` prints it and the admin `/info` returns it, so an operator can tell which
//! build a node runs.

use serde_json::{json, Value};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("ROTOR_BUILD_COMMIT");
pub const PROFILE: &str = env!("ROTOR_BUILD_PROFILE");
pub const TARGET: &str = env!("ROTOR_BUILD_TARGET");

/// One line: `rotor 0.1.0 (commit 1a2b3c4d5e6f, release, x86_64-unknown-linux-gnu)`.
pub fn line() -> String {
    format!("rotor {VERSION} (commit {COMMIT}, {PROFILE}, {TARGET})")
}

/// The build as a JSON object.
pub fn json() -> Value {
    json!({
        "version": VERSION,
        "commit": COMMIT,
        "profile": PROFILE,
        "target": TARGET,
    })
}
