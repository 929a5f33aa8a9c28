//! The gRPC API keys of every generation: 2.x flat, 5.x flat, 6.x section, environment.

use super::*;

#[test]
fn off_by_default_with_centrifugo_defaults() {
    let g = run(None, &[]).unwrap().server.grpc_api;
    assert!(!g.enabled());
    assert_eq!(g.port, 10000);
    assert_eq!(g.address, "");
    assert_eq!(g.max_receive(), 4 * 1024 * 1024);
    assert!(!g.reflection && !g.transport_errors() && !g.insecure);
}

#[test]
fn centrifugo_2_flat_keys_inherit_http_tls() {
    let c = ok(
        r#"{"grpc_api": true, "grpc_api_port": 10001, "grpc_api_key": "k",
        "tls": true, "tls_cert": "/c.pem", "tls_key": "/k.pem"}"#,
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let g = &c.server.grpc_api;
    assert!(g.enabled() && g.enabled_flat && !g.enabled_v6);
    assert_eq!((g.port, g.key.as_str()), (10001, "k"));
    assert!(g.inherits_http_tls());
    let c = ok(r#"{"grpc_api": true, "grpc_api_tls_disable": true}"#);
    assert!(!c.server.grpc_api.inherits_http_tls());
    let c = ok(
        r#"{"grpc_api": true, "grpc_api_tls": true, "grpc_api_tls_cert": "/a",
        "grpc_api_tls_key": "/b"}"#,
    );
    let g = &c.server.grpc_api;
    assert!(g.tls && !g.inherits_http_tls());
    assert_eq!((g.tls_cert.as_str(), g.tls_key.as_str()), ("/a", "/b"));
    let e = fail(r#"{"grpc_api": true, "grpc_api_tls": true, "grpc_api_tls_key": "/b"}"#);
    has(&e, "grpc_api_tls_cert");
    let e = fail(r#"{"grpc_api": "yes"}"#);
    has(&e, r#""grpc_api""#);
}

#[test]
fn centrifugo_5_flat_keys() {
    let c = ok(r#"{"grpc_api": true, "grpc_api_address": "127.0.0.1",
        "grpc_api_reflection": true, "grpc_api_error_mode": "transport",
        "grpc_api_max_receive_message_size": 1000, "grpc_api_tls": true,
        "grpc_api_tls_cert_pem": "CERT", "grpc_api_tls_key_pem": "KEY",
        "grpc_api_tls_client_ca_pem": "CA"}"#);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let g = &c.server.grpc_api;
    assert_eq!(g.address, "127.0.0.1");
    assert!(g.reflection && g.transport_errors());
    assert_eq!(g.max_receive(), 1000);
    assert_eq!(
        (
            g.tls_cert.as_str(),
            g.tls_key.as_str(),
            g.tls_client_ca.as_str()
        ),
        ("CERT", "KEY", "CA")
    );
    // Client-side TLS keys are recognised and ignored with a warning.
    let c = ok(r#"{"grpc_api": true, "grpc_api_tls_server_name": "x"}"#);
    has(&c.warnings.join("\n"), "grpc_api_tls_server_name");
}

#[test]
fn centrifugo_6_section_never_inherits_http_tls() {
    let c = load_text(
        "yaml",
        "http_server:\n  tls:\n    enabled: true\n    cert_pem: /c\n    key_pem: /k\n\
         grpc_api:\n  enabled: true\n  address: ::1\n  port: 10002\n  key: s6\n  \
         insecure: true\n  reflection: true\n  error_mode: transport\n  \
         max_receive_message_size: 2048\n  tls:\n    enabled: true\n    cert_pem: C\n    \
         key_pem: K\n    client_ca_pem: CA\n",
        &[],
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let g = &c.server.grpc_api;
    assert!(g.enabled() && g.enabled_v6 && !g.enabled_flat);
    assert_eq!(
        (g.address.as_str(), g.port, g.key.as_str()),
        ("::1", 10002, "s6")
    );
    assert!(g.insecure && g.reflection && g.transport_errors() && g.tls);
    assert_eq!(g.max_receive(), 2048);
    assert_eq!(
        (
            g.tls_cert.as_str(),
            g.tls_key.as_str(),
            g.tls_client_ca.as_str()
        ),
        ("C", "K", "CA")
    );
    let c = load_text(
        "yaml",
        "grpc_api:\n  enabled: true\ntls: true\ntls_cert: /c\ntls_key: /k\n",
        &[],
    )
    .unwrap();
    assert!(!c.server.grpc_api.inherits_http_tls());
}

#[test]
fn error_mode_accepts_only_empty_or_transport() {
    for bad in ["custom", "Transport", "x"] {
        let e = fail(&format!(
            r#"{{"grpc_api": true, "grpc_api_error_mode": "{bad}"}}"#
        ));
        has(&e, "grpc_api_error_mode");
        has(&e, bad);
    }
    let e = load_text(
        "yaml",
        "grpc_api:\n  enabled: true\n  error_mode: custom\n",
        &[],
    )
    .unwrap_err();
    has(&e, "grpc_api.error_mode");
    assert!(ok(r#"{"grpc_api": true, "grpc_api_error_mode": ""}"#)
        .server
        .grpc_api
        .error_mode
        .is_empty());
}

#[test]
fn environment_of_every_generation() {
    let c = run(
        None,
        &[
            ("CENTRIFUGO_GRPC_API", "true"),
            ("CENTRIFUGO_GRPC_API_PORT", "10003"),
            ("CENTRIFUGO_GRPC_API_KEY", "ek"),
            ("CENTRIFUGO_GRPC_API_REFLECTION", "true"),
            ("CENTRIFUGO_GRPC_API_TLS_CERT_PEM", "EC"),
        ],
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let g = &c.server.grpc_api;
    assert!(g.enabled_flat && g.reflection);
    assert_eq!(
        (g.port, g.key.as_str(), g.tls_cert.as_str()),
        (10003, "ek", "EC")
    );
    let c = run(
        None,
        &[
            ("CENTRIFUGO_GRPC_API_ENABLED", "true"),
            ("CENTRIFUGO_GRPC_API_ERROR_MODE", "transport"),
            ("CENTRIFUGO_GRPC_API_MAX_RECEIVE_MESSAGE_SIZE", "77"),
            ("ROTOR_GRPC_API_INSECURE", "true"),
        ],
    )
    .unwrap();
    let g = &c.server.grpc_api;
    assert!(g.enabled_v6 && g.transport_errors() && g.insecure);
    assert_eq!(g.max_receive(), 77);
    let e = run(None, &[("CENTRIFUGO_GRPC_API_ERROR_MODE", "nope")]).unwrap_err();
    has(&e, "CENTRIFUGO_GRPC_API_ERROR_MODE");
}
