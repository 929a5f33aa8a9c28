//! Settings of the gRPC server API listener (GRPC-API.md §1.5, §2.6, §4): one listener that
//! serves both generations' services, enabled and configured by the keys of any generation:
//!
//! * Centrifugo 2.x flat keys: `grpc_api` (bool), `grpc_api_port`, `grpc_api_key`,
//!   `grpc_api_tls`, `grpc_api_tls_cert`, `grpc_api_tls_key`, `grpc_api_tls_disable`. With
//!   these, a listener without its own TLS inherits the HTTP `tls` settings unless
//!   `grpc_api_tls_disable` (trap 14).
//! * Centrifugo 5 flat keys: the above plus `grpc_api_address`, `grpc_api_reflection`,
//!   `grpc_api_error_mode`, `grpc_api_max_receive_message_size`, `grpc_api_tls_cert_pem`,
//!   `grpc_api_tls_key_pem`, `grpc_api_tls_client_ca_pem` (aliases of the 2.x names, see
//!   `flat.rs`).
//! * Centrifugo 6 section `grpc_api: {enabled, address, port, key, tls: {...}, reflection,
//!   error_mode, max_receive_message_size}` (mapped in `nested.rs`); `grpc_api.enabled` lands
//!   on the Rotor flat key `grpc_api_enabled`, which never inherits the HTTP TLS settings (v6
//!   has no inheritance).
//! * Rotor: `grpc_api_insecure` / `grpc_api.insecure` accepts calls without a key from every
//!   peer (see `api::grpc::auth` for what an empty key means otherwise).

use super::values::{boolean, port, size, string, Input};
use super::SetError;

/// grpc-go's default receive limit, used when `max_receive_message_size` is 0.
pub const DEFAULT_MAX_RECEIVE: usize = 4 * 1024 * 1024;

/// The gRPC API listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcApiSettings {
    /// Enabled by the 2.x / 5.x flat key `grpc_api: true`.
    pub enabled_flat: bool,
    /// Enabled by Centrifugo 6 `grpc_api.enabled` (no HTTP TLS inheritance).
    pub enabled_v6: bool,
    /// Bind host; `""` = all interfaces.
    pub address: String,
    pub port: u16,
    pub key: String,
    /// Rotor: an empty key accepts every peer (else only loopback / private peers).
    pub insecure: bool,
    /// TLS with the listener's own certificate (`grpc_api_tls`, `grpc_api.tls.enabled`).
    pub tls: bool,
    /// Each a path, PEM text or base64 PEM.
    pub tls_cert: String,
    pub tls_key: String,
    /// Set: clients must present a certificate signed by one of these CAs (mutual TLS).
    pub tls_client_ca: String,
    /// 2.x: do not inherit the HTTP `tls` settings.
    pub tls_disable: bool,
    pub reflection: bool,
    /// `""` or `"transport"` (checked when set).
    pub error_mode: String,
    /// 0 = [`DEFAULT_MAX_RECEIVE`].
    pub max_receive_message_size: usize,
}

impl Default for GrpcApiSettings {
    fn default() -> Self {
        Self {
            enabled_flat: false,
            enabled_v6: false,
            address: String::new(),
            port: 10000,
            key: String::new(),
            insecure: false,
            tls: false,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_client_ca: String::new(),
            tls_disable: false,
            reflection: false,
            error_mode: String::new(),
            max_receive_message_size: 0,
        }
    }
}

impl GrpcApiSettings {
    pub fn enabled(&self) -> bool {
        self.enabled_flat || self.enabled_v6
    }

    /// Whether the listener takes the HTTP `tls` settings (2.x / 5.x flat enable only).
    pub fn inherits_http_tls(&self) -> bool {
        self.enabled_flat && !self.enabled_v6 && !self.tls && !self.tls_disable
    }

    /// Whether the v6 service converts API errors into gRPC statuses for every call.
    pub fn transport_errors(&self) -> bool {
        self.error_mode == "transport"
    }

    /// The receive limit in bytes.
    pub fn max_receive(&self) -> usize {
        if self.max_receive_message_size == 0 {
            DEFAULT_MAX_RECEIVE
        } else {
            self.max_receive_message_size
        }
    }
}

/// Applies one flat `grpc_api*` key.
pub(crate) fn set(g: &mut GrpcApiSettings, key: &str, i: &Input) -> Result<(), SetError> {
    match key {
        "grpc_api" => g.enabled_flat = boolean(i)?,
        "grpc_api_enabled" => g.enabled_v6 = boolean(i)?,
        "grpc_api_address" => g.address = string(i)?,
        "grpc_api_port" => g.port = port(i)?,
        "grpc_api_key" => g.key = string(i)?,
        "grpc_api_insecure" => g.insecure = boolean(i)?,
        "grpc_api_tls" => g.tls = boolean(i)?,
        "grpc_api_tls_cert" => g.tls_cert = string(i)?,
        "grpc_api_tls_key" => g.tls_key = string(i)?,
        "grpc_api_tls_client_ca" => g.tls_client_ca = string(i)?,
        "grpc_api_tls_disable" => g.tls_disable = boolean(i)?,
        "grpc_api_reflection" => g.reflection = boolean(i)?,
        "grpc_api_error_mode" => g.error_mode = error_mode(i)?,
        "grpc_api_max_receive_message_size" => g.max_receive_message_size = size(i)?,
        _ => return Err(SetError::Unknown),
    }
    Ok(())
}

/// `""` or `"transport"`; anything else (even `"custom"`) fails the start, as in Centrifugo.
/// Checked whether or not the listener is enabled.
fn error_mode(i: &Input) -> Result<String, String> {
    let v = string(i)?;
    match v.as_str() {
        "" | "transport" => Ok(v),
        other => Err(format!(
            "unknown gRPC API error mode {other:?} (valid: \"\" or \"transport\")"
        )),
    }
}

/// Checks what single keys cannot; `(key, message)` names the key at fault.
pub(crate) fn check(g: &GrpcApiSettings) -> Result<(), (&'static str, String)> {
    if g.enabled() && g.tls {
        for (key, v) in [
            ("grpc_api_tls_cert", &g.tls_cert),
            ("grpc_api_tls_key", &g.tls_key),
        ] {
            if v.is_empty() {
                return Err((key, "must be set when grpc_api TLS is on".into()));
            }
        }
    }
    Ok(())
}
