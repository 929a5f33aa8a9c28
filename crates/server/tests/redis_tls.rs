//! The Redis engine over TLS (`redis_tls`, `redis_tls_skip_verify`, 2.x keys): two Rotor nodes
//! on one redis-server that only listens on a TLS port, with a self-signed certificate made by
//! `openssl` for the test. A publication through node A reaches a client on node B, with its
//! offset, and both nodes read the same history.

mod common;
mod redis_support;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use redis_support::*;
use serde_json::{json, Value};

/// A redis-server with `--port 0 --tls-port P`; killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `None` when this machine cannot run the test (no openssl, or redis-server without TLS).
fn start_tls_redis() -> Option<TlsRedis> {
    let dir = std::env::temp_dir().join(format!(
        "rotor-redis-tls-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("key.pem"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("cert.pem"))
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut redis = TlsRedis {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = redis.child.try_wait() {
            return None; // exited: built without TLS
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(redis);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = redis.child.kill();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_a_tls_only_redis_share_publications_and_history() {
    if !redis_available() {
        return;
    }
    let redis = start_tls_redis().expect("redis-server with TLS and openssl are needed here");
    let cfg = json!({
        "redis_address": format!("127.0.0.1:{}", redis.port),
        "redis_tls": true,
        "redis_tls_skip_verify": true,
    });
    let a = node(cfg.clone(), "node-a").await;
    let b = node(cfg, "node-b").await;
    assert_eq!(health(&a).await, 200);
    assert_eq!(health(&b).await, 200);

    let (mut client, _) = b.v1_client("tls-user").await;
    assert!(client.subscribe_v1("secure").await.get("error").is_none());
    let rep = api_v1(
        &a,
        "publish",
        json!({"channel": "secure", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(rep, vec![json!({})]);
    let push = loop {
        let p = client.push().await;
        if p["result"].get("type").is_none() {
            break p;
        }
    };
    assert_eq!(push["result"]["channel"], json!("secure"));
    assert_eq!(push["result"]["data"]["data"], json!({"n": 1}));
    assert_eq!(push["result"]["data"]["offset"], json!(1));
    for n in [&a, &b] {
        let h = api_v1(n, "history", json!({"channel": "secure"})).await;
        let data: Vec<Value> = h[0]["result"]["publications"]
            .as_array()
            .expect("publications")
            .iter()
            .map(|p| p["data"].clone())
            .collect();
        assert_eq!(data, [json!({"n": 1})]);
    }
}
