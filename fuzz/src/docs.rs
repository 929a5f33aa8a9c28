//! Documents from the other side of an HTTP exchange: server API request bodies (both
//! generations), JWKS documents and HTTP proxy answers.

use rotor_protocol::api::{
    decode_api_params, decode_b64, decode_batch, decode_legacy_api_command, ApiCommand,
    BATCH_METHODS,
};

use crate::split_mode;

/// The server HTTP API. Mode byte: 0 = a `POST /api/batch` body; 1 = a `POST /api/<method>`
/// body, the method chosen by the next byte; 2 = a 2.x `POST /api` body (one command a line).
/// Checks: decoding is deterministic, a batch has no more commands than bytes, and a publish
/// payload's base64 decodes to at most 3/4 of its text.
pub fn api_http(data: &[u8]) {
    let Some((mode, body)) = split_mode(data) else {
        return;
    };
    match mode % 3 {
        0 => {
            let batch = decode_batch(body);
            assert_eq!(batch, decode_batch(body));
            if let Ok(b) = batch {
                assert!(b.commands.len() <= body.len());
            }
        }
        1 => {
            let Some((m, params)) = split_mode(body) else {
                return;
            };
            let method = BATCH_METHODS[usize::from(m) % BATCH_METHODS.len()];
            let cmd = decode_api_params(method, params);
            assert_eq!(cmd, decode_api_params(method, params));
            if let Ok(Some(cmd)) = cmd {
                assert_eq!(cmd.method(), method);
                payload(&cmd);
            }
        }
        _ => {
            for line in body.split(|b| *b == b'\n').map(<[u8]>::trim_ascii) {
                if line.is_empty() {
                    continue;
                }
                let Ok(c) = decode_legacy_api_command(line) else {
                    break;
                };
                if let Some(cmd) = &c.command {
                    payload(cmd);
                }
            }
        }
    }
}

fn payload(cmd: &ApiCommand) {
    let fields = match cmd {
        ApiCommand::Publish(p) => p.fields(),
        ApiCommand::Broadcast(b) => b.fields(),
        _ => return,
    };
    if let Ok(Some(bytes)) = decode_b64(&fields.b64data) {
        assert!(bytes.len() <= fields.b64data.len() / 4 * 3 + 3);
    }
    let _ = fields.payload();
}

/// A JWKS document (`rotor_jwks::parse_jwk_set`), then every key it yields turned into a
/// verification key as the token verifier does. Checks: no more keys (read or skipped) than
/// [`rotor_jwks::MAX_KEYS_PER_SET`] plus the one "too many" entry, and every key read has a
/// distinct index.
pub fn jwks(data: &[u8]) {
    let Ok(set) = rotor_jwks::parse_jwk_set(data) else {
        return;
    };
    assert!(set.keys.len() <= rotor_jwks::MAX_KEYS_PER_SET);
    assert!(set.keys.len() + set.skipped.len() <= rotor_jwks::MAX_KEYS_PER_SET + 1);
    for key in &set.keys {
        let _ = <rotor_core::auth::VerifyingKey as rotor_jwks::FromJwk>::from_jwk(key);
    }
}

/// An HTTP proxy answer body (`rotor_proxy`), read as the answer of every call kind, both
/// key styles and both payload encodings (mode byte). Checks: reading is deterministic.
pub fn proxy_response(data: &[u8]) {
    let Some((mode, body)) = split_mode(data) else {
        return;
    };
    let binary = mode % 2 == 1;
    let n = rotor_proxy::fuzz_http_answer(body, binary);
    assert_eq!(n, rotor_proxy::fuzz_http_answer(body, binary));
}
