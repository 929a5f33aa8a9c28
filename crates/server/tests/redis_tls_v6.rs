//! The Redis engine over TLS with Centrifugo 6's `engine.redis.tls` object: a redis-server that
//! listens only on a TLS port with a certificate from a test CA (made by `openssl`) and asks
//! for client certificates. With `server_ca_pem` and `cert_pem` + `key_pem` (files, or PEM
//! text from the environment) the node is healthy and publishes with history; without the
//! client certificate, or without the CA (the system roots do not know it), the node stays at
//! 503 and publishes fail; a bad PEM stops it at start naming the key.

mod common;
mod redis_support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use redis_support::*;
use serde_json::{json, Value};

/// A TLS-only redis-server with `tls-auth-clients yes`; killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_certs(dir: &Path) -> bool {
    // Version 3 certificates (rustls takes no other): extensions make them so.
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let key = ["-newkey", "rsa:2048", "-nodes"];
    let req = |cn: &str, name: &str| {
        let mut a = vec!["req"];
        a.extend(key);
        a.extend(["-subj", cn, "-keyout"]);
        let k = format!("{name}.key");
        let c = format!("{name}.csr");
        openssl(dir, &[&a[..], &[k.as_str(), "-out", c.as_str()]].concat())
    };
    let sign = |name: &str, ext: &str| {
        let (csr, pem) = (format!("{name}.csr"), format!("{name}.pem"));
        let mut a = vec![
            "x509",
            "-req",
            "-in",
            csr.as_str(),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            pem.as_str(),
        ];
        a.extend(["-extfile", ext]);
        openssl(dir, &a)
    };
    let ca = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    ];
    openssl(
        dir,
        &[
            &ca[..],
            &[
                "-subj",
                "/CN=rotor-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    ) && req("/CN=localhost", "server")
        && sign("server", "san.ext")
        && req("/CN=rotor-client", "client")
        && sign("client", "client.ext")
}

/// `None` when this machine cannot run the test (no openssl, or redis-server without TLS).
fn start() -> Option<TlsRedis> {
    let dir = std::env::temp_dir().join(format!(
        "rotor-redis-tls6-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    if !make_certs(&dir) {
        return None;
    }
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "yes"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut redis = TlsRedis { child, port, dir };
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
    None
}

impl TlsRedis {
    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A v6 configuration on this Redis with `tls` as the `engine.redis.tls` object.
    fn config(&self, tls: Value) -> Value {
        json!({
            "engine": {"type": "redis", "redis": {
                "address": format!("127.0.0.1:{}", self.port),
                "tls": tls,
            }},
            "channel": {"without_namespace": {"history_size": 10, "history_ttl": "60s"}},
            "health": {"enabled": true},
        })
    }
}

async fn publish_and_read_history(n: &Server) {
    let rep = api_v1(n, "publish", json!({"channel": "secure", "data": {"n": 1}})).await;
    assert_eq!(rep, vec![json!({})]);
    let h = api_v1(n, "history", json!({"channel": "secure"})).await;
    let pubs = h[0]["result"]["publications"].as_array().cloned();
    assert_eq!(pubs.map(|p| p.len()), Some(1), "{h:?}");
}

async fn assert_stays_unhealthy(n: &Server) {
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(health(n).await, 503);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rep = api_v1(n, "publish", json!({"channel": "secure", "data": {}})).await;
    assert!(rep[0].get("error").is_some(), "publish acked: {rep:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v6_tls_object_with_ca_and_client_certificate() {
    if !redis_available() {
        return;
    }
    let redis = start().expect("redis-server with TLS and openssl are needed here");
    // Files.
    let a = Server::start(redis.config(json!({
        "enabled": true,
        "server_ca_pem": redis.file("ca.pem"),
        "cert_pem": redis.file("client.pem"),
        "key_pem": redis.file("client.key"),
    })))
    .await;
    wait_until(Duration::from_secs(10), "/health 200", || async {
        health(&a).await == 200
    })
    .await;
    publish_and_read_history(&a).await;
    // PEM text, as an environment would carry it.
    let text = |f: &str| std::fs::read_to_string(redis.file(f)).unwrap();
    let b = Server::start(redis.config(json!({
        "enabled": true,
        "server_ca_pem": text("ca.pem"),
        "cert_pem": text("client.pem"),
        "key_pem": text("client.key"),
    })))
    .await;
    wait_until(Duration::from_secs(10), "/health 200", || async {
        health(&b).await == 200
    })
    .await;
    let h = api_v1(&b, "history", json!({"channel": "secure"})).await;
    assert_eq!(
        h[0]["result"]["publications"][0]["data"],
        json!({"n": 1}),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v6_tls_without_client_certificate_or_ca_stays_unhealthy() {
    if !redis_available() {
        return;
    }
    let redis = start().expect("redis-server with TLS and openssl are needed here");
    // The server asks for a client certificate.
    let no_client = Server::start(redis.config(json!({
        "enabled": true, "server_ca_pem": redis.file("ca.pem"),
    })))
    .await;
    assert_stays_unhealthy(&no_client).await;
    // The system roots do not know the test CA.
    let no_ca = Server::start(redis.config(json!({
        "enabled": true,
        "cert_pem": redis.file("client.pem"), "key_pem": redis.file("client.key"),
    })))
    .await;
    assert_stays_unhealthy(&no_ca).await;
    // TLS off: the object's other fields mean nothing, and a plain connection to a TLS port
    // does not work either.
    let off = Server::start(redis.config(json!({
        "enabled": false, "server_ca_pem": redis.file("ca.pem"),
    })))
    .await;
    assert_stays_unhealthy(&off).await;
}

#[test]
fn v6_tls_bad_settings_stop_the_node_naming_the_key() {
    let addr = json!({"type": "redis", "redis": {"address": "127.0.0.1:1"}});
    for (tls, needle) in [
        (
            json!({"enabled": true, "server_ca_pem": "/nonexistent/ca.pem"}),
            "redis_tls_server_ca_pem",
        ),
        (
            json!({"enabled": true, "cert_pem": "/nonexistent/c.pem"}),
            "redis_tls_cert_pem",
        ),
        (
            json!({"enabled": true, "server_ca_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}),
            "certificates",
        ),
        (
            json!({"enabled": true, "server_name": "redis.internal"}),
            "redis_tls_server_name",
        ),
    ] {
        let mut engine = addr.clone();
        engine["redis"]["tls"] = tls.clone();
        let cfg = json!({"engine": engine}).to_string();
        let (status, out) = run_rotor_with_config_text(&cfg, Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("kept running with {tls}: {out}"));
        assert!(!status.success(), "{tls}: {out}");
        assert!(out.contains(needle), "{tls}: no {needle:?} in {out}");
        assert!(!out.contains("panicked"), "{tls}: {out}");
    }
}
