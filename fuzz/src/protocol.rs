//! Client commands of both generations (`rotor_protocol::codec`): the frame splitter and the
//! command decoder, driven as a session drives them.

use rotor_protocol::codec::{decode_command, decode_frame};
use rotor_protocol::{Encoding, Generation};

use crate::{split_mode, within};

/// A JSON WebSocket/emulation message: newline-delimited commands.
pub fn protocol_json(data: &[u8]) {
    commands(Encoding::Json, data);
}

/// A Protobuf message: varint-length-delimited commands.
pub fn protocol_protobuf(data: &[u8]) {
    commands(Encoding::Protobuf, data);
}

/// Mode byte: the connection's generation before this frame (`None` = this is the first
/// frame, whose first command's shape decides, as in a session).
///
/// Checks: every command is a slice of the frame and there are no more commands than bytes
/// plus one; decoding is deterministic; a first command decoded without a generation decodes
/// to the same command once its generation is known (what the session relies on when it
/// fixes the generation from the first command).
fn commands(encoding: Encoding, data: &[u8]) {
    let Some((mode, frame)) = split_mode(data) else {
        return;
    };
    let mut generation = match mode % 3 {
        0 => None,
        1 => Some(Generation::V1),
        _ => Some(Generation::V2),
    };
    for (n, part) in decode_frame(encoding, frame).enumerate() {
        assert!(n <= frame.len(), "more commands than bytes");
        let Ok(bytes) = part else {
            break;
        };
        assert!(within(frame, bytes), "a command outside its frame");
        let decoded = decode_command(encoding, bytes, generation);
        assert_eq!(decoded, decode_command(encoding, bytes, generation));
        if let Ok((g, command)) = decoded {
            if let Some(known) = generation {
                assert_eq!(g, known, "the generation changed mid-connection");
            } else {
                let again = decode_command(encoding, bytes, Some(g));
                assert_eq!(again, Ok((g, command)), "first command decodes differently");
                generation = Some(g);
            }
        }
    }
}
