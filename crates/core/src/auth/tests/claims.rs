//! The claim pipeline (time claims, info, types, audience/issuer), driven by HMAC tokens.

use super::{b64, connect, is_invalid, subscribe, token_with_header, verifier, NOW, SECRET};
use crate::auth::claims::ConnectWire;
use crate::auth::jws::{json_depth_within, MAX_JSON_DEPTH};
use crate::auth::*;

#[test]
fn connect_expiry() {
    assert_eq!(
        connect(&format!(r#"{{"exp":{NOW}}}"#)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        connect(&format!(r#"{{"exp":{}}}"#, NOW - 1)),
        Err(TokenError::Expired)
    );
    assert_eq!(connect(r#"{"exp":0}"#), Err(TokenError::Expired));
    assert_eq!(
        connect(&format!(r#"{{"exp":{}}}"#, NOW + 1)).unwrap().exp,
        Some(NOW + 1)
    );
    // client_insecure: exp ignored but still reported.
    let t = sign_hs256(SECRET, &format!(r#"{{"exp":{}}}"#, NOW - 1));
    assert_eq!(
        verifier().verify_connect(&t, NOW, false).unwrap().exp,
        Some(NOW - 1)
    );
}

#[test]
fn float_exp_is_truncated() {
    let c = connect(&format!(r#"{{"exp":{}.9}}"#, NOW + 100)).unwrap();
    assert_eq!(c.exp, Some(NOW + 100));
    // NOW + 0.5 truncates to NOW, which is not in the future.
    assert_eq!(
        connect(&format!(r#"{{"exp":{NOW}.5}}"#)),
        Err(TokenError::Expired)
    );
    let c = connect(&format!(r#"{{"exp":{}e0}}"#, NOW + 7)).unwrap();
    assert_eq!(c.exp, Some(NOW + 7));
    // Huge values saturate instead of wrapping into the past.
    assert_eq!(connect(r#"{"exp":1e300}"#).unwrap().exp, Some(i64::MAX));
    assert_eq!(
        connect(r#"{"exp":18446744073709551615}"#).unwrap().exp,
        Some(i64::MAX)
    );
    assert_eq!(connect(r#"{"exp":-1.5}"#), Err(TokenError::Expired));
}

#[test]
fn non_numeric_time_claims_are_invalid() {
    for claims in [
        r#"{"exp":"1800000000"}"#,
        r#"{"exp":true}"#,
        r#"{"exp":[1]}"#,
        r#"{"nbf":"0"}"#,
        r#"{"expire_at":{}}"#,
        r#"{"exp":1e400}"#,
    ] {
        assert!(is_invalid(connect(claims)), "{claims}");
        assert!(is_invalid(subscribe(claims)), "{claims}");
    }
}

#[test]
fn nbf_in_future_is_expired_for_both_kinds() {
    let future = format!(r#"{{"nbf":{}}}"#, NOW + 1);
    assert_eq!(connect(&future), Err(TokenError::Expired));
    let t = sign_hs256(SECRET, &future);
    assert_eq!(
        verifier().verify_connect(&t, NOW, false),
        Err(TokenError::Expired)
    );
    assert_eq!(subscribe(&future), Err(TokenError::Expired));
    let now = format!(r#"{{"nbf":{NOW}}}"#);
    assert!(connect(&now).is_ok());
    assert!(subscribe(&now).is_ok());
}

#[test]
fn subscribe_expiry_and_eto() {
    let s = subscribe(&format!(r#"{{"exp":{}}}"#, NOW + 60)).unwrap();
    assert_eq!((s.exp, s.token_exp), (Some(NOW + 60), Some(NOW + 60)));
    assert_eq!(
        subscribe(&format!(r#"{{"exp":{NOW}}}"#)),
        Err(TokenError::Expired)
    );
    // eto: the subscription never expires, but the token itself must be fresh.
    let s = subscribe(&format!(r#"{{"exp":{},"eto":true}}"#, NOW + 60)).unwrap();
    assert_eq!((s.exp, s.token_exp), (None, Some(NOW + 60)));
    assert_eq!(
        subscribe(&format!(r#"{{"exp":{},"eto":true}}"#, NOW - 1)),
        Err(TokenError::Expired)
    );
    let s = subscribe(&format!(r#"{{"exp":{},"eto":false}}"#, NOW + 60)).unwrap();
    assert_eq!(s.exp, Some(NOW + 60));
    assert!(is_invalid(subscribe(r#"{"eto":"true"}"#)));
    assert!(is_invalid(subscribe(r#"{"eto":1}"#)));
    let s = subscribe("{}").unwrap();
    assert_eq!(s, SubscribeClaims::default());
}

#[test]
fn expire_at_overrides() {
    let c = connect(&format!(
        r#"{{"exp":{},"expire_at":{}}}"#,
        NOW + 10,
        NOW + 500
    ))
    .unwrap();
    assert_eq!(c.exp, Some(NOW + 500));
    let c = connect(&format!(r#"{{"exp":{},"expire_at":0}}"#, NOW + 10)).unwrap();
    assert_eq!(c.exp, None);
    // The token's own exp is still enforced.
    assert_eq!(
        connect(&format!(
            r#"{{"exp":{},"expire_at":{}}}"#,
            NOW - 1,
            NOW + 500
        )),
        Err(TokenError::Expired)
    );
    let s = subscribe(&format!(
        r#"{{"exp":{},"eto":true,"expire_at":{}}}"#,
        NOW + 10,
        NOW + 900
    ))
    .unwrap();
    assert_eq!((s.exp, s.token_exp), (Some(NOW + 900), Some(NOW + 10)));
    let s = subscribe(&format!(r#"{{"exp":{},"expire_at":0}}"#, NOW + 10)).unwrap();
    assert_eq!((s.exp, s.token_exp), (None, Some(NOW + 10)));
}

#[test]
fn b64info_wins_and_is_validated() {
    let c = connect(r#"{"info":{"a":1},"b64info":"aGVsbG8="}"#).unwrap();
    assert_eq!(c.info.as_deref(), Some(&b"hello"[..]));
    let c = connect(r#"{"b64info":"AP8="}"#).unwrap();
    assert_eq!(c.info.as_deref(), Some(&[0u8, 0xff][..]));
    // Unpadded standard base64 is tolerated.
    let s = subscribe(r#"{"b64info":"aGk"}"#).unwrap();
    assert_eq!(s.info.as_deref(), Some(&b"hi"[..]));
    // Empty b64info counts as absent.
    let c = connect(r#"{"info":[1],"b64info":""}"#).unwrap();
    assert_eq!(c.info.as_deref(), Some(&b"[1]"[..]));
    for claims in [
        r#"{"b64info":"!!!"}"#,
        r#"{"b64info":"_-8"}"#,
        r#"{"b64info":"aGVsbG8=x"}"#,
        r#"{"b64info":5}"#,
        r#"{"b64info":["aGk="]}"#,
    ] {
        assert!(is_invalid(connect(claims)), "{claims}");
        assert!(is_invalid(subscribe(claims)), "{claims}");
    }
}

#[test]
fn info_raw_text_preserved_byte_for_byte() {
    let raw = "{\"b\" : [1, 2.50, \"x\\u0041\", 1e3],\n \"a\":null, \"\u{e9}\":{}}";
    let claims = format!(r#"{{"sub":"u","info":{raw}  ,"exp":{}}}"#, NOW + 5);
    let c = connect(&claims).unwrap();
    assert_eq!(c.info.as_deref(), Some(raw.as_bytes()));
    let s = subscribe(&format!(r#"{{"info": {raw}}}"#)).unwrap();
    assert_eq!(s.info.as_deref(), Some(raw.as_bytes()));
    for scalar in ["\"text\"", "42", "true", "[]", "-0.0"] {
        let c = connect(&format!(r#"{{"info":{scalar}}}"#)).unwrap();
        assert_eq!(c.info.as_deref(), Some(scalar.as_bytes()));
    }
    assert_eq!(connect(r#"{"info":null}"#).unwrap().info, None);
}

#[test]
fn claim_types_are_enforced() {
    for claims in [
        r#"{"sub":42}"#,
        r#"{"sub":true}"#,
        r#"{"sub":["a"]}"#,
        r#"{"channels":"news"}"#,
        r#"{"channels":["news",1]}"#,
        r#"{"channels":[null]}"#,
        r#"{"channel":7}"#,
        r#"{"sub":"a","sub":"b"}"#,
    ] {
        assert!(is_invalid(connect(claims)), "{claims}");
    }
    for claims in [
        r#"{"sub":42}"#,
        r#"{"client":1}"#,
        r#"{"channel":{"x":1}}"#,
        r#"{"channel":"a","channel":"b"}"#,
    ] {
        assert!(is_invalid(subscribe(claims)), "{claims}");
    }
    // Claims irrelevant to a token kind are not type-checked for it.
    assert!(connect(r#"{"client":1,"eto":"x","iat":"y","aud":["a"],"iss":7}"#).is_ok());
    assert!(subscribe(r#"{"channels":5,"jti":{}}"#).is_ok());
}

#[test]
fn connect_channel_claim_is_exposed_not_rejected() {
    let c = connect(r#"{"sub":"u","channel":"$private"}"#).unwrap();
    assert!(c.has_channel_claim);
    assert!(!connect(r#"{"channel":""}"#).unwrap().has_channel_claim);
    assert!(!connect(r#"{"channel":null}"#).unwrap().has_channel_claim);
}

#[test]
fn subscribe_claims_v1_and_v2() {
    let s = subscribe(&format!(
        r#"{{"client":"c-1","channel":"$gossips","info":{{"role":"x"}},"exp":{}}}"#,
        NOW + 30
    ))
    .unwrap();
    assert_eq!(s.client.as_deref(), Some("c-1"));
    assert_eq!(s.channel, "$gossips");
    assert_eq!(s.user, None);
    assert_eq!(s.info.as_deref(), Some(&br#"{"role":"x"}"#[..]));
    let s = subscribe(r#"{"sub":"","channel":"news"}"#).unwrap();
    assert_eq!(s.user.as_deref(), Some(""));
    assert_eq!(s.client, None);
}

#[test]
fn oversized_token_is_invalid() {
    let padding = "x".repeat(MAX_TOKEN_LEN);
    let t = sign_hs256(SECRET, &format!(r#"{{"pad":"{padding}"}}"#));
    assert!(t.len() > MAX_TOKEN_LEN);
    assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
    assert!(is_invalid(verifier().verify_subscribe(&t, NOW)));
    let junk = "a".repeat(MAX_TOKEN_LEN + 1);
    assert!(is_invalid(verifier().verify_connect(&junk, NOW, true)));
    // Just under the limit is fine.
    let padding = "x".repeat(40_000);
    let t = sign_hs256(SECRET, &format!(r#"{{"sub":"u","pad":"{padding}"}}"#));
    assert!(t.len() <= MAX_TOKEN_LEN);
    assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "u");
}

#[test]
fn deeply_nested_info_is_invalid_without_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for claims in [
        format!(r#"{{"info":{deep}}}"#),
        format!(r#"{{"unknown":{deep}}}"#),
        format!(r#"{{"channels":{deep}}}"#),
        format!(r#"{{"sub":"u","meta":{{"a":{deep}}}}}"#),
    ] {
        assert!(is_invalid(connect(&claims)));
        assert!(is_invalid(subscribe(&claims)));
    }
    let t = token_with_header(
        &format!(r#"{{"alg":"HS256","x":{deep}}}"#),
        Alg::Hs256,
        SECRET,
        "{}",
    );
    assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
    // Brackets inside strings do not count.
    let c = connect(&format!(r#"{{"info":"{deep}"}}"#)).unwrap();
    assert_eq!(c.info.map(|b| b.len()), Some(20_002));
    // Moderate nesting is accepted.
    let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(connect(&format!(r#"{{"info":{ok}}}"#)).is_ok());
}

#[test]
fn serde_recursion_limit_backs_up_the_depth_scan() {
    // Bypass the pre-scan: serde_json's own limit must reject typed deep values.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let text = format!(r#"{{"channels":{deep}}}"#);
    assert!(serde_json::from_str::<ConnectWire<'_>>(&text).is_err());
    assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
    // Anything the scan admits, serde_json can parse as a Value.
    let edge = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    assert!(json_depth_within(edge.as_bytes(), MAX_JSON_DEPTH));
    assert!(serde_json::from_str::<serde_json::Value>(&edge).is_ok());
    let over = format!("[{edge}]");
    assert!(!json_depth_within(over.as_bytes(), MAX_JSON_DEPTH));
}

#[test]
fn depth_scan_handles_escapes() {
    assert!(json_depth_within(br#"["\"[[[[", "\\"]"#, 1));
    assert!(!json_depth_within(br#"["\\", [[]]]"#, 2));
    assert!(json_depth_within(br#"{"a":[{}]}"#, 3));
    assert!(!json_depth_within(br#"{"a":[{}]}"#, 2));
}

#[test]
fn garbage_is_invalid() {
    let good_header = b64(r#"{"alg":"HS256"}"#);
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "abc".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "a.b.c.d.e".into(),
        "Bearer x.y.z".into(),
        format!("{good_header}.%%%.abc"),
        format!("{good_header}.e30.***"),
        format!("{good_header}.e30.abc="),
        format!("{}.e30.", b64([0xffu8, 0xfe])),
        "\u{0}.\u{0}.\u{0}".into(),
        "é.é.é".into(),
    ];
    for t in &cases {
        assert!(is_invalid(verifier().verify_connect(t, NOW, true)), "{t:?}");
        assert!(is_invalid(verifier().verify_subscribe(t, NOW)), "{t:?}");
    }
    // Correctly signed but unusable payloads.
    for claims in [
        "",
        "null",
        "[]",
        "\"x\"",
        "42",
        "{",
        "{} {}",
        "{\"sub\":\"a\"",
        "nope",
        // Positional struct form that serde would otherwise accept.
        "[\"u\",null,null,null,null,null,null,null]",
        "[null,null,null,null,null,null,null,null,null]",
    ] {
        assert!(is_invalid(connect(claims)), "{claims:?}");
        assert!(is_invalid(subscribe(claims)), "{claims:?}");
    }
    // Signed payload that is not UTF-8.
    let input = format!("{good_header}.{}", b64([b'{', 0xff, b'}']));
    let sig = crate::auth::hmac::sign(Alg::Hs256, SECRET.as_bytes(), input.as_bytes()).unwrap();
    let t = format!("{input}.{}", b64(sig));
    assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
}

#[test]
fn debug_does_not_leak_secret() {
    let v = TokenVerifier::new("super-secret-value");
    let s = format!("{v:?}");
    assert!(!s.contains("super-secret-value"), "{s}");
    assert!(s.contains("redacted"));
    assert!(!format!("{:?}", TokenVerifier::new("")).contains("redacted"));
}

/// Tiny deterministic PRNG (xorshift64*) so the fuzz loop needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let v = verifier();
    let alphabet: Vec<char> = "ABCxyz019-_+/=.. {}[]\":,eyJhbGciOiJIUzI1NiJ9\\\u{0}é\u{1F600}"
        .chars()
        .collect();
    let fragments = [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"",
        "\"sub\"",
        "\"exp\"",
        "\"nbf\"",
        "\"eto\"",
        "\"info\"",
        "\"b64info\"",
        "\"channels\"",
        "\"channel\"",
        "\"client\"",
        "\"expire_at\"",
        "1",
        "-1",
        "1.5e9",
        "1e999",
        "true",
        "null",
        "\"aGk=\"",
        "\"!\"",
        " ",
        "\\u0000",
        "18446744073709551616",
    ];
    let valid = sign_hs256(SECRET, &format!(r#"{{"sub":"u","exp":{}}}"#, NOW + 9));
    for i in 0..20_000 {
        let token = match i % 3 {
            0 => {
                let len = rng.below(120);
                (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect()
            }
            1 => {
                let mut bytes = valid.clone().into_bytes();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] = b"A_-.=e0xyz"[rng.below(10)];
                }
                bytes.truncate(bytes.len() - rng.below(6));
                String::from_utf8(bytes).unwrap()
            }
            _ => {
                // Correctly signed random claims: exercises the claim parser.
                let n = rng.below(14);
                let claims: String = (0..n).map(|_| rng.pick(&fragments)).collect();
                let alg = rng.pick(&["HS256", "HS384", "HS512"]);
                sign_hmac(alg, SECRET, &claims).unwrap()
            }
        };
        let now = NOW + rng.below(20) as i64 - 10;
        let _ = v.verify_connect(&token, now, rng.below(2) == 0);
        let _ = v.verify_subscribe(&token, now);
    }
    // The untouched token still verifies (sanity check for the mutation arm).
    assert!(v.verify_connect(&valid, NOW, true).is_ok());
}

fn aud_verifier() -> TokenVerifier {
    verifier().with_audience("rotor")
}

fn iss_verifier() -> TokenVerifier {
    verifier().with_issuer("https://issuer.example")
}

#[test]
fn audience_as_string_or_array_containing_it_is_accepted() {
    for claims in [
        r#"{"sub":"u","aud":"rotor"}"#,
        r#"{"sub":"u","aud":["other","rotor"]}"#,
        r#"{"sub":"u","aud":["rotor"]}"#,
    ] {
        let t = sign_hs256(SECRET, claims);
        assert_eq!(
            aud_verifier().verify_connect(&t, NOW, true).unwrap().user,
            "u",
            "{claims}"
        );
        assert!(aud_verifier().verify_subscribe(&t, NOW).is_ok(), "{claims}");
    }
}

#[test]
fn audience_mismatch_or_missing_is_invalid() {
    for claims in [
        r#"{"sub":"u","aud":"other"}"#,
        r#"{"sub":"u","aud":["other","x"]}"#,
        r#"{"sub":"u","aud":[]}"#,
        r#"{"sub":"u","aud":"Rotor"}"#,
        r#"{"sub":"u","aud":"rotor "}"#,
        r#"{"sub":"u"}"#,
        r#"{"sub":"u","aud":null}"#,
        r#"{"sub":"u","aud":1}"#,
        r#"{"sub":"u","aud":{"rotor":true}}"#,
        r#"{"sub":"u","aud":["rotor",1]}"#,
    ] {
        let t = sign_hs256(SECRET, claims);
        assert!(
            is_invalid(aud_verifier().verify_connect(&t, NOW, true)),
            "{claims}"
        );
        assert!(
            is_invalid(aud_verifier().verify_subscribe(&t, NOW)),
            "{claims}"
        );
    }
}

#[test]
fn audience_is_checked_before_expiry() {
    // A token for another audience is refused as invalid even when it is also stale,
    // so the client is not invited to refresh it.
    let claims = format!(r#"{{"sub":"u","aud":"other","exp":{}}}"#, NOW - 10);
    let t = sign_hs256(SECRET, &claims);
    assert!(is_invalid(aud_verifier().verify_connect(&t, NOW, true)));
    assert!(is_invalid(aud_verifier().verify_subscribe(&t, NOW)));
    let claims = format!(r#"{{"sub":"u","aud":"rotor","exp":{}}}"#, NOW - 10);
    let t = sign_hs256(SECRET, &claims);
    assert_eq!(
        aud_verifier().verify_connect(&t, NOW, true),
        Err(TokenError::Expired)
    );
}

#[test]
fn issuer_must_equal_exactly() {
    let ok = sign_hs256(SECRET, r#"{"sub":"u","iss":"https://issuer.example"}"#);
    assert_eq!(
        iss_verifier().verify_connect(&ok, NOW, true).unwrap().user,
        "u"
    );
    assert!(iss_verifier().verify_subscribe(&ok, NOW).is_ok());
    for claims in [
        r#"{"sub":"u","iss":"https://other.example"}"#,
        r#"{"sub":"u","iss":"https://issuer.example/"}"#,
        r#"{"sub":"u","iss":["https://issuer.example"]}"#,
        r#"{"sub":"u","iss":null}"#,
        r#"{"sub":"u"}"#,
    ] {
        let t = sign_hs256(SECRET, claims);
        assert!(
            is_invalid(iss_verifier().verify_connect(&t, NOW, true)),
            "{claims}"
        );
        assert!(
            is_invalid(iss_verifier().verify_subscribe(&t, NOW)),
            "{claims}"
        );
    }
}

#[test]
fn audience_and_issuer_unchecked_when_not_configured() {
    // Today's behaviour is kept: without configuration any `aud` / `iss`, even of an
    // unusual type, is ignored.
    for claims in [
        r#"{"sub":"u","aud":"x","iss":"y"}"#,
        r#"{"sub":"u","aud":5,"iss":{"a":1}}"#,
        r#"{"sub":"u"}"#,
    ] {
        let t = sign_hs256(SECRET, claims);
        assert!(verifier().verify_connect(&t, NOW, true).is_ok(), "{claims}");
        let v = verifier().with_audience("").with_issuer("");
        assert!(v.verify_subscribe(&t, NOW).is_ok(), "{claims}");
    }
}

#[test]
fn audience_and_issuer_together() {
    let v = aud_verifier().with_issuer("https://issuer.example");
    let t = sign_hs256(
        SECRET,
        r#"{"sub":"u","aud":"rotor","iss":"https://issuer.example"}"#,
    );
    assert!(v.verify_connect(&t, NOW, true).is_ok());
    let t = sign_hs256(SECRET, r#"{"sub":"u","aud":"rotor"}"#);
    assert!(is_invalid(v.verify_connect(&t, NOW, true)));
    let t = sign_hs256(SECRET, r#"{"sub":"u","iss":"https://issuer.example"}"#);
    assert!(is_invalid(v.verify_connect(&t, NOW, true)));
}

#[test]
fn from_config_carries_audience_and_issuer() {
    let cfg = crate::config::NodeConfig {
        token_hmac_secret_key: SECRET.into(),
        token_audience: "rotor".into(),
        token_issuer: "i".into(),
        ..Default::default()
    };
    let v = TokenVerifier::from_config(&cfg);
    let t = sign_hs256(SECRET, r#"{"sub":"u","aud":"rotor","iss":"i"}"#);
    assert!(v.verify_connect(&t, NOW, true).is_ok());
    let t = sign_hs256(SECRET, r#"{"sub":"u","aud":"other","iss":"i"}"#);
    assert!(is_invalid(v.verify_connect(&t, NOW, true)));
}

#[test]
fn audience_checked_only_after_signature() {
    // A forged token with the right audience is still refused for its signature.
    let t = sign_hs256("other", r#"{"sub":"u","aud":"rotor"}"#);
    assert_eq!(
        aud_verifier().verify_connect(&t, NOW, true),
        Err(TokenError::Invalid("signature mismatch".into()))
    );
}
