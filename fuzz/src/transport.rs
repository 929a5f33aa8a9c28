//! Transport-level inputs: the permessage-deflate inflater and socket of the WebSocket
//! transport, and the connect requests of the unidirectional transports.

use rotor_server::fuzz as srv;

use crate::split_mode;

/// Inflate limits the deflate target picks from (by the mode byte): tiny, a few frames, the
/// default message size and more.
const LIMITS: [usize; 8] = [0, 1, 16, 255, 1024, 4096, 65_536, 1 << 20];

/// permessage-deflate. Mode byte (low two bits): 0 = the rest inflated as one compressed
/// message with a limit from [`LIMITS`] (next three bits); 1 = the rest deflated at a level
/// (mode / 4 % 10) then inflated back; 2 and 3 = the rest as the client's byte stream after
/// the upgrade, through the server's deflate socket with limits from [`LIMITS`]. Checks: an
/// inflated message is never longer than the limit and its buffer never larger than the
/// limit plus one byte; a refusal for size reports at most the limit plus one; inflating is
/// deterministic; what the server deflates inflates back to itself, and is refused one byte
/// under its size; no message the socket yields exceeds its limits.
pub fn websocket_deflate(data: &[u8]) {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    let limit = LIMITS[usize::from(mode >> 2) % LIMITS.len()];
    match mode % 4 {
        0 => {
            let first = srv::ws_inflate(rest, limit);
            match &first {
                Ok((out, cap)) => {
                    assert!(out.len() <= limit, "{} > limit {limit}", out.len());
                    assert!(*cap <= limit + 1, "buffer {cap} for limit {limit}");
                }
                Err(Some(n)) => assert!(*n <= limit + 1, "grew to {n} for limit {limit}"),
                Err(None) => {}
            }
            let again = srv::ws_inflate(rest, limit);
            assert_eq!(first.map(|(o, _)| o), again.map(|(o, _)| o));
        }
        1 => {
            let level = u32::from(mode / 4) % 10;
            let packed = srv::ws_deflate(rest, level);
            let big = rest.len() + 1;
            let back = srv::ws_inflate(&packed, big).map(|(o, _)| o);
            assert_eq!(back.as_deref(), Ok(rest), "level {level}");
            if !rest.is_empty() {
                assert!(matches!(
                    srv::ws_inflate(&packed, rest.len() - 1),
                    Err(Some(_))
                ));
            }
        }
        _ => {
            let max_message = LIMITS[usize::from(mode >> 5) % 4 + 4];
            // The error that ends reading is the last item; messages before it are checked.
            for (op, payload) in srv::ws_deflate_stream(rest, max_message, limit)
                .into_iter()
                .flatten()
            {
                let bound = if op <= 2 { limit.max(max_message) } else { 125 };
                assert!(payload.len() <= bound, "opcode {op}: {}", payload.len());
            }
        }
    }
}

/// The unidirectional transports' connect requests. Mode byte: 0 = a JSON `POST` body /
/// first WebSocket message; 1 = a query string (`?cf_connect=`); 2 = a uni_grpc Protobuf
/// body. Checks: decoding is deterministic; a JSON body accepted as a body is accepted the same
/// from `?cf_connect=` (form-encoded, among other parameters), and a refused one is refused
/// there too.
pub fn uni_connect(data: &[u8]) {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 3 {
        0 => {
            let body = srv::uni_json_connect(rest);
            assert_eq!(body, srv::uni_json_connect(rest));
            // A query carries text: only UTF-8 bodies have the same meaning there.
            if let Ok(text) = std::str::from_utf8(rest) {
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("a", "1")
                    .append_pair("cf_connect", text)
                    .append_pair("cf_connect", "ignored")
                    .finish();
                assert_eq!(srv::uni_query_connect(&query), Some(body));
            }
        }
        1 => {
            let Ok(query) = std::str::from_utf8(rest) else {
                return;
            };
            let first = srv::uni_query_connect(query);
            assert_eq!(first, srv::uni_query_connect(query));
            // The first `cf_connect` value is the connect request, as a body would be.
            let value = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "cf_connect")
                .map(|(_, v)| srv::uni_json_connect(v.as_bytes()));
            assert_eq!(first, value);
        }
        _ => {
            let r = srv::uni_grpc_connect(rest);
            assert_eq!(r, srv::uni_grpc_connect(rest));
        }
    }
}
