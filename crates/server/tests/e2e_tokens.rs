//! Asymmetric tokens and JWKS end to end, on real sockets: the `rotor` binary with RS256 /
//! ES256 public keys (made by the `openssl` CLI) and with JWKS endpoints served by a small HTTP
//! server in the test; tokens minted by Python `cryptography` (independent of Rotor's code).
//! Raw WebSocket clients of both protocol generations connect and subscribe to private channels.
//! JWKS: key rotation, a removed key, the endpoint going down (uncached keys refused with the
//! invalid-token code, 3500 on v2 and 3002 on v1, the server healthy and the failure counted),
//! and per-tenant endpoints with the two 2026 CVE regressions (a tenant's `kid` never verifies
//! another tenant's token; an issuer outside the list never causes a request).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{http, Event, Server, Ws};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// Keys and tokens made outside Rotor
// ---------------------------------------------------------------------------------------------

/// Python: `sign ALG KEY HEADER CLAIMS` prints a compact JWS; `jwk KEY KID` prints a JWK.
const PY: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
num = lambda n, size: b64(n.to_bytes(size, "big"))
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
if sys.argv[1] == "jwk":
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        jwk = {"kty": "RSA", "n": num(n.n, (n.n.bit_length() + 7) // 8), "e": num(n.e, 3)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        jwk = {"kty": "EC", "crv": "P-%d" % pub.curve.key_size, "x": num(n.x, size), "y": num(n.y, size)}
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    jwk.update({"kid": sys.argv[3], "use": "sig"})
    print(json.dumps(jwk))
else:
    alg, header, claims = sys.argv[1], sys.argv[3], sys.argv[4]
    signing_input = (b64(header.encode()) + "." + b64(claims.encode())).encode()
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = key.sign(signing_input)
    print(signing_input.decode() + "." + b64(sig))
"#;

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("rotor-tokens-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run helper");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A private key made by `openssl genpkey`, with its public PEM.
struct Key {
    private: PathBuf,
    public_pem: String,
}

impl Key {
    /// `kind`: `rsa`, `p256` or `ed25519`.
    fn new(dir: &Path, name: &str, kind: &str) -> Key {
        let private = dir.join(format!("{name}.pem"));
        let mut cmd = Command::new("openssl");
        cmd.arg("genpkey");
        match kind {
            "rsa" => cmd.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
            "p256" => cmd.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            _ => cmd.args(["-algorithm", "ed25519"]),
        };
        run(cmd.arg("-out").arg(&private));
        let public_pem = run(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private));
        Key {
            private,
            public_pem: public_pem + "\n",
        }
    }

    /// A token signed with this key by Python `cryptography`.
    fn sign(&self, alg: &str, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        run(Command::new("python3")
            .args(["-c", PY, alg])
            .arg(&self.private)
            .arg(header.to_string())
            .arg(claims.to_string()))
    }

    fn jwk(&self, kid: &str) -> Value {
        let text = run(Command::new("python3")
            .args(["-c", PY, "jwk"])
            .arg(&self.private)
            .arg(kid));
        serde_json::from_str(&text).unwrap()
    }
}

fn exp() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now + 3600
}

// ---------------------------------------------------------------------------------------------
// A JWKS server
// ---------------------------------------------------------------------------------------------

/// Serves `{"keys": [...]}` per path, counts requests per path, can go down (connections
/// dropped without an answer).
#[derive(Clone, Default)]
struct Jwks {
    sets: Arc<Mutex<HashMap<String, Vec<Value>>>>,
    requests: Arc<Mutex<Vec<String>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    port: u16,
}

impl Jwks {
    async fn start() -> Jwks {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks = Jwks {
            port: listener.local_addr().unwrap().port(),
            ..Jwks::default()
        };
        let me = jwks.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or_default().to_string();
                    me.requests.lock().unwrap().push(path.clone());
                    if me.down.load(Ordering::SeqCst) {
                        return; // dropped: the client sees a broken connection
                    }
                    let keys = me.sets.lock().unwrap().get(&path).cloned();
                    let (status, body) = match keys {
                        Some(keys) => ("200 OK", json!({ "keys": keys }).to_string()),
                        None => ("404 Not Found", String::new()),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        jwks
    }

    fn set(&self, path: &str, keys: Vec<Value>) {
        self.sets.lock().unwrap().insert(path.to_string(), keys);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A v2 connect: `Ok(connect result)` or `Err(close code or error code)`.
async fn connect_v2(server: &Server, token: &str) -> Result<(Ws, Value), u64> {
    let mut ws = Ws::open(&server.ws_url()).await;
    let id = ws.cmd_v2("connect", json!({ "token": token })).await;
    wait_reply(ws, id, "connect").await
}

/// A v1 connect.
async fn connect_v1(server: &Server, token: &str) -> Result<(Ws, Value), u64> {
    let mut ws = Ws::open(&server.ws_url()).await;
    let id = ws.take_id();
    ws.send(&json!({"id": id, "params": {"token": token}}))
        .await;
    wait_reply(ws, id, "result").await
}

async fn wait_reply(mut ws: Ws, id: u64, field: &str) -> Result<(Ws, Value), u64> {
    loop {
        match ws.next_event_within(Duration::from_secs(10)).await {
            Some(Event::Value(v)) if v["id"] == json!(id) => {
                return match v.get(field) {
                    Some(res) => Ok((ws, res.clone())),
                    None => Err(v["error"]["code"].as_u64().unwrap_or(0)),
                };
            }
            Some(Event::Value(_)) => {}
            Some(Event::Closed(code, _)) => return Err(u64::from(code)),
            None => panic!("no reply to {field}"),
        }
    }
}

/// v2: connect as alice with `conn`, then subscribe to `$private` with `sub`.
async fn v2_connect_and_subscribe(server: &Server, conn: &str, sub: &str) {
    let (mut ws, res) = connect_v2(server, conn).await.expect("v2 connect");
    assert!(res["client"].is_string(), "{res}");
    let rep = ws
        .call_v2(
            "subscribe",
            json!({"channel": "$private", "token": sub, "flag": 1}),
        )
        .await;
    assert!(rep.get("error").is_none(), "v2 private subscribe: {rep}");
    assert!(rep["subscribe"].is_object(), "{rep}");
}

/// v1: connect with `conn`, then subscribe to `$private` with a token made by `sub(client)`.
async fn v1_connect_and_subscribe(server: &Server, conn: &str, sub: impl Fn(&str) -> String) {
    let (mut ws, res) = connect_v1(server, conn).await.expect("v1 connect");
    let client = res["client"].as_str().unwrap().to_string();
    let rep = ws.subscribe_v1_token("$private", &sub(&client)).await;
    assert!(rep.get("error").is_none(), "v1 private subscribe: {rep}");
}

fn conn_claims(user: &str) -> Value {
    json!({"sub": user, "exp": exp()})
}

fn sub_claims_v2(user: &str) -> Value {
    json!({"sub": user, "channel": "$private", "exp": exp()})
}

fn sub_claims_v1(client: &str) -> Value {
    json!({"client": client, "channel": "$private", "exp": exp()})
}

async fn metrics(server: &Server) -> String {
    let r = http()
        .get(server.http_url("/metrics"))
        .send()
        .await
        .unwrap();
    r.text().await.unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    let prefix = format!("{name}{{block=\"token\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics:\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_public_keys_connect_and_subscribe_on_both_generations() {
    let dir = scratch();
    let rsa = Key::new(&dir, "rsa", "rsa");
    let ec = Key::new(&dir, "ec", "p256");
    let other = Key::new(&dir, "other", "rsa");
    let server = Server::start(json!({
        "token_rsa_public_key": rsa.public_pem,
        "token_ecdsa_public_key": ec.public_pem,
    }))
    .await;
    for (alg, key) in [("RS256", &rsa), ("ES256", &ec)] {
        let conn = key.sign(alg, None, &conn_claims("alice"));
        let sub = key.sign(alg, None, &sub_claims_v2("alice"));
        v2_connect_and_subscribe(&server, &conn, &sub).await;
        v1_connect_and_subscribe(&server, &conn, |c| key.sign(alg, None, &sub_claims_v1(c))).await;
    }
    // A token of a key the server does not hold: invalid (3500 v2, 3002 v1).
    let forged = other.sign("RS256", None, &conn_claims("alice"));
    assert_eq!(connect_v2(&server, &forged).await.err(), Some(3500));
    assert_eq!(connect_v1(&server, &forged).await.err(), Some(3002));
    // An ES256 token on a private channel signed by the wrong key: 103 on v1.
    let conn = rsa.sign("RS256", None, &conn_claims("alice"));
    let (mut ws, res) = connect_v1(&server, &conn).await.unwrap();
    let client = res["client"].as_str().unwrap().to_string();
    let bad = other.sign("RS256", None, &sub_claims_v1(&client));
    let rep = ws.subscribe_v1_token("$private", &bad).await;
    assert_eq!(rep["error"]["code"], json!(103), "{rep}");
    // Expired: 109.
    let old = rsa.sign("RS256", None, &json!({"sub": "alice", "exp": 1000}));
    assert_eq!(connect_v2(&server, &old).await.err(), Some(109));
    server.assert_alive();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_rotate_and_an_endpoint_down_refuses_only_uncached_keys() {
    let dir = scratch();
    let k1 = Key::new(&dir, "k1", "rsa");
    let ed = Key::new(&dir, "ed", "ed25519");
    let es = Key::new(&dir, "es", "p256");
    let k2 = Key::new(&dir, "k2", "rsa");
    let k3 = Key::new(&dir, "k3", "rsa");
    let jwks = Jwks::start().await;
    jwks.set("/jwks", vec![k1.jwk("k1"), ed.jwk("ed"), es.jwk("es")]);
    let server = Server::start(json!({
        "token_jwks_public_endpoint": jwks.url("/jwks"),
        "prometheus": true,
        "health": true,
    }))
    .await;

    // RS256, EdDSA and ES256 keys from the set; subscription tokens too (no separate block).
    for (alg, key, kid) in [
        ("RS256", &k1, "k1"),
        ("EdDSA", &ed, "ed"),
        ("ES256", &es, "es"),
    ] {
        let conn = key.sign(alg, Some(kid), &conn_claims("alice"));
        let sub = key.sign(alg, Some(kid), &sub_claims_v2("alice"));
        v2_connect_and_subscribe(&server, &conn, &sub).await;
        v1_connect_and_subscribe(&server, &conn, |c| {
            key.sign(alg, Some(kid), &sub_claims_v1(c))
        })
        .await;
    }
    // The HMAC secret of the base config is not used beside JWKS.
    let hmac = common::conn_token("alice");
    assert_eq!(connect_v2(&server, &hmac).await.err(), Some(3500));
    let fetches = jwks.requests().len();
    assert_eq!(
        fetches,
        1,
        "one fetch served every key: {:?}",
        jwks.requests()
    );

    // Rotation: k1 removed, k2 published. After the refetch interval (5 s) the unknown kid
    // makes one fetch; then k2 verifies and k1 does not.
    jwks.set("/jwks", vec![k2.jwk("k2")]);
    tokio::time::sleep(Duration::from_millis(5300)).await;
    let t2 = k2.sign("RS256", Some("k2"), &conn_claims("bob"));
    connect_v2(&server, &t2)
        .await
        .expect("rotated key verifies");
    let t1 = k1.sign("RS256", Some("k1"), &conn_claims("alice"));
    assert_eq!(connect_v2(&server, &t1).await.err(), Some(3500));
    assert_eq!(jwks.requests().len(), 2, "{:?}", jwks.requests());

    // Endpoint down: a new kid is refused (3500 v2, 3002 v1), the cached k2 still verifies.
    jwks.down.store(true, Ordering::SeqCst);
    jwks.set("/jwks", vec![k2.jwk("k2"), k3.jwk("k3")]);
    tokio::time::sleep(Duration::from_millis(5300)).await;
    let t3 = k3.sign("RS256", Some("k3"), &conn_claims("carol"));
    assert_eq!(connect_v2(&server, &t3).await.err(), Some(3500));
    assert_eq!(connect_v1(&server, &t3).await.err(), Some(3002));
    connect_v2(&server, &t2)
        .await
        .expect("cached key keeps verifying");
    connect_v1(&server, &t2)
        .await
        .expect("cached key keeps verifying (v1)");
    server.assert_alive();
    let health = http().get(server.http_url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let m = metrics(&server).await;
    assert!(metric(&m, "rotor_jwks_fetch_failures_total") >= 1.0, "{m}");
    assert!(metric(&m, "rotor_jwks_fetches_total") >= 3.0, "{m}");
    assert!(metric(&m, "rotor_jwks_cache_hits_total") >= 1.0, "{m}");
    assert!(metric(&m, "rotor_jwks_cache_misses_total") >= 1.0, "{m}");
    // Back up: k3 verifies after the interval.
    jwks.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5300)).await;
    connect_v2(&server, &t3)
        .await
        .expect("k3 after the endpoint is back");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_jwks_keeps_tenants_apart_and_never_fetches_outside_the_list() {
    let dir = scratch();
    let acme = Key::new(&dir, "acme", "rsa");
    let globex = Key::new(&dir, "globex", "rsa");
    let jwks = Jwks::start().await;
    // Both tenants use the same kid: the cache must still keep them apart (CVE-2026-49998).
    jwks.set("/acme/jwks", vec![acme.jwk("main")]);
    jwks.set("/globex/jwks", vec![globex.jwk("main")]);
    let endpoint = format!("http://127.0.0.1:{}/{{{{tenant}}}}/jwks", jwks.port);
    let server = Server::start(json!({
        "client": {"token": {
            "jwks_public_endpoint": endpoint,
            "issuer_regex": r"^https://idp\.test/(?P<tenant>acme|globex)$",
            "audience": "rotor",
        }},
    }))
    .await;
    let claims = |iss: &str| json!({"sub": "u", "iss": iss, "aud": "rotor", "exp": exp()});
    let t_acme = acme.sign("RS256", Some("main"), &claims("https://idp.test/acme"));
    let t_globex = globex.sign("RS256", Some("main"), &claims("https://idp.test/globex"));
    connect_v2(&server, &t_acme).await.expect("acme");
    connect_v2(&server, &t_globex).await.expect("globex");
    let (mut ws, _) = connect_v2(&server, &t_acme).await.unwrap();
    let sub = acme.sign(
        "RS256",
        Some("main"),
        &json!({"sub": "u", "channel": "$private", "iss": "https://idp.test/acme",
            "aud": "rotor", "exp": exp()}),
    );
    let rep = ws
        .call_v2(
            "subscribe",
            json!({"channel": "$private", "token": sub, "flag": 1}),
        )
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    // The exact audience still applies.
    let no_aud = acme.sign(
        "RS256",
        Some("main"),
        &json!({"sub": "u", "iss": "https://idp.test/acme", "exp": exp()}),
    );
    assert_eq!(connect_v2(&server, &no_aud).await.err(), Some(3500));
    let mut seen = jwks.requests();
    seen.sort();
    assert_eq!(seen, ["/acme/jwks", "/globex/jwks"]);

    // CVE-2026-49998: acme's key (cached under kid "main") never verifies a globex token.
    let cross = acme.sign("RS256", Some("main"), &claims("https://idp.test/globex"));
    assert_eq!(connect_v2(&server, &cross).await.err(), Some(3500));
    assert_eq!(connect_v1(&server, &cross).await.err(), Some(3002));

    // CVE-2026-32301: issuers outside the list never make a request, whatever they hold.
    let before = jwks.requests().len();
    for iss in [
        "https://idp.test/initech",
        "https://idp.test/acme/../evil",
        "https://idp.test/acme%2f..%2fevil",
        "https://evil.test/acme",
        "https://idp.test/acme\n",
    ] {
        let forged = acme.sign("RS256", Some("other"), &claims(iss));
        assert_eq!(
            connect_v2(&server, &forged).await.err(),
            Some(3500),
            "{iss}"
        );
    }
    // No iss at all, and an unknown kid for a listed tenant within the refetch interval.
    let forged = acme.sign("RS256", Some("main"), &json!({"sub": "u", "exp": exp()}));
    assert_eq!(connect_v2(&server, &forged).await.err(), Some(3500));
    assert_eq!(jwks.requests().len(), before, "{:?}", jwks.requests());
    server.assert_alive();
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// SIGHUP
// ---------------------------------------------------------------------------------------------

/// `rotor -c FILE` whose file the test rewrites before sending `SIGHUP`; killed on drop.
struct Reloadable {
    child: std::process::Child,
    path: PathBuf,
    port: u16,
}

impl Reloadable {
    async fn start(dir: &Path, cfg: &Value) -> Reloadable {
        let port = common::free_port();
        let path = dir.join("reload.json");
        write_reloadable(&path, port, cfg);
        let child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("-c")
            .arg(&path)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let me = Reloadable { child, path, port };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("rotor did not listen on {port}");
    }

    async fn reload(&self, cfg: &Value) {
        write_reloadable(&self.path, self.port, cfg);
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    async fn connect(&self, token: &str) -> Result<Value, u64> {
        let mut ws = Ws::open(&self.url()).await;
        let id = ws.cmd_v2("connect", json!({ "token": token })).await;
        wait_reply(ws, id, "connect").await.map(|(_, v)| v)
    }
}

/// The config file of a [`Reloadable`]: its address and port plus `cfg`.
fn write_reloadable(path: &Path, port: u16, cfg: &Value) {
    let mut full = json!({"address": "127.0.0.1", "port": port, "api_key": "k"});
    for (k, v) in cfg.as_object().unwrap() {
        full[k] = v.clone();
    }
    std::fs::write(path, full.to_string()).unwrap();
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_keys_and_regexes_and_keeps_an_unchanged_jwks_cache() {
    let dir = scratch();
    let a = Key::new(&dir, "a", "rsa");
    let b = Key::new(&dir, "b", "p256");
    let server = Reloadable::start(&dir, &json!({"token_rsa_public_key": a.public_pem})).await;
    let ta = a.sign("RS256", None, &conn_claims("alice"));
    let tb = b.sign("ES256", None, &conn_claims("bob"));
    server.connect(&ta).await.expect("key a");
    assert_eq!(server.connect(&tb).await.err(), Some(3500));
    // New key and an issuer regex.
    server
        .reload(&json!({"token_ecdsa_public_key": b.public_pem, "token_issuer_regex": "^idp$"}))
        .await;
    assert_eq!(server.connect(&ta).await.err(), Some(3500));
    assert_eq!(server.connect(&tb).await.err(), Some(3500), "no iss");
    let tb_iss = b.sign(
        "ES256",
        None,
        &json!({"sub": "bob", "iss": "idp", "exp": exp()}),
    );
    server.connect(&tb_iss).await.expect("key b with iss");
    // A config that does not load changes nothing.
    server
        .reload(&json!({"token_ecdsa_public_key": b.public_pem, "token_issuer_regex": "("}))
        .await;
    server.connect(&tb_iss).await.expect("bad reload ignored");

    // JWKS: an unchanged endpoint keeps its cache (no new request), a changed regex rebuilds it.
    let jwks = Jwks::start().await;
    jwks.set("/jwks", vec![a.jwk("a")]);
    let with_kid = a.sign(
        "RS256",
        Some("a"),
        &json!({"sub": "u", "iss": "x1", "exp": exp()}),
    );
    let cfg = json!({"token_jwks_public_endpoint": jwks.url("/jwks")});
    server.reload(&cfg).await;
    server.connect(&with_kid).await.expect("jwks key");
    assert_eq!(jwks.requests().len(), 1);
    let mut cfg2 = cfg.clone();
    cfg2["token_user_id_claim"] = json!("sub");
    server.reload(&cfg2).await;
    server.connect(&with_kid).await.expect("cached jwks key");
    assert_eq!(jwks.requests().len(), 1, "cache kept across the reload");
    cfg2["token_issuer_regex"] = json!("^x");
    server.reload(&cfg2).await;
    server.connect(&with_kid).await.expect("refetched jwks key");
    assert_eq!(
        jwks.requests().len(),
        2,
        "a new source after the regex changed"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v6_separate_subscription_block_and_user_id_claim() {
    let dir = scratch();
    let conn_key = Key::new(&dir, "conn", "rsa");
    let sub_key = Key::new(&dir, "sub", "p256");
    let server = Server::start(json!({
        "client": {
            "token": {"rsa_public_key": conn_key.public_pem, "user_id_claim": "uid"},
            "subscription_token": {"enabled": true, "ecdsa_public_key": sub_key.public_pem,
                "audience_regex": "^subs$"},
        },
    }))
    .await;
    let conn = conn_key.sign(
        "RS256",
        None,
        &json!({"uid": "alice", "sub": "x", "exp": exp()}),
    );
    let (mut ws, res) = connect_v2(&server, &conn).await.expect("connect");
    assert!(res["client"].is_string(), "{res}");
    let subscribe = |token: String| json!({"channel": "$private", "token": token, "flag": 1});
    // The block's key and rules; the user is read with `sub` here (the block has no user_id_claim).
    let good = sub_key.sign(
        "ES256",
        None,
        &json!({"sub": "alice", "channel": "$private", "aud": ["x", "subs"], "exp": exp()}),
    );
    let rep = ws.call_v2("subscribe", subscribe(good)).await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    // Signed with the connection key: nothing inherited → 103.
    let (mut ws, _) = connect_v2(&server, &conn).await.unwrap();
    let inherited = conn_key.sign(
        "RS256",
        None,
        &json!({"sub": "alice", "channel": "$private", "aud": "subs", "exp": exp()}),
    );
    let rep = ws.call_v2("subscribe", subscribe(inherited)).await;
    assert_eq!(rep["error"]["code"], json!(103), "{rep}");
    // Audience regex of the block not matched → 103.
    let no_aud = sub_key.sign(
        "ES256",
        None,
        &json!({"sub": "alice", "channel": "$private", "aud": "other", "exp": exp()}),
    );
    let rep = ws.call_v2("subscribe", subscribe(no_aud)).await;
    assert_eq!(rep["error"]["code"], json!(103), "{rep}");
    // A connection token signed with the subscription key → 3500.
    let wrong = sub_key.sign("ES256", None, &json!({"uid": "alice", "exp": exp()}));
    assert_eq!(connect_v2(&server, &wrong).await.err(), Some(3500));
    server.assert_alive();
    let _ = std::fs::remove_dir_all(dir);
}
