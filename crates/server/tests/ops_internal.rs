//! `internal_port`: the server API, health, metrics and the admin UI move to their own
//! listener; the main port keeps only the WebSocket endpoint.

mod common;
mod ops_support;

use common::*;
use ops_support::*;
use serde_json::json;

#[tokio::test]
async fn internal_port_takes_api_health_metrics_and_admin() {
    let internal = free_port();
    let server = Server::start(json!({
        "internal_port": internal,
        "health": true,
        "prometheus": true,
        "admin": true,
        "admin_insecure": true,
    }))
    .await;
    let main = |p: &str| format!("http://127.0.0.1:{}{p}", server.port);
    let int = |p: &str| format!("http://127.0.0.1:{internal}{p}");
    let needle = format!("127.0.0.1:{internal}");
    let out = server.wait_output(&needle).await;
    assert!(out.contains(&needle), "{out}");

    // A client on the main port gets a publication made through the internal API.
    let (mut ws, _) = server.v2_client("alice").await;
    ws.subscribe_v2("news").await;
    let body = r#"{"channel":"news","data":{"via":"internal"}}"#;
    let key = [("X-API-Key", API_KEY)];
    let r = post(&int("/api/publish"), &key, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let push = ws.push().await;
    assert_eq!(
        push["push"]["pub"]["data"],
        json!({"via": "internal"}),
        "{push}"
    );
    let r = post(&main("/api/publish"), &key, body).await;
    assert_eq!(r.status, 404, "the API left the main port: {r:?}");
    let r = post(&main("/api"), &key, r#"{"method":"info","params":{}}"#).await;
    assert_eq!(r.status, 404);

    for path in ["/health", "/ready", "/metrics", "/", "/admin/api/info"] {
        let (status, _) = get(&int(path)).await;
        assert_eq!(status, 200, "{path} on the internal port");
        let (status, _) = get(&main(path)).await;
        assert_eq!(status, 404, "{path} on the main port");
    }
    let m = scrape_port(internal).await;
    assert_eq!(m.get("centrifugo_node_num_clients", &[]), 1.0);
}
