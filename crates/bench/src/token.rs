//! JSON Web Tokens for connections (`sub`) and private-channel subscriptions
//! (`client` + `channel`, plus `sub` for protocol v2 servers, which check it): HS256 by
//! default, or RS256 / ES256 / EdDSA with a key from `rotor-bench token-keys` (see `sigs`),
//! optionally with a `kid` in the header (for a server that takes its keys from a JWKS).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;

use crate::sigs::{Alg, Private};

/// Mints tokens signed with one key. The keyed HMAC state is prepared once and cloned per
/// token; an asymmetric key is shared.
#[derive(Clone)]
pub struct Signer {
    key: Key,
    header: String,
}

#[derive(Clone)]
enum Key {
    Hmac(Hmac<Sha256>),
    Private(Arc<Private>),
}

impl Signer {
    pub fn new(secret: &str) -> Self {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes a key of any length");
        Self {
            key: Key::Hmac(mac),
            header: URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        }
    }

    /// A signer for `alg`: HS256 with `secret`, otherwise the private key in
    /// `<key_dir>/<alg>.pk8`; `kid` goes into the header when given.
    pub fn for_alg(
        alg: Alg,
        secret: &str,
        key_dir: &Path,
        kid: Option<&str>,
    ) -> Result<Self, String> {
        let mut s = match alg {
            Alg::Hs256 => Self::new(secret),
            _ => Self {
                key: Key::Private(Arc::new(Private::load(alg, key_dir)?)),
                header: String::new(),
            },
        };
        let header = match kid {
            Some(k) => format!(
                r#"{{"alg":"{}","typ":"JWT","kid":{}}}"#,
                alg.jws(),
                json_str(k)
            ),
            None => format!(r#"{{"alg":"{}","typ":"JWT"}}"#, alg.jws()),
        };
        s.header = URL_SAFE_NO_PAD.encode(header.as_bytes());
        Ok(s)
    }

    /// A token for the given claims (a JSON object, not checked).
    pub fn sign(&self, claims_json: &str) -> String {
        let mut out = String::with_capacity(self.header.len() + claims_json.len() * 4 / 3 + 50);
        out.push_str(&self.header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json.as_bytes(), &mut out);
        let sig = match &self.key {
            Key::Hmac(mac) => {
                let mut mac = mac.clone();
                mac.update(out.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Key::Private(k) => k.sign(out.as_bytes()),
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        out
    }

    /// Connection token: `{"sub":user}`.
    pub fn connection(&self, user: &str) -> String {
        self.sign(&format!(r#"{{"sub":{}}}"#, json_str(user)))
    }

    /// Private subscription token: `{"client":..,"channel":..}`, with `"sub"` first when
    /// `user` is given (protocol v2 servers require it to match the connection's user).
    pub fn subscription(&self, client: &str, channel: &str, user: Option<&str>) -> String {
        let claims = match user {
            Some(u) => format!(
                r#"{{"sub":{},"client":{},"channel":{}}}"#,
                json_str(u),
                json_str(client),
                json_str(channel)
            ),
            None => format!(
                r#"{{"client":{},"channel":{}}}"#,
                json_str(client),
                json_str(channel)
            ),
        };
        self.sign(&claims)
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(t: &str) -> (String, String, Vec<u8>) {
        let p: Vec<&str> = t.split('.').collect();
        assert_eq!(p.len(), 3, "{t}");
        let dec = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        (
            String::from_utf8(dec(p[0])).unwrap(),
            String::from_utf8(dec(p[1])).unwrap(),
            dec(p[2]),
        )
    }

    fn verify(secret: &str, t: &str) -> bool {
        let (signing, sig) = t.rsplit_once('.').unwrap();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signing.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
            .is_ok()
    }

    #[test]
    fn connection_token_matches_an_independent_computation() {
        // Computed with Python's hmac/base64 modules for secret "secret" and {"sub":"u1"}.
        let t = Signer::new("secret").connection("u1");
        assert_eq!(
            t,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSJ9.\
             e1nQDHRa3tJWY02MUXI8-wDl0Q6cpqw0JpzJLvJOUZk"
        );
        let (h, c, sig) = parts(&t);
        assert_eq!(h, r#"{"alg":"HS256","typ":"JWT"}"#);
        assert_eq!(c, r#"{"sub":"u1"}"#);
        assert_eq!(sig.len(), 32);
        assert!(verify("secret", &t));
        assert!(!verify("other", &t));
    }

    #[test]
    fn subscription_token_claims() {
        let s = Signer::new("k");
        let t = s.subscription("c-1", "$ch-1", None);
        assert_eq!(parts(&t).1, r#"{"client":"c-1","channel":"$ch-1"}"#);
        assert!(verify("k", &t));
        let t = s.subscription("c-1", "$ch-1", Some("u"));
        assert_eq!(
            parts(&t).1,
            r#"{"sub":"u","client":"c-1","channel":"$ch-1"}"#
        );
        assert!(verify("k", &t));
        // Fresh per client: a different client gives a different token.
        assert_ne!(
            s.subscription("c-2", "$ch-1", None),
            s.subscription("c-1", "$ch-1", None)
        );
    }

    #[test]
    fn hs256_for_alg_is_the_plain_signer_and_kid_goes_into_the_header() {
        let s = Signer::for_alg(Alg::Hs256, "secret", Path::new("/nonexistent"), None).unwrap();
        assert_eq!(s.connection("u1"), Signer::new("secret").connection("u1"));
        let s = Signer::for_alg(Alg::Hs256, "k", Path::new("/nonexistent"), Some("a")).unwrap();
        let t = s.connection("u1");
        assert_eq!(parts(&t).0, r#"{"alg":"HS256","typ":"JWT","kid":"a"}"#);
        assert!(verify("k", &t));
        // An asymmetric alg without its key file is an error, not a panic.
        assert!(Signer::for_alg(Alg::Rs256, "k", Path::new("/nonexistent"), None).is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(json_str("x\ny\u{1}"), "\"x\\ny\\u0001\"");
    }
}
