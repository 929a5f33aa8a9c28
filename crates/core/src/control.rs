//! Node-to-node control messages, carried by the broker: server API commands that must reach a
//! user's connections on every node, and the periodic node-info ping that lets `info` list
//! every node. The node that receives an API call applies it locally first and then tells the
//! others, so a caller on one node sees the effect when the call returns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rotor_protocol::DisconnectKind;
use serde::{Deserialize, Serialize};

/// One control message. JSON on the wire: small, rare, and readable in `redis-cli monitor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlMessage {
    Unsubscribe {
        from: String,
        user: String,
        channel: String,
        client: String,
    },
    Subscribe {
        from: String,
        user: String,
        channel: String,
        client: String,
        info: Option<String>,
        recover_offset: Option<u64>,
        recover_epoch: String,
    },
    Disconnect {
        from: String,
        user: String,
        /// Only this connection (every one of the user's when empty).
        client: String,
        /// A connection to spare (single-connection mode keeps the user's newest one).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        except: String,
        #[serde(default, skip_serializing_if = "DisconnectReason::is_force")]
        reason: DisconnectReason,
    },
    NodeInfo(NodeInfoMessage),
    /// An `/emulation` request received by node `from` for a session that node `to` holds;
    /// `data` is base64.
    Emulation {
        from: String,
        to: String,
        id: u64,
        session: String,
        data: String,
    },
    /// Node `to`'s emulation request `id` was handled.
    EmulationDone {
        to: String,
        id: u64,
    },
}

/// Why a user's connections are closed: the close code each one gets (in its own generation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The server API's `disconnect`.
    #[default]
    Force,
    /// `user_personal_single_connection`: a newer connection of the user took over.
    ConnectionLimit,
}

impl DisconnectReason {
    fn is_force(&self) -> bool {
        *self == Self::Force
    }

    pub fn kind(self) -> DisconnectKind {
        match self {
            Self::Force => DisconnectKind::ForceDisconnect,
            Self::ConnectionLimit => DisconnectKind::ConnectionLimit,
        }
    }
}

/// What a node reports about itself every few seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoMessage {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: u64,
    pub num_users: u64,
    pub num_channels: u64,
    pub uptime: u64,
    /// Channels with subscribers on the node and their subscriber counts, so that the API's
    /// `channels` lists every node's (multi-node engines only; at most
    /// [`MAX_ANNOUNCED_CHANNELS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<(String, u64)>,
}

/// The most channels one node announces (bounds the size of a node-info message).
pub const MAX_ANNOUNCED_CHANNELS: usize = 20_000;

impl ControlMessage {
    pub fn encode(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(data: &[u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }
}

/// Nodes heard from recently.
#[derive(Default)]
pub struct NodeRegistry {
    nodes: Mutex<HashMap<String, (NodeInfoMessage, Instant)>>,
}

impl NodeRegistry {
    pub fn update(&self, info: NodeInfoMessage) {
        self.nodes
            .lock()
            .insert(info.uid.clone(), (info, Instant::now()));
    }

    /// Whether node `uid` was seen within `ttl`.
    pub fn is_live(&self, uid: &str, ttl: Duration) -> bool {
        self.nodes
            .lock()
            .get(uid)
            .is_some_and(|(_, seen)| seen.elapsed() <= ttl)
    }

    /// Nodes seen within `ttl`, sorted by name then uid; forgets older ones.
    pub fn live(&self, ttl: Duration) -> Vec<NodeInfoMessage> {
        let mut nodes = self.nodes.lock();
        nodes.retain(|_, (_, seen)| seen.elapsed() <= ttl);
        let mut out: Vec<_> = nodes.values().map(|(i, _)| i.clone()).collect();
        out.sort_by(|a, b| (&a.name, &a.uid).cmp(&(&b.name, &b.uid)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = ControlMessage::Disconnect {
            from: "n1".into(),
            user: "42".into(),
            client: String::new(),
            except: String::new(),
            reason: DisconnectReason::Force,
        };
        assert_eq!(ControlMessage::decode(&m.encode()), Some(m));
        assert_eq!(ControlMessage::decode(b"garbage"), None);
    }

    #[test]
    fn disconnect_with_exception_round_trips_and_plain_form_stays_compact() {
        let m = ControlMessage::Disconnect {
            from: "n1".into(),
            user: "42".into(),
            client: String::new(),
            except: "c1".into(),
            reason: DisconnectReason::ConnectionLimit,
        };
        assert_eq!(ControlMessage::decode(&m.encode()), Some(m));
        // What nodes without the two fields sent (and still send for the API's disconnect).
        let plain = br#"{"op":"disconnect","from":"n1","user":"42","client":""}"#;
        let decoded = ControlMessage::decode(plain).expect("decodes");
        assert_eq!(decoded.encode().as_ref(), plain);
        let ControlMessage::Disconnect { except, reason, .. } = decoded else {
            panic!("not a disconnect: {decoded:?}");
        };
        assert_eq!((except.as_str(), reason), ("", DisconnectReason::Force));
    }
}
