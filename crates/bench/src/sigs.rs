//! Asymmetric token keys for the token benchmarks (issue 13): `rotor-bench token-keys`
//! generates one RSA 2048 (RS256), one P-256 (ES256) and one Ed25519 (EdDSA) key pair into a
//! directory: the private keys as PKCS#8 DER (`<alg>.pk8`, what the churn children sign with),
//! the public keys as `PUBLIC KEY` PEM (`<alg>.pub.pem`, for `token_rsa_public_key` /
//! `token_ecdsa_public_key`) and a JWKS document with the RSA and Ed25519 keys (`jwks.json`,
//! kids `rb-rs256` and `rb-eddsa`). ring generates the EC and Ed25519 keys; it cannot generate
//! RSA keys, so `openssl genpkey` does that one. `rotor-bench jwks` serves `jwks.json` over
//! plain HTTP/1.1 (one short connection per request, each logged to stderr, so a run can count
//! the fetches), as a process of its own.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use clap::{Args, ValueEnum};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};

/// The kids of the keys in `jwks.json`.
pub const KID_RS256: &str = "rb-rs256";
pub const KID_EDDSA: &str = "rb-eddsa";

/// Token signature algorithm of the churn scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
    Eddsa,
}

impl Alg {
    /// The JWS header `alg`.
    pub fn jws(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::Eddsa => "EdDSA",
        }
    }

    /// File stem of this algorithm's key files.
    pub fn stem(self) -> &'static str {
        match self {
            Alg::Hs256 => "hs256",
            Alg::Rs256 => "rs256",
            Alg::Es256 => "es256",
            Alg::Eddsa => "eddsa",
        }
    }
}

/// A private key that signs JWS signing inputs.
pub enum Private {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Private {
    /// Loads `<dir>/<alg>.pk8` (an asymmetric `alg`).
    pub fn load(alg: Alg, dir: &Path) -> Result<Self, String> {
        let path = dir.join(format!("{}.pk8", alg.stem()));
        let der = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let bad = |e: ring::error::KeyRejected| format!("{}: {e}", path.display());
        Ok(match alg {
            Alg::Hs256 => return Err("HS256 has no key file".into()),
            Alg::Rs256 => Private::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(bad)?),
            Alg::Es256 => Private::Ec(
                EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &der,
                    &SystemRandom::new(),
                )
                .map_err(bad)?,
            ),
            Alg::Eddsa => Private::Ed(Ed25519KeyPair::from_pkcs8(&der).map_err(bad)?),
        })
    }

    /// The JWS signature over `msg` (ECDSA: raw `r‖s`, as JWS wants).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Private::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                // Fails only for a key ring could not load in the first place.
                if k.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).is_err() {
                    sig.clear();
                }
                sig
            }
            Private::Ec(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Private::Ed(k) => k.sign(msg).as_ref().to_vec(),
        }
    }
}

// ------------------------------------------------------------------ key generation

#[derive(Args, Debug, Clone)]
pub struct KeysArgs {
    /// Directory to write the keys to (created if missing; existing keys are replaced).
    #[arg(long, default_value = "target/bench/token-keys")]
    pub dir: PathBuf,
}

/// `rotor-bench token-keys`.
pub fn generate(a: &KeysArgs) -> Result<(), String> {
    let dir = &a.dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(|e| format!("write {}: {e}", p.display()))
    };
    let rng = SystemRandom::new();
    // RSA 2048 through openssl (ring has no RSA key generation).
    // OpenSSL 3 writes the DER form as PKCS#1 RSAPrivateKey; ring wants it inside PKCS#8.
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .args(["-outform", "DER"])
        .output()
        .map_err(|e| format!("run openssl genpkey: {e}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(format!(
            "openssl genpkey failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    write("rs256.pk8", &pkcs8_rsa(&out.stdout))?;
    let rsa = match Private::load(Alg::Rs256, dir)? {
        Private::Rsa(k) => k,
        _ => return Err("rs256.pk8: not RSA".into()),
    };
    let rsa_pub = rsa.public().as_ref().to_vec(); // PKCS#1 RSAPublicKey DER
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "P-256 key generation failed")?;
    write("es256.pk8", ec.as_ref())?;
    let ed = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "Ed25519 key generation failed")?;
    write("eddsa.pk8", ed.as_ref())?;
    let ec_pub = match Private::load(Alg::Es256, dir)? {
        Private::Ec(k) => k.public_key().as_ref().to_vec(),
        _ => return Err("es256.pk8: not EC".into()),
    };
    let ed_pub = match Private::load(Alg::Eddsa, dir)? {
        Private::Ed(k) => k.public_key().as_ref().to_vec(),
        _ => return Err("eddsa.pk8: not Ed25519".into()),
    };
    write("rs256.pub.pem", pem(&spki_rsa(&rsa_pub)).as_bytes())?;
    write("es256.pub.pem", pem(&spki(EC_P256_ALG, &ec_pub)).as_bytes())?;
    write("eddsa.pub.pem", pem(&spki(ED25519_ALG, &ed_pub)).as_bytes())?;
    let (n, e) = rsa_n_e(&rsa_pub).ok_or("cannot parse the RSA public key")?;
    let jwks = format!(
        r#"{{"keys":[{{"kty":"RSA","use":"sig","alg":"RS256","kid":"{KID_RS256}","n":"{}","e":"{}"}},{{"kty":"OKP","use":"sig","alg":"EdDSA","crv":"Ed25519","kid":"{KID_EDDSA}","x":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode(n),
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(&ed_pub),
    );
    write("jwks.json", jwks.as_bytes())?;
    println!(
        "token keys in {}: rs256/es256/eddsa .pk8 and .pub.pem, jwks.json",
        dir.display()
    );
    Ok(())
}

/// AlgorithmIdentifier of id-ecPublicKey with prime256v1.
const EC_P256_ALG: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// AlgorithmIdentifier of id-Ed25519.
const ED25519_ALG: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/// AlgorithmIdentifier of rsaEncryption (with its NULL parameters).
const RSA_ALG: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// SubjectPublicKeyInfo DER: the algorithm and the key bits.
fn spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(key);
    let mut body = alg.to_vec();
    body.extend_from_slice(&der(0x03, &bits));
    der(0x30, &body)
}

/// PKCS#8 PrivateKeyInfo (version 0) around a PKCS#1 RSAPrivateKey.
fn pkcs8_rsa(pkcs1: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(RSA_ALG);
    body.extend_from_slice(&der(0x04, pkcs1));
    der(0x30, &body)
}

fn spki_rsa(pkcs1: &[u8]) -> Vec<u8> {
    spki(RSA_ALG, pkcs1)
}

/// `-----BEGIN PUBLIC KEY-----` PEM of a SubjectPublicKeyInfo DER.
fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// Reads one DER element: (tag, contents, rest).
fn der_take(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let (lb, rest) = b.split_at(n);
        b = rest;
        lb.iter().fold(0usize, |a, x| (a << 8) | *x as usize)
    };
    if b.len() < len {
        return None;
    }
    let (body, rest) = b.split_at(len);
    Some((tag, body, rest))
}

/// Modulus and exponent (big-endian, no leading zero) of a PKCS#1 RSAPublicKey.
fn rsa_n_e(pkcs1: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, seq, _) = der_take(pkcs1)? else {
        return None;
    };
    let (0x02, n, rest) = der_take(seq)? else {
        return None;
    };
    let (0x02, e, _) = der_take(rest)? else {
        return None;
    };
    let trim = |x: &[u8]| -> usize { x.iter().take_while(|b| **b == 0).count() };
    Some((&n[trim(n)..], &e[trim(e)..]))
}

// ------------------------------------------------------------------ JWKS server

#[derive(Args, Debug, Clone)]
pub struct JwksArgs {
    /// The JWKS document to serve (written by `token-keys`).
    #[arg(long, default_value = "target/bench/token-keys/jwks.json")]
    pub file: PathBuf,
    /// Address to listen on (port 0: any free port). The first stdout line is
    /// `LISTENING host:port`.
    #[arg(long, default_value = "127.0.0.1:18570")]
    pub listen: String,
}

/// `rotor-bench jwks`: answers every request with the document, until killed. Each request
/// is logged to stderr as `jwks: request N <request line>`.
pub fn serve_jwks(a: &JwksArgs) -> Result<(), String> {
    let body = std::fs::read(&a.file).map_err(|e| format!("read {}: {e}", a.file.display()))?;
    let listener =
        TcpListener::bind(&a.listen).map_err(|e| format!("listen on {}: {e}", a.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    println!("LISTENING {addr}");
    let _ = std::io::stdout().flush();
    let mut n = 0u64;
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut r = BufReader::new(match s.try_clone() {
            Ok(c) => c,
            Err(_) => continue,
        });
        let mut first = String::new();
        if r.read_line(&mut first).is_err() {
            continue;
        }
        // Skip the headers (no body is expected on a GET).
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => {}
            }
        }
        n += 1;
        eprintln!("jwks: request {n} {}", first.trim_end());
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};

    #[test]
    fn spki_pem_and_n_e_of_a_generated_key_set() {
        let dir = std::env::temp_dir().join(format!("rb-keys-{}", std::process::id()));
        generate(&KeysArgs { dir: dir.clone() }).unwrap();
        // Keys sign, and the written public keys verify (raw key inside the SPKI).
        let msg = b"header.payload";
        for alg in [Alg::Rs256, Alg::Es256, Alg::Eddsa] {
            let k = Private::load(alg, &dir).unwrap();
            let sig = k.sign(msg);
            assert!(!sig.is_empty(), "{alg:?}");
            let pem_text =
                std::fs::read_to_string(dir.join(format!("{}.pub.pem", alg.stem()))).unwrap();
            assert!(pem_text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            let b64: String = pem_text
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect();
            let spki_der = STANDARD.decode(b64).unwrap();
            let (_, body, _) = der_take(&spki_der).unwrap();
            let (_, _alg, rest) = der_take(body).unwrap();
            let (tag, bits, _) = der_take(rest).unwrap();
            assert_eq!(tag, 0x03);
            let raw = &bits[1..];
            let ok = match alg {
                Alg::Rs256 => {
                    UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, raw)
                        .verify(msg, &sig)
                }
                Alg::Es256 => {
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, raw).verify(msg, &sig)
                }
                _ => UnparsedPublicKey::new(&ED25519, raw).verify(msg, &sig),
            };
            assert!(ok.is_ok(), "{alg:?}");
            if alg == Alg::Es256 {
                assert_eq!(sig.len(), 64);
            }
        }
        let jwks: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("jwks.json")).unwrap()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kid"], KID_RS256);
        assert_eq!(keys[0]["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(keys[0]["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
        assert_eq!(keys[1]["crv"], "Ed25519");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
