//! The few client-protocol frames the bench sends (v1 and v2 JSON), and byte scans over what
//! the server sends: replies by id, publications by the `"rb":[` marker, join pushes, v2 pings.
//! Nothing here decodes JSON.

use memchr::memmem;
use std::sync::LazyLock;

use crate::token::json_str;

/// Client protocol generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Centrifugo 2.x: numeric `method` + `params`; pushes in `result`.
    V1,
    /// Centrifugo 4+: named command fields; pushes in `push`; `{}` pings.
    V2,
}

impl std::str::FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v1" | "1" => Ok(Proto::V1),
            "v2" | "2" => Ok(Proto::V2),
            _ => Err(format!("unknown protocol {s:?} (v1 or v2)")),
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::V1 => "v1",
            Proto::V2 => "v2",
        })
    }
}

/// Appends a connect command.
pub fn connect_cmd(out: &mut Vec<u8>, proto: Proto, id: u32, token: &str) {
    let t = json_str(token);
    let s = match proto {
        Proto::V1 => format!(r#"{{"id":{id},"params":{{"token":{t}}}}}"#),
        Proto::V2 => format!(r#"{{"id":{id},"connect":{{"token":{t}}}}}"#),
    };
    out.extend_from_slice(s.as_bytes());
}

/// Appends a subscribe command (`token` for private channels; `join_leave` asks a v2 server
/// for join/leave pushes, v1 has no such flag).
pub fn subscribe_cmd(
    out: &mut Vec<u8>,
    proto: Proto,
    id: u32,
    channel: &str,
    token: Option<&str>,
    join_leave: bool,
) {
    let mut params = format!(r#"{{"channel":{}"#, json_str(channel));
    if let Some(t) = token {
        params.push_str(&format!(r#","token":{}"#, json_str(t)));
    }
    if join_leave && proto == Proto::V2 {
        params.push_str(r#","join_leave":true"#);
    }
    params.push('}');
    let s = match proto {
        Proto::V1 => format!(r#"{{"id":{id},"method":1,"params":{params}}}"#),
        Proto::V2 => format!(r#"{{"id":{id},"subscribe":{params}}}"#),
    };
    out.extend_from_slice(s.as_bytes());
}

/// What the replies in one message say about command `id`.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyScan<'a> {
    /// No reply to `id` in this message (and no error reply to any command).
    None,
    /// The reply line to `id`.
    Ok(&'a [u8]),
    /// An error reply (to `id` or to any earlier command): the line.
    Error(&'a [u8]),
}

static ID_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"id\":"));
static ERROR_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"error\":{"));

/// Scans the lines of a message for replies (lines with an `"id":` key). An error reply to
/// any id up to `id` wins; else the reply to `id`.
pub fn scan_reply(msg: &[u8], id: u32) -> ReplyScan<'_> {
    let mut found = ReplyScan::None;
    for line in msg.split(|b| *b == b'\n') {
        let Some(i) = ID_KEY.find(line) else {
            continue;
        };
        let Some(n) = parse_uint(&line[i + 5..]).map(|(n, _)| n) else {
            continue;
        };
        if n == 0 || n > id as u64 {
            continue;
        }
        if ERROR_KEY.find(line).is_some() {
            return ReplyScan::Error(line);
        }
        if n == id as u64 {
            found = ReplyScan::Ok(line);
        }
    }
    found
}

/// The value of `"client":"..."` in a connect reply.
pub fn client_id(line: &[u8]) -> Option<&str> {
    let i = memmem::find(line, b"\"client\":\"")? + 10;
    let j = memchr::memchr(b'"', &line[i..])?;
    std::str::from_utf8(&line[i..i + j]).ok()
}

/// Parses an unsigned decimal after optional spaces; returns it and the bytes consumed.
#[inline]
pub fn parse_uint(b: &[u8]) -> Option<(u64, usize)> {
    let mut k = 0;
    while k < b.len() && b[k] == b' ' {
        k += 1;
    }
    let s = k;
    let mut v: u64 = 0;
    while k < b.len() && b[k].is_ascii_digit() {
        v = v.wrapping_mul(10).wrapping_add((b[k] - b'0') as u64);
        k += 1;
    }
    (k > s).then_some((v, k))
}

/// The marker that starts the bench's data: `{"rb":[publisher,channel,seq,ts_ns],"pad":".."}`.
pub const MARKER: &[u8] = b"\"rb\":[";
static MARKER_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(MARKER));

/// One publication found in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub publisher: u64,
    pub channel: u64,
    pub seq: u64,
    pub ts_ns: u64,
}

/// Calls `f` for every publication in a message (several may be coalesced, one per line).
#[inline]
pub fn for_each_delivery(msg: &[u8], mut f: impl FnMut(Delivery)) -> usize {
    let mut n = 0;
    let mut rest = msg;
    while let Some(i) = MARKER_FINDER.find(rest) {
        rest = &rest[i + MARKER.len()..];
        let mut v = [0u64; 4];
        let mut ok = true;
        for (k, slot) in v.iter_mut().enumerate() {
            if k > 0 {
                if rest.first() != Some(&b',') {
                    ok = false;
                    break;
                }
                rest = &rest[1..];
            }
            match parse_uint(rest) {
                Some((x, used)) => {
                    *slot = x;
                    rest = &rest[used..];
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            n += 1;
            f(Delivery {
                publisher: v[0],
                channel: v[1],
                seq: v[2],
                ts_ns: v[3],
            });
        }
    }
    n
}

/// Appends the data of one publication, padded so the data JSON is `size` bytes when possible.
pub fn publication_data(
    out: &mut Vec<u8>,
    publisher: usize,
    channel: usize,
    seq: u64,
    ts_ns: u64,
    size: usize,
) {
    let start = out.len();
    out.extend_from_slice(b"{\"rb\":[");
    push_uint(out, publisher as u64);
    out.push(b',');
    push_uint(out, channel as u64);
    out.push(b',');
    push_uint(out, seq);
    out.push(b',');
    push_uint(out, ts_ns);
    out.extend_from_slice(b"],\"pad\":\"");
    let used = out.len() - start + 2; // closing `"}`
    out.extend(std::iter::repeat_n(b'x', size.saturating_sub(used)));
    out.extend_from_slice(b"\"}");
}

pub fn push_uint(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Counts join pushes in a message.
pub fn count_joins(msg: &[u8], proto: Proto) -> u64 {
    static V1: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"type\":1,"));
    static V2: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"join\":{"));
    let f = match proto {
        Proto::V1 => &*V1,
        Proto::V2 => &*V2,
    };
    f.find_iter(msg).count() as u64
}

/// Whether a v2 message holds a server ping (a line that is exactly `{}`).
pub fn has_v2_ping(msg: &[u8]) -> bool {
    if memmem::find(msg, b"{}").is_none() {
        return false;
    }
    msg.split(|b| *b == b'\n').any(|l| l.trim_ascii() == b"{}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let mut b = Vec::new();
        connect_cmd(&mut b, Proto::V1, 1, "t");
        b.push(b'\n');
        subscribe_cmd(&mut b, Proto::V1, 2, "ch", None, true);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "{\"id\":1,\"params\":{\"token\":\"t\"}}\n{\"id\":2,\"method\":1,\"params\":{\"channel\":\"ch\"}}"
        );
        let mut b = Vec::new();
        connect_cmd(&mut b, Proto::V2, 1, "t");
        b.push(b'\n');
        subscribe_cmd(&mut b, Proto::V2, 2, "$c", Some("tok"), true);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "{\"id\":1,\"connect\":{\"token\":\"t\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"$c\",\"token\":\"tok\",\"join_leave\":true}}"
        );
    }

    #[test]
    fn reply_scanning() {
        let m = b"{\"id\":1,\"result\":{\"client\":\"abc-1\",\"version\":\"x\"}}\n{\"id\":2,\"result\":{}}\n";
        assert_eq!(
            scan_reply(m, 2),
            ReplyScan::Ok(&b"{\"id\":2,\"result\":{}}"[..])
        );
        let ReplyScan::Ok(l) = scan_reply(m, 1) else {
            panic!()
        };
        assert_eq!(client_id(l), Some("abc-1"));
        assert_eq!(scan_reply(m, 3), ReplyScan::None);
        let e = b"{\"id\":1,\"connect\":{\"client\":\"z\"}}\n{\"id\":2,\"error\":{\"code\":103,\"message\":\"permission denied\"}}";
        assert!(matches!(scan_reply(e, 2), ReplyScan::Error(_)));
        assert!(matches!(scan_reply(e, 3), ReplyScan::Error(_)));
        assert_eq!(
            client_id(b"{\"id\":1,\"connect\":{\"client\":\"z\"}}"),
            Some("z")
        );
        // Pushes carry no id; id 12 is not id 1.
        assert_eq!(
            scan_reply(
                b"{\"result\":{\"channel\":\"c\",\"data\":{}}}\n{\"id\":12}",
                1
            ),
            ReplyScan::None
        );
    }

    #[test]
    fn deliveries_are_found_in_coalesced_frames() {
        let mut data = Vec::new();
        publication_data(&mut data, 3, 17, 42, 1_700_000_000_123_456_789, 100);
        assert_eq!(data.len(), 100);
        let d = String::from_utf8(data.clone()).unwrap();
        let v1 =
            format!("{{\"result\":{{\"channel\":\"c\",\"data\":{{\"data\":{d},\"offset\":5}}}}}}");
        let v2 = format!("{{\"push\":{{\"channel\":\"c\",\"pub\":{{\"data\":{d}}}}}}}");
        let msg = format!("{v1}\n{v2}\n{v1}\n");
        let mut seen = Vec::new();
        let n = for_each_delivery(msg.as_bytes(), |x| seen.push(x));
        assert_eq!(n, 3);
        let want = Delivery {
            publisher: 3,
            channel: 17,
            seq: 42,
            ts_ns: 1_700_000_000_123_456_789,
        };
        assert_eq!(seen, vec![want; 3]);
        // Truncated or foreign markers are skipped.
        assert_eq!(for_each_delivery(b"\"rb\":[1,2", |_| ()), 0);
        assert_eq!(for_each_delivery(b"\"rb\":[x]", |_| ()), 0);
        // Tiny sizes still give valid JSON.
        let mut small = Vec::new();
        publication_data(&mut small, 0, 0, 1, 2, 10);
        assert_eq!(small, b"{\"rb\":[0,0,1,2],\"pad\":\"\"}");
    }

    #[test]
    fn joins_and_pings() {
        let v1 = b"{\"result\":{\"type\":1,\"channel\":\"c\",\"data\":{\"info\":{\"user\":\"u\",\"client\":\"x\"}}}}\n{\"result\":{\"type\":1,\"channel\":\"c\",\"data\":{}}}\n";
        assert_eq!(count_joins(v1, Proto::V1), 2);
        let v2 = b"{\"push\":{\"channel\":\"c\",\"join\":{\"info\":{\"user\":\"u\"}}}}";
        assert_eq!(count_joins(v2, Proto::V2), 1);
        assert!(has_v2_ping(b"{}"));
        assert!(has_v2_ping(b"{\"push\":{}}\n{}\n"));
        assert!(!has_v2_ping(b"{\"push\":{\"pub\":{\"data\":{}}}}"));
    }

    #[test]
    fn uints() {
        let mut b = Vec::new();
        for v in [0u64, 7, 10, 99_999, u64::MAX] {
            b.clear();
            push_uint(&mut b, v);
            assert_eq!(b, v.to_string().as_bytes());
            assert_eq!(parse_uint(&b), Some((v, b.len())));
        }
        assert_eq!(parse_uint(b"  12,"), Some((12, 4)));
        assert_eq!(parse_uint(b"x"), None);
    }
}
