//! Operator-facing defences over real sockets: the admin login's per-address rate limit (429
//! with `Retry-After`, another address unaffected, right passwords not counted, a bounded
//! body), and TLS versions on the client and gRPC API listeners (1.2 and 1.3 negotiate, a
//! TLS 1.1 or 1.0 ClientHello gets a fatal alert; with openssl installed, also
//! `openssl s_client -tls1_1/-tls1_2/-tls1_3`).

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// The server's burst of failed logins per address (`admin/login_limit.rs`).
const BURST: usize = 5;

/// An HTTP client whose connections leave from `local` (any 127.x address reaches 127.0.0.1
/// on Linux).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn login(c: &reqwest::Client, server: &Server, password: &str) -> (u16, Option<u64>) {
    let r = c
        .post(server.http_url("/admin/auth"))
        .body(json!({ "password": password }).to_string())
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (r.status().as_u16(), retry)
}

#[tokio::test]
async fn admin_login_is_rate_limited_per_address() {
    let server = Server::start(json!({
        "admin": true,
        "admin_password": "pass",
        "admin_secret": "admin-secret",
    }))
    .await;
    let a = client_from("127.0.0.2");
    // Right passwords are not counted: more logins than the burst all succeed.
    for _ in 0..BURST + 2 {
        assert_eq!(login(&a, &server, "pass").await.0, 200);
    }
    // The burst of wrong passwords, in parallel: each a 401 (after the delay).
    let wrong = (0..BURST).map(|_| login(&a, &server, "guess"));
    for (status, _) in futures_util::future::join_all(wrong).await {
        assert_eq!(status, 401);
    }
    // Then every attempt from that address is refused at once, the right password too (a
    // 200 among the 429s would confirm a guess).
    for password in ["guess", "pass"] {
        let started = Instant::now();
        let (status, retry) = login(&a, &server, password).await;
        assert_eq!(status, 429, "{password}");
        let retry = retry.expect("Retry-After");
        assert!((1..=12).contains(&retry), "Retry-After {retry}");
        assert!(started.elapsed() < Duration::from_millis(500), "no delay");
    }
    // Another address is not affected.
    let b = client_from("127.0.0.3");
    assert_eq!(login(&b, &server, "guess").await.0, 401);
    assert_eq!(login(&b, &server, "pass").await.0, 200);
    // An oversized login body: 413, the server lives on.
    let r = b
        .post(server.http_url("/admin/auth"))
        .body(format!(r#"{{"password":"{}"}}"#, "x".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert!(server.output().contains("admin login rate limit reached"));
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn admin_login_budget_refills() {
    let server = Server::start(json!({"admin": true, "admin_password": "pass"})).await;
    let a = client_from("127.0.0.4");
    let wrong = (0..BURST).map(|_| login(&a, &server, "guess"));
    futures_util::future::join_all(wrong).await;
    let (status, retry) = login(&a, &server, "pass").await;
    assert_eq!(status, 429);
    // After the advertised wait one more attempt is allowed.
    tokio::time::sleep(Duration::from_secs(retry.unwrap()) + Duration::from_millis(200)).await;
    assert_eq!(login(&a, &server, "pass").await.0, 200);
}

// ---------------------------------------------------------------------------------------------
// TLS versions
// ---------------------------------------------------------------------------------------------

/// A self-signed certificate for 127.0.0.1 as PEM files, and clients that trust it.
struct Pki {
    dir: std::path::PathBuf,
    roots: RootCertStore,
}

impl Pki {
    fn new() -> Pki {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let dir =
            std::env::temp_dir().join(format!("rotor-tlsv-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ck.cert.der().to_vec()))
            .unwrap();
        Pki { dir, roots }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// Handshakes offering only `version`; the negotiated version or the error.
    async fn handshake(
        &self,
        port: u16,
        version: &'static rustls::SupportedProtocolVersion,
        alpn: &[u8],
    ) -> Result<rustls::ProtocolVersion, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio::time::timeout(
            WAIT,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(tls.get_ref().1.protocol_version().unwrap())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A ClientHello that offers at most `version` (0x0302 = TLS 1.1, 0x0301 = TLS 1.0) and no
/// `supported_versions` extension.
fn legacy_client_hello(version: u16) -> Vec<u8> {
    // CBC suites of that era plus the AEAD ones the server has, so the version is the only
    // thing that does not match.
    let suites: [u16; 6] = [0xc02b, 0xc02f, 0xc013, 0xc014, 0x002f, 0x0035];
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
                                     // Extensions: supported_groups (secp256r1), ec_point_formats (uncompressed) and
                                     // signature_algorithms (ecdsa_secp256r1_sha256, rsa_pkcs1_sha256, rsa_pss_rsae_sha256).
    let ext: [u8; 26] = [
        0, 10, 0, 4, 0, 2, 0, 23, 0, 11, 0, 2, 1, 0, 0, 13, 0, 8, 0, 6, 4, 3, 4, 1, 8, 4,
    ];
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1u8]; // ClientHello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Sends a ClientHello and returns the start of the server's answer (its first record
/// header and first handshake or alert bytes).
async fn legacy_answer(port: u16, version: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&legacy_client_hello(version)).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 1024];
    while out.len() < 7 {
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("the server answers")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    out
}

/// Asserts the answer is a fatal alert (rustls sends `handshake_failure` for a client whose
/// highest version is too old), and no ServerHello.
fn assert_refused(answer: &[u8], what: &str) {
    assert!(answer.len() >= 7, "{what}: {answer:?}");
    assert_eq!(
        answer[0], 0x15,
        "{what}: an alert record, not a ServerHello: {answer:?}"
    );
    assert_eq!(answer[5], 2, "{what}: a fatal alert: {answer:?}");
}

/// `openssl s_client` offering one version: (handshake completed, output).
fn openssl(port: u16, flag: &str) -> Option<(bool, String)> {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), flag])
        // Let the client itself offer the old version (OpenSSL 3 refuses it at level 1).
        .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let done = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    Some((done, text))
}

async fn check_listener(pki: &Pki, port: u16, alpn: &[u8], what: &str) {
    for (version, want) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        assert_eq!(
            pki.handshake(port, version, alpn).await,
            Ok(want),
            "{what} {want:?}"
        );
    }
    for legacy in [0x0302, 0x0301] {
        let answer = legacy_answer(port, legacy).await;
        assert_refused(&answer, &format!("{what} {legacy:#06x}"));
    }
    // The same hello offering TLS 1.2 gets a ServerHello: the refusals are the version's.
    let answer = legacy_answer(port, 0x0303).await;
    assert_eq!(answer.first(), Some(&0x16), "{what} 0x0303: {answer:?}");
    assert_eq!(
        answer.get(5),
        Some(&2),
        "{what} 0x0303: a ServerHello: {answer:?}"
    );
    let Some((ok13, out13)) = openssl(port, "-tls1_3") else {
        eprintln!("openssl not installed: its checks skipped");
        return;
    };
    assert!(
        ok13 && out13.contains("TLSv1.3"),
        "{what} openssl -tls1_3:\n{out13}"
    );
    let (ok12, out12) = openssl(port, "-tls1_2").unwrap();
    assert!(
        ok12 && out12.contains("TLSv1.2"),
        "{what} openssl -tls1_2:\n{out12}"
    );
    let (ok11, out11) = openssl(port, "-tls1_1").unwrap();
    assert!(!ok11, "{what} openssl -tls1_1 must not complete:\n{out11}");
    // Either the server's alert, or (when this OpenSSL build cannot offer 1.1 at all) nothing
    // was negotiated; the raw ClientHellos above cover the server's side in both cases.
    assert!(
        out11.contains("alert handshake failure")
            || out11.contains("alert protocol version")
            || out11.contains("no protocols available")
            || out11.contains("unsupported protocol"),
        "{what} openssl -tls1_1:\n{out11}"
    );
}

#[tokio::test]
async fn tls_listeners_speak_1_2_and_1_3_only() {
    let pki = Pki::new();
    // 2.x keys: `grpc_api` inherits the HTTP `tls` pair; port 0, read back from the log.
    let server = Server::start(json!({
        "tls": true,
        "tls_cert": pki.path("cert.pem"),
        "tls_key": pki.path("key.pem"),
        "grpc_api": true,
        "grpc_api_port": 0,
    }))
    .await;
    server.wait_output("listening on https://").await;
    check_listener(&pki, server.port, b"http/1.1", "client listener").await;
    let needle = "grpc_api listening on 0.0.0.0:";
    let out = server.wait_output(needle).await;
    let grpc_port: u16 = out
        .lines()
        .find_map(|l| l.split(needle).nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no {needle:?} line in:\n{out}"));
    check_listener(&pki, grpc_port, b"h2", "gRPC API listener").await;
    server.assert_alive();
}
