//! JSON of server API results and errors in the shape of the endpoint that was called: the 2.x
//! `/api` shape (results left out for methods without one, channel lists, publications without
//! positions) and the current `/api/<method>` shape (GRPC-API.md §3.2: proto field order, zero
//! fields omitted except the ones the spec keeps). Bytes fields (`data`, `conn_info`,
//! `chan_info`) are embedded as raw JSON.

use std::io::Write;

use rotor_core::api::{ApiError, ApiResult, NodeInfo};
use rotor_core::engine::StreamPosition;
use rotor_protocol::json::{client_info, write_str, JsonEncoder};
use rotor_protocol::{Generation, PositionFormat, Publication};

/// Which endpoint answers: shapes and some messages differ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    Legacy,
    Current,
}

/// `"error":{"code":N,"message":".."}` (a member, without the enclosing braces).
pub fn write_error(out: &mut Vec<u8>, e: ApiError, shape: Shape) {
    out.extend_from_slice(b"\"error\":");
    error_object(out, e, shape);
}

/// The bare error object `{"code":N,"message":".."}`.
pub fn error_object(out: &mut Vec<u8>, e: ApiError, shape: Shape) {
    let _ = write!(out, "{{\"code\":{},\"message\":", e.code);
    write_str(out, e.message(shape == Shape::Legacy));
    out.push(b'}');
}

/// The method a result answers (the key of its batch reply).
pub fn method_name(result: &ApiResult) -> &'static str {
    match result {
        ApiResult::Publish(_) => "publish",
        ApiResult::Broadcast(_) => "broadcast",
        ApiResult::Subscribe => "subscribe",
        ApiResult::Unsubscribe => "unsubscribe",
        ApiResult::Disconnect => "disconnect",
        ApiResult::Refresh => "refresh",
        ApiResult::Presence(_) => "presence",
        ApiResult::PresenceStats(_) => "presence_stats",
        ApiResult::History(_) => "history",
        ApiResult::HistoryRemove => "history_remove",
        ApiResult::Channels(_) => "channels",
        ApiResult::Info(_) => "info",
        ApiResult::Rpc(_) => "rpc",
    }
}

/// The JSON of a result in `shape`; `None` where 2.x leaves the result out.
pub fn encode_result(result: &ApiResult, shape: Shape) -> Option<Vec<u8>> {
    let legacy = shape == Shape::Legacy;
    let empty = || (!legacy).then(|| b"{}".to_vec());
    match result {
        ApiResult::Publish(pos) => (!legacy).then(|| position_object(pos)),
        ApiResult::Broadcast(results) => {
            if legacy {
                return None;
            }
            let mut out = b"{\"responses\":[".to_vec();
            for (i, r) in results.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                match r {
                    Ok(pos) => {
                        out.extend_from_slice(b"\"result\":");
                        out.extend_from_slice(&position_object(pos));
                    }
                    Err(e) => write_error(&mut out, *e, shape),
                }
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
            Some(out)
        }
        ApiResult::Subscribe
        | ApiResult::Unsubscribe
        | ApiResult::Disconnect
        | ApiResult::Refresh
        | ApiResult::HistoryRemove => empty(),
        ApiResult::Presence(list) => {
            let mut out = b"{\"presence\":{".to_vec();
            for (i, c) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(&mut out, &c.client);
                out.push(b':');
                client_info(&mut out, c);
            }
            out.extend_from_slice(b"}}");
            Some(out)
        }
        ApiResult::PresenceStats(s) => Some(
            format!(
                "{{\"num_clients\":{},\"num_users\":{}}}",
                s.num_clients, s.num_users
            )
            .into_bytes(),
        ),
        ApiResult::History(page) => Some(history_object(&page.publications, &page.position, shape)),
        ApiResult::Channels(list) => Some(channels_object(list, shape)),
        ApiResult::Info(nodes) => Some(info_object(nodes, shape)),
        ApiResult::Rpc(data) => {
            if data.is_empty() && !legacy {
                return Some(b"{}".to_vec());
            }
            let mut out = b"{\"data\":".to_vec();
            out.extend_from_slice(if data.is_empty() { b"null" } else { data });
            out.push(b'}');
            Some(out)
        }
    }
}

/// `{}` without a position (history off), else `{"offset":N,"epoch":".."}`.
fn position_object(pos: &StreamPosition) -> Vec<u8> {
    if pos.offset == 0 && pos.epoch.is_empty() {
        return b"{}".to_vec();
    }
    let mut out = format!("{{\"offset\":{},\"epoch\":", pos.offset).into_bytes();
    write_str(&mut out, &pos.epoch);
    out.push(b'}');
    out
}

fn channels_object(list: &[(String, usize)], shape: Shape) -> Vec<u8> {
    let mut out = b"{\"channels\":".to_vec();
    let legacy = shape == Shape::Legacy;
    out.push(if legacy { b'[' } else { b'{' });
    for (i, (ch, n)) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, ch);
        if !legacy {
            if *n == 0 {
                out.extend_from_slice(b":{}");
            } else {
                let _ = write!(out, ":{{\"num_clients\":{n}}}");
            }
        }
    }
    out.push(if legacy { b']' } else { b'}' });
    out.push(b'}');
    out
}

/// 2.x: `{"publications":[{data, info}]}`; current: publications with `offset` and `tags`,
/// then `epoch` and `offset` of the stream, always present.
fn history_object(pubs: &[Publication], pos: &StreamPosition, shape: Shape) -> Vec<u8> {
    let enc = JsonEncoder::new(Generation::V2, PositionFormat::Offset);
    let mut out = b"{\"publications\":[".to_vec();
    for (i, p) in pubs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match shape {
            // 2.x API publications carry no positions.
            Shape::Legacy => {
                out.extend_from_slice(b"{\"data\":");
                out.extend_from_slice(if p.data.is_empty() { b"null" } else { &p.data });
                if let Some(info) = &p.info {
                    out.extend_from_slice(b",\"info\":");
                    client_info(&mut out, info);
                }
                out.push(b'}');
            }
            Shape::Current => enc.publication(&mut out, p),
        }
    }
    out.push(b']');
    if shape == Shape::Current {
        out.extend_from_slice(b",\"epoch\":");
        write_str(&mut out, &pos.epoch);
        let _ = write!(out, ",\"offset\":{}", pos.offset);
    }
    out.push(b'}');
    out
}

fn info_object(nodes: &[NodeInfo], shape: Shape) -> Vec<u8> {
    let mut out = b"{\"nodes\":[".to_vec();
    for (i, info) in nodes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        node_object(&mut out, info, shape);
    }
    out.extend_from_slice(b"]}");
    out
}

/// 2.x: every count, `uptime` and an empty `metrics`; current: the counts and `num_subs`
/// always, `uptime` when not zero (no `metrics`/`process` in OSS).
fn node_object(out: &mut Vec<u8>, info: &NodeInfo, shape: Shape) {
    out.extend_from_slice(b"{\"uid\":");
    write_str(out, &info.uid);
    out.extend_from_slice(b",\"name\":");
    write_str(out, &info.name);
    out.extend_from_slice(b",\"version\":");
    write_str(out, &info.version);
    let _ = write!(
        out,
        ",\"num_clients\":{},\"num_users\":{},\"num_channels\":{}",
        info.num_clients, info.num_users, info.num_channels
    );
    match shape {
        Shape::Legacy => {
            let _ = write!(out, ",\"uptime\":{}", info.uptime_secs);
            out.extend_from_slice(b",\"metrics\":{\"interval\":60,\"items\":{}}");
        }
        Shape::Current => {
            if info.uptime_secs != 0 {
                let _ = write!(out, ",\"uptime\":{}", info.uptime_secs);
            }
            let _ = write!(out, ",\"num_subs\":{}", info.num_subs);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::engine::HistoryPage;

    fn text(r: &ApiResult, shape: Shape) -> Option<String> {
        encode_result(r, shape).map(|v| String::from_utf8(v).unwrap())
    }

    fn pos(offset: u64, epoch: &str) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: epoch.to_string(),
        }
    }

    #[test]
    fn publish_and_broadcast() {
        let off = ApiResult::Publish(pos(0, ""));
        assert_eq!(text(&off, Shape::Current).as_deref(), Some("{}"));
        assert_eq!(text(&off, Shape::Legacy), None);
        let on = ApiResult::Publish(pos(3, "ab"));
        assert_eq!(
            text(&on, Shape::Current).as_deref(),
            Some(r#"{"offset":3,"epoch":"ab"}"#)
        );
        let b = ApiResult::Broadcast(vec![Ok(pos(1, "e")), Err(ApiError::UNKNOWN_CHANNEL)]);
        assert_eq!(
            text(&b, Shape::Current).as_deref(),
            Some(
                r#"{"responses":[{"result":{"offset":1,"epoch":"e"}},{"error":{"code":102,"message":"unknown channel"}}]}"#
            )
        );
    }

    #[test]
    fn history_keeps_epoch_and_offset() {
        let h = ApiResult::History(HistoryPage {
            publications: vec![],
            position: pos(0, ""),
        });
        assert_eq!(
            text(&h, Shape::Current).as_deref(),
            Some(r#"{"publications":[],"epoch":"","offset":0}"#)
        );
        assert_eq!(
            text(&h, Shape::Legacy).as_deref(),
            Some(r#"{"publications":[]}"#)
        );
    }

    #[test]
    fn node_result_fields() {
        let n = NodeInfo {
            uid: "u".into(),
            name: "n".into(),
            version: "v".into(),
            num_clients: 0,
            num_users: 0,
            num_channels: 0,
            num_subs: 0,
            uptime_secs: 0,
            messages_sent: 7,
        };
        assert_eq!(
            text(&ApiResult::Info(vec![n.clone()]), Shape::Current).as_deref(),
            Some(
                r#"{"nodes":[{"uid":"u","name":"n","version":"v","num_clients":0,"num_users":0,"num_channels":0,"num_subs":0}]}"#
            )
        );
        let n = NodeInfo {
            uptime_secs: 5,
            ..n
        };
        assert!(text(&ApiResult::Info(vec![n]), Shape::Current)
            .unwrap()
            .contains(r#""num_channels":0,"uptime":5,"num_subs":0"#));
    }

    #[test]
    fn channels_map_and_list() {
        let c = ApiResult::Channels(vec![("a".into(), 2)]);
        assert_eq!(
            text(&c, Shape::Current).as_deref(),
            Some(r#"{"channels":{"a":{"num_clients":2}}}"#)
        );
        assert_eq!(
            text(&c, Shape::Legacy).as_deref(),
            Some(r#"{"channels":["a"]}"#)
        );
        assert_eq!(
            text(&ApiResult::Channels(vec![]), Shape::Current).as_deref(),
            Some(r#"{"channels":{}}"#)
        );
    }
}
