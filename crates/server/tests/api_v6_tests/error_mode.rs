//! Transport error mode: by `http_api.error_mode` (flat and nested), by the
//! `X-Centrifugo-Error-Mode` header for one request, never for `/batch`; bad modes fail the
//! start; `checkconfig` shows the mode; a custom prefix moves every route.

use crate::*;

/// Calls that fail with each reachable API error code, and the transport-mode status.
async fn assert_transport_errors(server: &Server, headers: &[(&str, &str)]) {
    for (method, body, status, error) in [
        (
            "publish",
            r#"{"channel":"","data":1}"#,
            400,
            err(107, "bad request"),
        ),
        (
            "publish",
            r#"{"channel":"x:a","data":1}"#,
            404,
            err(102, "unknown channel"),
        ),
        (
            "presence",
            r#"{"channel":"nopresence:a"}"#,
            400,
            err(108, "not available"),
        ),
        (
            "history",
            r#"{"channel":"nopresence:a"}"#,
            400,
            err(108, "not available"),
        ),
        ("rpc", r#"{"method":"m"}"#, 404, err(104, "not found")),
        (
            "broadcast",
            r#"{"channels":[],"data":1}"#,
            400,
            err(107, "bad request"),
        ),
    ] {
        let r = call_with(server, method, headers, body).await;
        assert_eq!((r.status, r.json()), (status, error), "{method} {body}");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    // Successes keep their shape.
    let r = call_with(server, "publish", headers, r#"{"channel":"a","data":1}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"result": {}})));
    // Broadcast: per-channel errors stay in the 200 body.
    let r = call_with(
        server,
        "broadcast",
        headers,
        r#"{"channels":["a","x:b"],"data":1}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"result": {"responses": [{"result": {}}, {"error": err(102, "unknown channel")}]}})
        )
    );
    // Never for /batch.
    let r = call_with(
        server,
        "batch",
        headers,
        r#"{"commands":[{"publish":{"channel":"x:a","data":1}},{"rpc":{"method":"m"}}]}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"replies": [{"error": err(102, "unknown channel")}, {"error": err(104, "not found")}]})
        )
    );
}

fn namespaces() -> Value {
    json!({"namespaces": [{"name": "nopresence"}]})
}

#[tokio::test]
async fn transport_error_mode_by_flat_config() {
    let mut extra = namespaces();
    extra["api_error_mode"] = json!("transport");
    let server = Server::start(extra).await;
    assert_transport_errors(&server, &[]).await;
}

#[tokio::test]
async fn transport_error_mode_by_nested_config() {
    let mut extra = namespaces();
    extra["http_api"] = json!({"error_mode": "transport"});
    let server = Server::start(extra).await;
    assert_transport_errors(&server, &[]).await;
}

#[tokio::test]
async fn transport_error_mode_by_header_only_for_that_request() {
    let server = Server::start(namespaces()).await;
    assert_transport_errors(&server, &[("X-Centrifugo-Error-Mode", "transport")]).await;
    for headers in [
        vec![],
        vec![("X-Centrifugo-Error-Mode", "")],
        vec![("X-Centrifugo-Error-Mode", "other")],
    ] {
        let r = call_with(
            &server,
            "publish",
            &headers,
            r#"{"channel":"x:a","data":1}"#,
        )
        .await;
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"error": err(102, "unknown channel")})),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn unknown_error_mode_fails_the_start() {
    for cfg in [
        json!({"api_error_mode": "Transport"}),
        json!({"api_error_mode": "grpc"}),
        json!({"http_api": {"error_mode": "status"}}),
        json!({"api_error_mode": 1}),
    ] {
        let mut full = base_config(free_port());
        for (k, v) in cfg.as_object().unwrap() {
            full[k] = v.clone();
        }
        let (status, out) = run_rotor_with_config_text(&full.to_string(), Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("{cfg}: rotor kept running: {out}"));
        assert!(!status.success(), "{cfg}: {out}");
        assert!(out.contains("error_mode"), "{cfg}: names the key: {out}");
    }
    // The empty mode is the default and valid.
    let server = Server::start(json!({"api_error_mode": ""})).await;
    server.assert_alive();
}

#[test]
fn checkconfig_shows_the_error_mode_from_file_and_env() {
    let dir = std::env::temp_dir().join(format!("rotor-emode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Not config.json: without -c, checkconfig reads only the environment.
    let path = dir.join("emode.json");
    std::fs::write(&path, r#"{"http_api":{"error_mode":"transport"}}"#).unwrap();
    let effective = |args: &[&str], env: &[(&str, &str)]| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let file = path.to_str().unwrap();
    assert_eq!(
        effective(&["checkconfig", "-c", file], &[])["api_error_mode"],
        "transport"
    );
    let env = [("CENTRIFUGO_HTTP_API_ERROR_MODE", "transport")];
    assert_eq!(
        effective(&["checkconfig"], &env)["api_error_mode"],
        "transport"
    );
    assert_eq!(effective(&["checkconfig"], &[])["api_error_mode"], "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("checkconfig")
        .env("CENTRIFUGO_API_ERROR_MODE", "bad")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn custom_handler_prefix_moves_every_route() {
    let server = Server::start(json!({"api_handler_prefix": "/srv/api/"})).await;
    let h = [("X-API-Key", API_KEY)];
    let r = post(&server.http_url("/srv/api/info"), &h, "{}").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(
        &server.http_url("/srv/api/batch"),
        &h,
        r#"{"commands":[{"info":{}}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(&server.http_url("/srv/api/connections"), &h, "{}").await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = post(&server.http_url("/api/info"), &h, "{}").await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = post(
        &server.http_url("/srv/api"),
        &h,
        r#"{"method":"info","params":{}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}
