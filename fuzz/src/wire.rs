//! Messages from the server's other peers: gRPC proxy answers from the application backend,
//! gRPC server API requests, and what Redis sends the Redis engine.

use rotor_engine_redis::fuzz as redis;
use rotor_server::fuzz as srv;

use crate::split_mode;

/// gRPC messages (prost-decoded, then converted). Mode byte even: the rest is a gRPC proxy
/// answer of the call kind (mode / 2) % 6, read for both key styles, JSON and binary
/// (`b64*`) payloads; odd: a gRPC server API request of the method (mode / 2) % 25 (both
/// generations, `Batch` included). Checks: reading is deterministic; a v6 unary request
/// converts to the same command as a batch `Command` holding it; a batch has no more commands
/// than bytes; a converted command names the method it was decoded for.
pub fn grpc_messages(data: &[u8]) {
    let Some((mode, body)) = split_mode(data) else {
        return;
    };
    let kind = mode / 2;
    if mode % 2 == 0 {
        for binary in [false, true] {
            let first = rotor_proxy::fuzz_grpc_answer(kind, body, binary);
            assert_eq!(first, rotor_proxy::fuzz_grpc_answer(kind, body, binary));
        }
        return;
    }
    let method = usize::from(kind) % srv::GRPC_API_METHODS.len();
    let Some(req) = srv::grpc_api_request(method, body) else {
        return;
    };
    assert_eq!(Some(&req), srv::grpc_api_request(method, body).as_ref());
    let name = srv::GRPC_API_METHODS[method];
    if name == "v6.Batch" {
        assert!(req.commands.len() <= body.len());
        return;
    }
    assert_eq!(req.commands.len(), 1);
    let cmd = req.commands[0]
        .as_ref()
        .expect("a unary request is a command");
    let (_, method_name) = name.split_once('.').expect("generation.method");
    assert!(
        cmd.method()
            .replace('_', "")
            .eq_ignore_ascii_case(method_name),
        "{name} converted to {}",
        cmd.method()
    );
    if let Some(batch) = &req.via_batch {
        assert_eq!(batch.as_ref(), Some(cmd), "{name}: unary and batch differ");
    }
}

/// Redis replies as the Redis engine reads them. Mode byte % 3: 0 = the rest is RESP bytes, the
/// reply of script (mode / 3) % 4 (publish, history, presence, presence_stats), parsed by the
/// `redis` crate as a connection does; 1 = a PUB/SUB message payload (publication, delta
/// publication, join, leave, control); 2 = a PUB/SUB channel name and a channel, separated by
/// the first 0 byte, against names with prefix `P` and (mode / 3) % 3 * 64 partitions.
/// Checks: reading is deterministic; a publication read from history or PUB/SUB, written
/// back as the engine writes it, reads back the same; a channel's own PUB/SUB name maps back
/// to it.
pub fn redis_reply(data: &[u8]) {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    let sub = mode / 3;
    match mode % 3 {
        0 => {
            let Some((read, pubs)) = redis::script_reply(sub, rest) else {
                return;
            };
            let again = redis::script_reply(sub, rest).expect("parsed once");
            assert_eq!(read, again.0);
            for p in &pubs {
                round_trip(p, "E");
            }
        }
        1 => {
            let (control, message) = redis::pubsub_payload(rest);
            assert_eq!(
                (control.clone(), message.clone()),
                redis::pubsub_payload(rest)
            );
            if let Some(c) = &control {
                let again = rotor_engine_redis::wire::control_message(c);
                assert_eq!(again, rest);
            }
            use rotor_engine_redis::wire::ChannelMessage;
            match &message {
                Some(ChannelMessage::Publication { publication, epoch })
                    if publication.prev_data.is_none() =>
                {
                    round_trip(publication, epoch);
                }
                Some(ChannelMessage::Join(info) | ChannelMessage::Leave(info)) => {
                    let leave = matches!(message, Some(ChannelMessage::Leave(_)));
                    let again = rotor_engine_redis::wire::join_leave_message(info, leave);
                    let back = rotor_engine_redis::wire::decode_channel_message(&again.into());
                    assert_eq!(back, message);
                }
                _ => {}
            }
        }
        _ => {
            let (pubsub, channel) = match rest.iter().position(|b| *b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            let Ok(channel) = std::str::from_utf8(channel) else {
                return;
            };
            let partitions = usize::from(sub % 3) * 64;
            let (of, own, back) = redis::pubsub_channel("P", partitions, pubsub, channel);
            assert_eq!(back.as_deref(), Some(channel), "{own}");
            // Any name is read without a panic, deterministically.
            assert_eq!(
                of,
                redis::pubsub_channel("P", partitions, pubsub, channel).0
            );
        }
    }
}

/// A publication written back as the engine writes one (body, then a `p` message) reads
/// back the same.
fn round_trip(p: &rotor_protocol::Publication, epoch: &str) {
    use rotor_engine_redis::wire;
    let body = wire::body(p.info.as_deref(), p.tags.as_deref(), &p.data);
    let msg = wire::publication_message(p.offset, epoch, &body);
    match wire::decode_channel_message(&msg.into()) {
        Some(wire::ChannelMessage::Publication {
            publication,
            epoch: e,
        }) => {
            assert_eq!(&publication, p);
            assert_eq!(e, epoch);
        }
        other => panic!("a written publication reads back as {other:?}"),
    }
}
