//! Entry points of the fuzz target `redis_reply` (`fuzz/`, FUZZING.md) into the engine's
//! readers of what Redis sends: the script replies of publish, history and presence, taken
//! from RESP bytes by the `redis` crate's parser as a connection does, and the payloads of
//! PUB/SUB messages with the PUB/SUB channel names they arrive on. Hidden from the docs; not
//! an API.

use bytes::Bytes;
use redis::Value;
use rotor_protocol::Publication;

use crate::keys::Names;
use crate::{broker, presence, wire};

/// What a script reply read to: the engine's result, as its `Debug` text (`Err` = the error the
/// caller would see).
pub type Read = Result<String, String>;

/// The scripts whose replies the engine reads, in mode order.
pub const SCRIPTS: [&str; 4] = ["publish", "history", "presence", "presence_stats"];

/// `resp` (RESP2 or RESP3 bytes) as the reply of `script` (an index into [`SCRIPTS`], modulo);
/// `None` when the bytes are not one complete RESP value. History replies also yield their
/// publications, for the caller's round trip.
pub fn script_reply(script: u8, resp: &[u8]) -> Option<(Read, Vec<Publication>)> {
    let value = redis::parse_redis_value(resp).ok()?;
    let dbg = |r: Result<String, rotor_core::engine::EngineError>| r.map_err(|e| e.to_string());
    let mut pubs = Vec::new();
    let read = match usize::from(script) % SCRIPTS.len() {
        0 => match redis::from_redis_value::<(String, String, String)>(value) {
            Ok((offset, epoch, _outcome)) => {
                dbg(broker::publish_position(&offset, epoch).map(|p| format!("{p:?}")))
            }
            Err(e) => Err(e.to_string()),
        },
        1 => match redis::from_redis_value::<Vec<Value>>(value) {
            Ok(v) => dbg(broker::history_page(v).map(|page| {
                let text = format!("{page:?}");
                pubs = page.publications;
                text
            })),
            Err(e) => Err(e.to_string()),
        },
        2 => match redis::from_redis_value::<Vec<Value>>(value) {
            Ok(v) => Ok(format!("{:?}", presence::presence_list("fuzz", v))),
            Err(e) => Err(e.to_string()),
        },
        _ => match redis::from_redis_value::<(u32, u32)>(value) {
            Ok(stats) => Ok(format!("{stats:?}")),
            Err(e) => Err(e.to_string()),
        },
    };
    Some((read, pubs))
}

/// A PUB/SUB message payload as the dispatcher reads it: a control message, or a channel's
/// publication, join or leave (`None` when malformed).
pub fn pubsub_payload(payload: &[u8]) -> (Option<Bytes>, Option<wire::ChannelMessage>) {
    let payload = Bytes::copy_from_slice(payload);
    (
        wire::decode_control(&payload),
        wire::decode_channel_message(&payload),
    )
}

/// The channel a PUB/SUB channel name belongs to, for names with `prefix` and `partitions`
/// sharded PUB/SUB partitions (0 = classic names), and the PUB/SUB name of `channel` itself.
pub fn pubsub_channel(
    prefix: &str,
    partitions: usize,
    pubsub: &[u8],
    channel: &str,
) -> (Option<String>, String, Option<String>) {
    let names = Names::new(prefix).with_partitions(partitions);
    let own = names.client_channel(channel);
    let back = names.channel_of(own.as_bytes());
    (names.channel_of(pubsub), own, back)
}
