//! The command line with asymmetric tokens and JWKS, on the real binary: `checkconfig` accepts
//! RS256 and JWKS configurations of both generations and refuses a bad PEM, a bad regex, an
//! exact and a regex check of one claim, and an unsafe JWKS template, in one line naming the
//! key; `gentoken` / `gensubtoken --private-key` make tokens that `checktoken` accepts, that
//! `openssl` / Python `cryptography` verify independently, and that a started server accepts;
//! `checktoken` verifies through a JWKS endpoint.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{Server, Ws};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("rotor-clitok-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    #[track_caller]
    fn assert_one_line_error(&self, want: &[&str]) {
        assert_eq!(self.code, Some(1), "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        for w in want {
            assert!(lines[0].contains(w), "{w:?} not in {self:?}");
        }
    }
}

/// `rotor ARGS` in `dir`, without any CENTRIFUGO_/ROTOR_ variable of the test process.
/// `async` callers run it on a blocking thread (a JWKS server may run on this runtime).
fn rotor(dir: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("CENTRIFUGO_") || k.starts_with("ROTOR_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run rotor");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run helper");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `openssl genpkey` of `kind` (`rsa`, `p256`, `p521`, `ed25519`); returns (private, public).
fn keypair(dir: &Path, name: &str, kind: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let mut cmd = Command::new("openssl");
    cmd.arg("genpkey");
    match kind {
        "rsa" => cmd.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        "p256" => cmd.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        "p521" => cmd.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]),
        _ => cmd.args(["-algorithm", "ed25519"]),
    };
    sh(cmd.arg("-out").arg(&private));
    sh(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public));
    (private, public)
}

fn write_config(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

fn pem(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

/// Verifies an RS256 token with `openssl dgst -sha256 -verify`.
fn openssl_verifies_rs256(dir: &Path, token: &str, public: &Path) -> bool {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let data = dir.join("input.bin");
    let sigfile = dir.join("sig.bin");
    std::fs::write(&data, input).unwrap();
    std::fs::write(&sigfile, URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(&sigfile)
        .arg(&data)
        .output()
        .unwrap()
        .status
        .success()
}

/// Verifies an ES256/ES512/EdDSA token with Python `cryptography`.
fn python_verifies(token: &str, public: &Path) -> bool {
    const PY: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
d = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
token, key = sys.argv[1], serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
data, sig = token.rsplit(".", 1)
sig = d(sig)
if isinstance(key, ec.EllipticCurvePublicKey):
    n = len(sig) // 2
    h = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
    der = encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
    key.verify(der, data.encode(), ec.ECDSA(h))
else:
    key.verify(sig, data.encode())
"#;
    Command::new("python3")
        .args(["-c", PY, token])
        .arg(public)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn checkconfig_accepts_rs256_and_jwks_and_refuses_bad_token_settings_naming_the_key() {
    let dir = scratch();
    let (_, rsa_pub) = keypair(&dir, "rsa", "rsa");
    let (_, ec_pub) = keypair(&dir, "ec", "p256");
    let ok = [
        json!({"token_rsa_public_key": pem(&rsa_pub), "token_ecdsa_public_key": pem(&ec_pub)}),
        json!({"client": {"token": {"rsa_public_key": pem(&rsa_pub),
            "issuer_regex": "^https://idp/(a|b)$"}}}),
        json!({"client": {"token": {
            "jwks_public_endpoint": "https://idp.example.com/{{tenant}}/.well-known/jwks.json",
            "issuer_regex": "^https://idp\\.example\\.com/(?P<tenant>acme|globex)$"},
            "subscription_token": {"enabled": true, "ecdsa_public_key": pem(&ec_pub)}}}),
        json!({"token_jwks_public_endpoint": "https://idp.example.com/jwks"}),
    ];
    for (i, cfg) in ok.iter().enumerate() {
        let path = write_config(&dir, &format!("ok{i}.json"), cfg);
        let out = rotor(&dir, &["checkconfig", "-c", s(&path)]);
        assert_eq!(out.code, Some(0), "{cfg}: {out:?}");
        assert!(out.stderr.contains("is valid"), "{out:?}");
        assert!(!out.stderr.contains("not supported"), "{out:?}");
    }
    let pkcs1 = sh(Command::new("openssl")
        .args(["rsa", "-pubin", "-RSAPublicKey_out", "-in"])
        .arg(&rsa_pub));
    let bad: [(Value, &[&str]); 6] = [
        (
            json!({"token_rsa_public_key": pkcs1}),
            &[r#""token_rsa_public_key""#, "RSA PUBLIC KEY", "PUBLIC KEY"],
        ),
        (
            json!({"client": {"token": {"ecdsa_public_key": pem(&rsa_pub)}}}),
            &[r#""client.token.ecdsa_public_key""#, "an RSA key"],
        ),
        (
            json!({"client": {"token": {"audience_regex": "(x"}}}),
            &[r#""client.token.audience_regex""#, "regular expression"],
        ),
        (
            json!({"token_audience": "a", "token_audience_regex": "a"}),
            &[r#""token_audience_regex""#, "together with token_audience"],
        ),
        (
            json!({"client": {"subscription_token": {"enabled": true,
                "issuer": "i", "issuer_regex": "i"}}}),
            &[
                r#""client.subscription_token.issuer_regex""#,
                "together with client.subscription_token.issuer",
            ],
        ),
        (
            json!({"client": {"token": {
                "jwks_public_endpoint": "https://idp.example.com/{{tenant}}/jwks",
                "issuer_regex": "^https://idp/(?P<tenant>[a-z]+)$"}}}),
            &[r#""client.token.issuer_regex""#],
        ),
    ];
    for (i, (cfg, want)) in bad.iter().enumerate() {
        let path = write_config(&dir, &format!("bad{i}.json"), cfg);
        rotor(&dir, &["checkconfig", "-c", s(&path)]).assert_one_line_error(want);
        // The server refuses to start the same way.
        rotor(&dir, &["-c", s(&path)]).assert_one_line_error(want);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gentoken_with_private_keys_makes_tokens_checktoken_and_others_accept() {
    let dir = scratch();
    let (rsa, rsa_pub) = keypair(&dir, "rsa", "rsa");
    let (ec, ec_pub) = keypair(&dir, "ec", "p256");
    let (ec521, ec521_pub) = keypair(&dir, "ec521", "p521");
    let (ed, ed_pub) = keypair(&dir, "ed", "ed25519");
    let cfg = write_config(
        &dir,
        "c.json",
        &json!({"token_rsa_public_key": pem(&rsa_pub), "token_ecdsa_public_key": pem(&ec_pub)}),
    );
    let c = s(&cfg);
    let out = rotor(
        &dir,
        &["gentoken", "-c", c, "-u", "alice", "--private-key", s(&rsa)],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("RS256 connection token"), "{out:?}");
    let token = out.stdout.clone();
    assert_eq!(header_of(&token)["alg"], "RS256");
    assert!(openssl_verifies_rs256(&dir, &token, &rsa_pub));
    assert!(!openssl_verifies_rs256(&dir, &token, &ec_pub));
    let out = rotor(&dir, &["checktoken", "-c", c, &token]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(r#"user "alice""#), "{out:?}");
    // RS512 on request; ES256 from the EC key; both accepted.
    let args = ["--private-key", s(&rsa), "--alg", "RS512"];
    let out = rotor(
        &dir,
        &[&["gentoken", "-c", c, "-u", "bob"][..], &args].concat(),
    );
    assert_eq!(header_of(&out.stdout)["alg"], "RS512");
    assert_eq!(
        rotor(&dir, &["checktoken", "-c", c, &out.stdout]).code,
        Some(0)
    );
    let out = rotor(
        &dir,
        &["gentoken", "-c", c, "-u", "bob", "--private-key", s(&ec)],
    );
    assert_eq!(header_of(&out.stdout)["alg"], "ES256");
    assert!(python_verifies(&out.stdout, &ec_pub), "{out:?}");
    assert_eq!(
        rotor(&dir, &["checktoken", "-c", c, &out.stdout]).code,
        Some(0)
    );
    // ES512 and EdDSA: verified by Python; this config has no key for them.
    let out = rotor(&dir, &["gentoken", "-c", c, "--private-key", s(&ec521)]);
    assert_eq!(header_of(&out.stdout)["alg"], "ES512");
    assert!(python_verifies(&out.stdout, &ec521_pub), "{out:?}");
    let check = rotor(&dir, &["checktoken", "-c", c, &out.stdout]);
    assert_eq!(check.code, Some(1), "{check:?}");
    let out = rotor(
        &dir,
        &["gentoken", "-c", c, "--private-key", s(&ed), "--kid", "e1"],
    );
    assert_eq!(
        header_of(&out.stdout),
        json!({"alg": "EdDSA", "typ": "JWT", "kid": "e1"})
    );
    assert!(python_verifies(&out.stdout, &ed_pub), "{out:?}");
    // Subscription tokens.
    let args = ["-u", "alice", "-s", "$x", "--private-key", s(&rsa)];
    let out = rotor(&dir, &[&["gensubtoken", "-c", c][..], &args].concat());
    assert_eq!(out.code, Some(0), "{out:?}");
    let check = rotor(&dir, &["checksubtoken", "-c", c, &out.stdout]);
    assert!(check.stdout.contains(r#"channel "$x""#), "{check:?}");
    // Wrong choices are one-line errors.
    let args = ["--private-key", s(&ec), "--alg", "RS256"];
    rotor(&dir, &[&["gentoken", "-c", c][..], &args].concat())
        .assert_one_line_error(&["--alg RS256 does not fit this key: use ES256"]);
    rotor(&dir, &["gentoken", "-c", c, "--private-key", s(&rsa_pub)])
        .assert_one_line_error(&["PUBLIC KEY", "not a private key"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// Serves `body` as JSON at any path, counting requests.
async fn jwks_server(body: String) -> (u16, std::sync::Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checktoken_verifies_through_jwks_and_a_server_accepts_gentoken_tokens() {
    let dir = scratch();
    let (rsa, rsa_pub) = keypair(&dir, "rsa", "rsa");
    let (other, _) = keypair(&dir, "other", "rsa");
    // The JWK of the public key, from openssl's modulus.
    let modulus = sh(Command::new("openssl")
        .args(["rsa", "-pubin", "-noout", "-modulus", "-in"])
        .arg(&rsa_pub));
    let hex = modulus.trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let jwk = json!({"kty": "RSA", "use": "sig", "kid": "k1",
        "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"});
    let (port, requests) = jwks_server(json!({"keys": [jwk]}).to_string()).await;
    let cfg = write_config(
        &dir,
        "jwks.json",
        &json!({"client": {"token": {
            "jwks_public_endpoint": format!("http://127.0.0.1:{port}/jwks")}}}),
    );
    let c = s(&cfg).to_string();
    let d = dir.clone();
    let key = rsa.clone();
    let (good, bad, forged) = tokio::task::spawn_blocking(move || {
        let mint = |key: &Path, kid: &str| {
            let out = rotor(
                &d,
                &[
                    "gentoken",
                    "-c",
                    &c,
                    "-u",
                    "alice",
                    "--private-key",
                    s(key),
                    "--kid",
                    kid,
                ],
            );
            assert_eq!(out.code, Some(0), "{out:?}");
            out.stdout
        };
        let token = mint(&key, "k1");
        let good = rotor(&d, &["checktoken", "-c", &c, &token]);
        let bad = rotor(&d, &["checktoken", "-c", &c, &mint(&key, "k2")]);
        let forged = rotor(&d, &["checktoken", "-c", &c, &mint(&other, "k1")]);
        (good, bad, forged)
    })
    .await
    .unwrap();
    assert_eq!(good.code, Some(0), "{good:?}");
    assert!(good.stdout.contains(r#"user "alice""#), "{good:?}");
    bad.assert_one_line_error(&["token is not valid"]);
    forged.assert_one_line_error(&["token is not valid", "signature"]);
    assert!(
        requests.load(Ordering::SeqCst) >= 3,
        "checktoken fetched the set"
    );

    // A server with an RS256 public key accepts a gentoken token (v2 connect).
    let server = Server::start(json!({"token_rsa_public_key": pem(&rsa_pub)})).await;
    let cfg = write_config(
        &dir,
        "rs.json",
        &json!({"token_rsa_public_key": pem(&rsa_pub)}),
    );
    let args = [
        "gentoken",
        "-c",
        s(&cfg),
        "-u",
        "dave",
        "--private-key",
        s(&rsa),
    ];
    let token = rotor(&dir, &args).stdout;
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws.connect_v2(&token).await;
    assert!(res["client"].is_string(), "{res}");
    let _ = std::fs::remove_dir_all(dir);
}
