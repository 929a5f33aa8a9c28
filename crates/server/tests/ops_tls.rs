//! TLS end to end: a self-signed certificate made here (rcgen), `tls`/`tls_cert`/`tls_key`,
//! then HTTPS (health, the server API) and a WebSocket over TLS that receives a publication.
//! Plain HTTP on the TLS port gets nowhere. Also: `internal_port` over TLS.

mod common;
mod ops_support;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

/// A certificate for 127.0.0.1/localhost written as PEM files; the connector trusts it.
struct Tls {
    dir: std::path::PathBuf,
    connector: TlsConnector,
}

impl Tls {
    fn new() -> Tls {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        let dir =
            std::env::temp_dir().join(format!("rotor-tls-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ck.cert.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Tls {
            dir,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    fn config(&self) -> Value {
        json!({
            "tls": true,
            "tls_cert": self.dir.join("cert.pem").to_str().unwrap(),
            "tls_key": self.dir.join("key.pem").to_str().unwrap(),
        })
    }

    async fn connect(&self, port: u16) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tokio::time::timeout(WAIT, self.connector.connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake failed")
    }

    /// One HTTP/1.1 request over TLS; (status, body).
    async fn request(&self, port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = self.connect(port).await;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (status, body.to_string())
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn https_and_wss_with_a_self_signed_certificate() {
    let tls = Tls::new();
    let mut cfg = tls.config();
    cfg["health"] = json!(true);
    let server = Server::start(cfg).await;
    let out = server.wait_output("listening on https://").await;
    assert!(out.contains("listening on https://"), "{out}");

    let (status, body) = tls.request(server.port, "GET", "/health", "").await;
    assert_eq!((status, body.as_str()), (200, "{}"));

    // A WebSocket over TLS: connect, subscribe, get a publication made over HTTPS.
    let stream = tls.connect(server.port).await;
    let url = format!("wss://127.0.0.1:{}/connection/websocket", server.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket handshake over TLS");
    let connect = json!({"id": 1, "connect": {"token": conn_token("alice")}});
    let subscribe = json!({"id": 2, "subscribe": {"channel": "news"}});
    ws.send(Message::text(format!("{connect}\n{subscribe}")))
        .await
        .unwrap();
    let mut replies = 0;
    while replies < 2 {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap();
        replies += msg.unwrap().to_text().unwrap().lines().count();
    }
    let (status, body) = tls
        .request(
            server.port,
            "POST",
            "/api/publish",
            r#"{"channel":"news","data":{"over":"tls"}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let push = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap();
    let push: Value = serde_json::from_str(push.unwrap().to_text().unwrap()).unwrap();
    assert_eq!(
        push["push"]["pub"]["data"],
        json!({"over": "tls"}),
        "{push}"
    );

    // Plain HTTP on the TLS port does not get an HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(server.http_url("/health"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
}

#[tokio::test]
async fn internal_port_over_tls() {
    let tls = Tls::new();
    let internal = free_port();
    let mut cfg = tls.config();
    cfg["health"] = json!(true);
    cfg["prometheus"] = json!(true);
    cfg["internal_port"] = json!(internal);
    let server = Server::start(cfg).await;
    let (status, _) = tls.request(internal, "GET", "/health", "").await;
    assert_eq!(status, 200);
    let (status, body) = tls.request(internal, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("centrifugo_node_num_clients"), "{body}");
    let (status, _) = tls.request(server.port, "GET", "/metrics", "").await;
    assert_eq!(status, 404, "metrics left the main port");
}

#[test]
fn bad_tls_settings_fail_before_listening() {
    let port = free_port();
    let text = json!({"port": port, "tls": true, "tls_cert": "/nonexistent/cert.pem",
        "tls_key": "/nonexistent/key.pem"})
    .to_string();
    let (status, out) = run_rotor_with_config_text(&text, Duration::from_secs(10));
    let status = status.expect("rotor kept running with unreadable TLS files");
    assert!(!status.success());
    assert!(out.contains("tls_cert"), "{out}");
    let text = json!({"port": port, "tls": true}).to_string();
    let (status, out) = run_rotor_with_config_text(&text, Duration::from_secs(10));
    assert!(!status.expect("exits").success());
    assert!(
        out.contains("tls_cert") && out.contains("must be set"),
        "{out}"
    );
}
