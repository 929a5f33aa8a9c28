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
        /// Only the connection with this session (emulation / unidirectional transports).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        session: String,
        /// The current API's empty channel: remove nothing, send an unsubscribe push with an
        /// empty channel. Without it (2.x, and nodes before this field) an empty channel means
        /// every channel of the connection.
        #[serde(default, skip_serializing_if = "is_false")]
        empty_push: bool,
    },
    Subscribe {
        from: String,
        user: String,
        channel: String,
        client: String,
        /// Channel info as text (what nodes before `b64info` read; lossy for binary info).
        info: Option<String>,
        recover_offset: Option<u64>,
        recover_epoch: String,
        /// The exact channel info, base64 (wins over `info`).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        b64info: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        session: String,
        /// Subscription expiry, Unix seconds (0 = never).
        #[serde(default, skip_serializing_if = "is_zero")]
        expire_at: i64,
        /// Data for the subscribe push, base64.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        b64data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        overrides: Option<SubscribeOverrides>,
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
        /// The current API's `disconnect {code, reason}` (wins over `reason`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom: Option<CustomClose>,
        /// Client IDs spared.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        whitelist: Vec<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        session: String,
    },
    /// The current API's `refresh` of a user's connections.
    Refresh {
        from: String,
        user: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        client: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        session: String,
        #[serde(default, skip_serializing_if = "is_false")]
        expired: bool,
        #[serde(default, skip_serializing_if = "is_zero")]
        expire_at: i64,
        /// New connection info, base64 (absent = keep).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b64info: Option<String>,
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

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A close code and reason the API caller chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomClose {
    pub code: u16,
    pub reason: String,
}

/// The subscribe `override` options (absent = the channel's setting).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_leave: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_recovery: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_positioning: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_push_join_leave: Option<bool>,
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
    /// Subscriptions on the node (nodes before this field: 0).
    #[serde(default)]
    pub num_subs: u64,
    /// Messages this node's process has queued to its client connections since it started
    /// (nodes before this field: 0); the admin UI charts its rate per node.
    #[serde(default)]
    pub messages_sent: u64,
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
            custom: None,
            whitelist: Vec::new(),
            session: String::new(),
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
            custom: Some(CustomClose {
                code: 4000,
                reason: "bye".into(),
            }),
            whitelist: vec!["c2".into()],
            session: "s1".into(),
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

    #[test]
    fn messages_of_nodes_before_the_new_fields_still_decode() {
        let sub = br#"{"op":"subscribe","from":"n1","user":"42","channel":"c","client":"","info":"{}","recover_offset":null,"recover_epoch":""}"#;
        let Some(ControlMessage::Subscribe {
            b64info,
            session,
            expire_at,
            b64data,
            overrides,
            info,
            ..
        }) = ControlMessage::decode(sub)
        else {
            panic!("not a subscribe");
        };
        assert_eq!(info.as_deref(), Some("{}"));
        assert!(b64info.is_empty() && session.is_empty() && b64data.is_empty());
        assert_eq!((expire_at, overrides), (0, None));
        let unsub = br#"{"op":"unsubscribe","from":"n1","user":"42","channel":"","client":""}"#;
        let decoded = ControlMessage::decode(unsub).expect("decodes");
        assert_eq!(decoded.encode().as_ref(), unsub, "stays compact");
        let Some(ControlMessage::Unsubscribe { empty_push, .. }) = ControlMessage::decode(unsub)
        else {
            panic!("not an unsubscribe");
        };
        assert!(
            !empty_push,
            "an old empty channel still means every channel"
        );
        let info = br#"{"op":"node_info","uid":"u","name":"n","version":"1","num_clients":1,"num_users":1,"num_channels":1,"uptime":5}"#;
        let Some(ControlMessage::NodeInfo(info)) = ControlMessage::decode(info) else {
            panic!("not node info");
        };
        assert_eq!(info.num_subs, 0);
    }

    #[test]
    fn refresh_and_full_subscribe_round_trip() {
        let r = ControlMessage::Refresh {
            from: "n1".into(),
            user: String::new(),
            client: "c".into(),
            session: "s".into(),
            expired: false,
            expire_at: 1_900_000_000,
            b64info: Some("e30=".into()),
        };
        assert_eq!(ControlMessage::decode(&r.encode()), Some(r));
        let s = ControlMessage::Subscribe {
            from: "n1".into(),
            user: "42".into(),
            channel: "c".into(),
            client: String::new(),
            info: None,
            recover_offset: Some(3),
            recover_epoch: "e".into(),
            b64info: "AAE=".into(),
            session: "s".into(),
            expire_at: 1_900_000_000,
            b64data: "e30=".into(),
            overrides: Some(SubscribeOverrides {
                presence: Some(false),
                force_push_join_leave: Some(true),
                ..Default::default()
            }),
        };
        assert_eq!(ControlMessage::decode(&s.encode()), Some(s));
    }
}
