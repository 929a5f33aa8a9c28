//! The compact JWS form (`header.payload.signature`) taken apart, before any trust.
//!
//! [`split`] checks the size cap, splits at the dots, base64url-decodes the three segments
//! (padding tolerated, a known leniency: Centrifugo refuses padded segments), parses the header
//! and maps its `alg` to an [`Alg`]. Nothing here looks at a key or a claim: the result is
//! unverified material for the key set and the signature check. The bounded JSON parser
//! ([`parse_json`]) is shared with the claim pipeline.

use super::{invalid, Alg, TokenError, MAX_TOKEN_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD_INDIFFERENT;
use base64::Engine as _;
use serde::Deserialize;

/// Deepest JSON nesting accepted in a token's header or claims (the whole document
/// counts, so `info` itself may nest one level less). Equal to the deepest nesting
/// serde_json's default recursion limit admits, so any `info` accepted here can later be
/// parsed by serde_json.
pub(super) const MAX_JSON_DEPTH: usize = 127;

/// A token taken apart; nothing in it is trusted yet.
#[derive(Debug)]
pub(super) struct Compact<'a> {
    pub alg: Alg,
    /// Header `kid`; `None` when absent or `null`.
    pub kid: Option<String>,
    /// `header.payload` exactly as received: what the issuer signed.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    /// The decoded payload text (claims JSON, not yet parsed).
    pub payload: String,
}

#[derive(Deserialize)]
struct Header {
    // `typ`, `cty` and other header parameters are not needed and are ignored.
    alg: String,
    kid: Option<String>,
}

/// Takes `token` apart. Every failure is [`TokenError::Invalid`].
pub(super) fn split(token: &str) -> Result<Compact<'_>, TokenError> {
    if token.is_empty() {
        return Err(invalid("empty token"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("expected three dot-separated segments"));
    };
    let header_text = utf8(decode_segment(header_b64, "header")?, "header")?;
    let header: Header = parse_json(&header_text, "header")?;
    let alg =
        Alg::from_name(&header.alg).ok_or_else(|| invalid("unsupported or disabled algorithm"))?;
    let signature = decode_segment(sig_b64, "signature")?;
    let payload = utf8(decode_segment(payload_b64, "payload")?, "payload")?;
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or_else(|| invalid("malformed token"))?;
    Ok(Compact {
        alg,
        kid: header.kid,
        signing_input,
        signature,
        payload,
    })
}

/// Base64url, padding optional (some issuers pad; RFC 7515 says not to).
fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD_INDIFFERENT
        .decode(segment)
        .map_err(|_| TokenError::Invalid(format!("bad base64url in {what}")))
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, TokenError> {
    String::from_utf8(bytes).map_err(|_| TokenError::Invalid(format!("{what} is not UTF-8")))
}

/// Parses a JSON document after an iterative depth check. serde_json limits recursion
/// for typed fields itself, but values it skips (unknown claims, `info` captured as raw
/// text) are walked without a limit; the pre-check makes the bound uniform.
/// Only objects are accepted: serde would also map a JSON array onto a struct
/// positionally, which JWS headers and claims never are.
pub(super) fn parse_json<'a, T: Deserialize<'a>>(
    text: &'a str,
    what: &str,
) -> Result<T, TokenError> {
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(TokenError::Invalid(format!("{what} is not a JSON object")));
    }
    if !json_depth_within(text.as_bytes(), MAX_JSON_DEPTH) {
        return Err(TokenError::Invalid(format!("{what} nested too deeply")));
    }
    serde_json::from_str(text).map_err(|_| TokenError::Invalid(format!("malformed {what} JSON")))
}

/// True when no `[`/`{` outside string literals nests deeper than `max`. Malformed JSON
/// may pass; the real parser rejects it afterwards.
pub(super) fn json_depth_within(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}
