//! The NATS broker over TLS (issue 17): a real `nats-server` with `--tls` (and `--tlsverify`
//! for mutual TLS) and certificates made here with rcgen, Rotor nodes configured with the v6
//! `broker.nats.tls` object (in the file, or through `CENTRIFUGO_BROKER_NATS_TLS_*`).
//! A publication through one node's API reaches a subscriber on another; a client certificate
//! and `server_name` work; a server certificate that does not verify (or a refused client)
//! keeps the node unhealthy with failing publishes and a log line saying why;
//! `insecure_skip_verify` accepts any certificate; an unusable PEM stops `rotor` at start,
//! naming the key.

mod common;
mod nats_support;
mod redis_support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nats_support::{channel_options, nats_available, EnvNode};
use redis_support::{health, wait_until};
use serde_json::{json, Value};

/// A CA and what it signed, written to files of a scratch directory (removed on drop).
struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

impl Pki {
    /// A CA, a server certificate for `server_names`, and a client certificate.
    fn new(server_names: &[&str]) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = std::env::temp_dir().join(format!(
            "rotor-nats-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>, file: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{file}-key.pem")), key.serialize_pem()).unwrap();
        };
        leaf(
            server_names.iter().map(|s| s.to_string()).collect(),
            "server",
        );
        leaf(vec!["rotor-node".into()], "client");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            ca_pem: ca.pem(),
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `nats-server` that only speaks TLS, on a free port of 127.0.0.1; killed by PID on drop.
struct TlsNats {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl TlsNats {
    /// `--tls` with the PKI's server certificate; `verify_clients`: `--tlsverify` with its CA.
    fn start(pki: &Pki, verify_clients: bool) -> TlsNats {
        let port = free_port();
        let log = pki.dir.join(format!("nats-{port}.log"));
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "--tls"])
            .args(["--tlscert", &pki.path("server.pem")])
            .args(["--tlskey", &pki.path("server-key.pem")]);
        if verify_clients {
            cmd.args(["--tlsverify", "--tlscacert", &pki.path("ca.pem")]);
        }
        let child = cmd
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let mut nats = TlsNats { port, child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = nats.child.try_wait().ok().flatten().is_some();
            assert!(!exited, "nats-server exited at start:\n{}", nats.log());
            assert!(Instant::now() < deadline, "nats-server does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        nats
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("----- nats log (newest first) -----\n{}", tail.join("\n"));
        }
    }
}

/// The v6 `broker` section for NATS at `url` with the TLS object `tls`.
fn broker(url: &str, tls: Value) -> Value {
    json!({"enabled": true, "type": "nats",
           "nats": {"url": url, "prefix": "rotor-tls", "tls": tls}})
}

/// A v6-configured node (file config) named `name`.
async fn node(name: &str, url: &str, tls: Value) -> Server {
    let mut cfg = channel_options();
    cfg["name"] = json!(name);
    cfg["broker"] = broker(url, tls);
    Server::start(cfg).await
}

/// A node configured through the environment: the v6 `CENTRIFUGO_BROKER_NATS_*` names.
fn env_node(name: &str, url: &str, tls: &[(&str, &str)]) -> EnvNode {
    let mut cfg = channel_options();
    cfg["name"] = json!(name);
    let mut env = vec![
        ("CENTRIFUGO_BROKER_ENABLED", "true"),
        ("CENTRIFUGO_BROKER_TYPE", "nats"),
        ("CENTRIFUGO_BROKER_NATS_URL", url),
        ("CENTRIFUGO_BROKER_NATS_PREFIX", "rotor-tls"),
    ];
    env.extend_from_slice(tls);
    EnvNode::start(cfg, &env)
}

async fn env_health(n: &EnvNode) -> u16 {
    let url = format!("http://127.0.0.1:{}/health", n.port);
    match http().get(url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_healthy(n: &Server) {
    wait_until(
        Duration::from_secs(10),
        "the node to be healthy",
        || async { health(n).await == 200 },
    )
    .await;
}

/// A v2 client of `n` subscribed to `ch`.
async fn subscriber(n: &Server, ch: &str) -> Ws {
    let (mut ws, _) = n.v2_client("alice").await;
    let rep = ws.call_v2("subscribe", json!({"channel": ch})).await;
    assert!(rep.get("error").is_none(), "subscribe {ch}: {rep}");
    ws
}

/// The data of the next publication push on `ch` (within 10 s).
async fn next_data(ws: &mut Ws, ch: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = ws
            .push_within(left)
            .await
            .unwrap_or_else(|| panic!("no publication on {ch} within 10 s"));
        if let Some(pb) = p["push"].get("pub") {
            assert_eq!(p["push"]["channel"], json!(ch), "{p}");
            return pb["data"].clone();
        }
    }
}

/// `reply` (of a publish of `{"over": "tls"}` on `ch` through another node's API) is an
/// acknowledgement, and the client `ws` receives the publication.
async fn assert_delivered(reply: String, ws: &mut Ws, ch: &str) {
    assert_eq!(
        serde_json::from_str::<Value>(&reply).ok(),
        Some(json!({})),
        "publish on the other node: {reply}"
    );
    assert_eq!(next_data(ws, ch).await, json!({"over": "tls"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v6_nodes_deliver_over_tls() {
    if !nats_available() {
        return;
    }
    let pki = Pki::new(&["127.0.0.1", "localhost"]);
    let nats = TlsNats::start(&pki, false);
    let tls = json!({"enabled": true, "server_ca_pem": pki.path("ca.pem")});
    let a = node("tls-a", &nats.url(), tls.clone()).await;
    let b = node("tls-b", &nats.url(), tls).await;
    wait_healthy(&a).await;
    wait_healthy(&b).await;
    let mut ws = subscriber(&a, "news").await;
    let lines = api_v1(
        &b,
        "publish",
        json!({"channel": "news", "data": {"over": "tls"}}),
    )
    .await;
    assert_delivered(lines[0].to_string(), &mut ws, "news").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate_and_server_name() {
    if !nats_available() {
        return;
    }
    // The server certificate names only nats.internal; the URL says 127.0.0.1.
    let pki = Pki::new(&["nats.internal"]);
    let nats = TlsNats::start(&pki, true);
    // A: the file config, the CA as PEM text, the client certificate as files.
    let a = node(
        "mtls-a",
        &nats.url(),
        json!({"enabled": true, "server_ca_pem": pki.ca_pem,
               "cert_pem": pki.path("client.pem"), "key_pem": pki.path("client-key.pem"),
               "server_name": "nats.internal", "client_ca_pem": pki.path("ca.pem")}),
    )
    .await;
    // B: the same through the environment.
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client-key.pem"),
    );
    let b = env_node(
        "mtls-b",
        &nats.url(),
        &[
            ("CENTRIFUGO_BROKER_NATS_TLS_ENABLED", "true"),
            ("CENTRIFUGO_BROKER_NATS_TLS_SERVER_CA_PEM", &ca),
            ("CENTRIFUGO_BROKER_NATS_TLS_CERT_PEM", &cert),
            ("CENTRIFUGO_BROKER_NATS_TLS_KEY_PEM", &key),
            ("CENTRIFUGO_BROKER_NATS_TLS_SERVER_NAME", "nats.internal"),
        ],
    );
    wait_healthy(&a).await;
    wait_until(Duration::from_secs(10), "node B to be healthy", || async {
        env_health(&b).await == 200
    })
    .await;
    let mut ws = subscriber(&a, "news").await;
    let reply = b.publish("news", json!({"over": "tls"})).await;
    assert_delivered(reply, &mut ws, "news").await;

    // Without a client certificate the server refuses the node; without server_name the
    // certificate does not hold the URL's host. Either way: unhealthy, publishes fail.
    let no_cert = node(
        "mtls-no-cert",
        &nats.url(),
        json!({"enabled": true, "server_ca_pem": pki.path("ca.pem"), "server_name": "nats.internal"}),
    )
    .await;
    let no_name = node(
        "mtls-no-name",
        &nats.url(),
        json!({"enabled": true, "server_ca_pem": pki.path("ca.pem"),
               "cert_pem": pki.path("client.pem"), "key_pem": pki.path("client-key.pem")}),
    )
    .await;
    for (n, why) in [(&no_cert, "alert"), (&no_name, "not valid for name")] {
        assert_unavailable(n).await;
        assert_explained(n, why).await;
    }
    // The first two are still fine.
    assert_eq!(health(&a).await, 200);
}

/// `/health` stays 503 for 2 s and an API publish answers an error, not an ack.
async fn assert_unavailable(n: &Server) {
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(health(n).await, 503, "node {} should be unhealthy", n.port);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lines = api_v1(n, "publish", json!({"channel": "news", "data": {"x": 1}})).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]["error"]["code"].as_u64().is_some_and(|c| c > 0),
        "a publish without NATS must fail: {lines:?}"
    );
}

/// The log says why TLS fails (async-nats itself only says "IO error").
async fn assert_explained(n: &Server, why: &str) {
    let out = n.wait_output("TLS to NATS fails").await;
    let line = out
        .lines()
        .find(|l| l.contains("TLS to NATS fails"))
        .unwrap_or_else(|| panic!("no explanation of the TLS failure in:\n{out}"));
    assert!(line.contains(why), "expected {why:?} in {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_server_keeps_the_node_unhealthy() {
    if !nats_available() {
        return;
    }
    let pki = Pki::new(&["127.0.0.1"]);
    let nats = TlsNats::start(&pki, false);
    // TLS on, no CA: the system roots do not know the test CA.
    let n = node("no-ca", &nats.url(), json!({"enabled": true})).await;
    assert_unavailable(&n).await;
    let out = n.output();
    assert!(out.contains("NATS is not reachable yet"), "{out}");
    assert_explained(&n, "UnknownIssuer").await;
    // A tls:// URL alone asks for TLS with the system roots: the same.
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let n = node("tls-url", &url, json!({})).await;
    assert_unavailable(&n).await;
    assert_explained(&n, "UnknownIssuer").await;
    // With the CA, the same server is fine.
    let ok = node(
        "with-ca",
        &url,
        json!({"enabled": true, "server_ca_pem": pki.path("ca.pem")}),
    )
    .await;
    wait_healthy(&ok).await;
    // insecure_skip_verify: any certificate.
    let any = node(
        "insecure",
        &nats.url(),
        json!({"enabled": true, "insecure_skip_verify": true}),
    )
    .await;
    wait_healthy(&any).await;
}

/// Runs `rotor` with the v6 broker TLS object `tls`; it must exit at start, its output
/// naming `needle`.
fn assert_exits_naming(tls: Value, needle: &str) {
    let mut cfg = base_config(free_port());
    cfg["broker"] = broker("nats://127.0.0.1:1", tls.clone());
    let (status, out) = run_rotor_with_config_text(&cfg.to_string(), Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("rotor kept running with {tls}:\n{out}"));
    assert!(!status.success(), "{tls}: {out}");
    assert!(
        out.contains(needle),
        "{tls}: expected {needle:?} in:\n{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn bad_tls_settings_stop_rotor_at_start() {
    // No nats-server needed: the PEM values are read before connecting.
    let pki = Pki::new(&["127.0.0.1"]);
    let missing = pki.path("missing.pem");
    let not_pem = pki.path("not.pem");
    std::fs::write(
        &not_pem,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (tls, needle) in [
        (
            json!({"enabled": true, "server_ca_pem": missing}),
            "nats_tls_server_ca_pem (broker.nats.tls.server_ca_pem): cannot read",
        ),
        (
            json!({"enabled": true, "server_ca_pem": not_pem}),
            "broker.nats.tls.server_ca_pem",
        ),
        (
            json!({"enabled": true, "server_ca_pem": pki.path("ca.pem"), "cert_pem": pki.path("client.pem")}),
            "a client certificate needs both",
        ),
        (
            json!({"enabled": true, "server_ca_pem": pki.path("ca.pem"),
                   "cert_pem": pki.path("client.pem"), "key_pem": missing}),
            "broker.nats.tls.key_pem",
        ),
        (
            json!({"enabled": true, "server_ca_pem": pki.path("ca.pem"), "server_name": "a b"}),
            "broker.nats.tls.server_name",
        ),
        (
            json!({"enabled": true, "ca_file": "x"}),
            "nats_tls_ca_file: unknown NATS TLS option",
        ),
    ] {
        assert_exits_naming(tls, needle);
    }
}
