//! Messages of client protocol v1 (package `protocol`, v0.3.x), mirroring
//! `crates/protocol/proto/client_v1.proto` field for field.
//!
//! Hand-written `prost` structs rather than generated ones: no build script, no schema compiler
//! in the build. Rotor decodes commands with them; replies are encoded by hand
//! ([`super::ProtobufEncoder`]) and these types serve to read them back (tests, test clients).
//! `params`, `result` and `data` hold the serialized bytes of the nested message.

use std::collections::BTreeMap;

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `Command.MethodType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MethodType {
    Connect = 0,
    Subscribe = 1,
    Unsubscribe = 2,
    Publish = 3,
    Presence = 4,
    PresenceStats = 5,
    History = 6,
    Ping = 7,
    Send = 8,
    Rpc = 9,
    Refresh = 10,
    SubRefresh = 11,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(enumeration = "MethodType", tag = "2")]
    pub method: i32,
    /// The serialized `XxxRequest` of `method`.
    #[prost(bytes = "bytes", tag = "3")]
    pub params: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    /// The serialized `XxxResult`, or a serialized [`Push`] when `id` is 0.
    #[prost(bytes = "bytes", tag = "3")]
    pub result: Bytes,
}

/// `Push.PushType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PushType {
    Publication = 0,
    Join = 1,
    Leave = 2,
    Unsub = 3,
    Message = 4,
    Sub = 5,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Push {
    #[prost(enumeration = "PushType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub channel: String,
    /// The serialized message named by `type`.
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientInfo {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub client: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub conn_info: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    pub chan_info: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Publication {
    #[prost(uint32, tag = "1")]
    pub seq: u32,
    #[prost(uint32, tag = "2")]
    pub gen: u32,
    #[prost(string, tag = "3")]
    pub uid: String,
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
    #[prost(message, optional, tag = "5")]
    pub info: Option<ClientInfo>,
    #[prost(uint64, tag = "6")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Join {
    #[prost(message, optional, tag = "1")]
    pub info: Option<ClientInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Leave {
    #[prost(message, optional, tag = "1")]
    pub info: Option<ClientInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Unsub {
    #[prost(bool, tag = "1")]
    pub resubscribe: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sub {
    #[prost(bool, tag = "1")]
    pub recoverable: bool,
    #[prost(uint32, tag = "2")]
    pub seq: u32,
    #[prost(uint32, tag = "3")]
    pub gen: u32,
    #[prost(string, tag = "4")]
    pub epoch: String,
    #[prost(uint64, tag = "5")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectRequest {
    #[prost(string, tag = "1")]
    pub token: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
    #[prost(btree_map = "string, message", tag = "3")]
    pub subs: BTreeMap<String, SubscribeRequest>,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResult {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(bool, tag = "3")]
    pub expires: bool,
    #[prost(uint32, tag = "4")]
    pub ttl: u32,
    #[prost(bytes = "bytes", tag = "5")]
    pub data: Bytes,
    #[prost(btree_map = "string, message", tag = "6")]
    pub subs: BTreeMap<String, SubscribeResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshRequest {
    #[prost(string, tag = "1")]
    pub token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResult {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(bool, tag = "3")]
    pub expires: bool,
    #[prost(uint32, tag = "4")]
    pub ttl: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub token: String,
    #[prost(bool, tag = "3")]
    pub recover: bool,
    #[prost(uint32, tag = "4")]
    pub seq: u32,
    #[prost(uint32, tag = "5")]
    pub gen: u32,
    #[prost(string, tag = "6")]
    pub epoch: String,
    #[prost(uint64, tag = "7")]
    pub offset: u64,
    /// Sent by centrifuge-js 2.8 (absent from protocol v0.3.x).
    #[prost(bytes = "bytes", tag = "8")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResult {
    #[prost(bool, tag = "1")]
    pub expires: bool,
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
    #[prost(bool, tag = "3")]
    pub recoverable: bool,
    #[prost(uint32, tag = "4")]
    pub seq: u32,
    #[prost(uint32, tag = "5")]
    pub gen: u32,
    #[prost(string, tag = "6")]
    pub epoch: String,
    #[prost(message, repeated, tag = "7")]
    pub publications: Vec<Publication>,
    #[prost(bool, tag = "8")]
    pub recovered: bool,
    #[prost(uint64, tag = "9")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshResult {
    #[prost(bool, tag = "1")]
    pub expires: bool,
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UnsubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UnsubscribeResult {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResult {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceResult {
    #[prost(btree_map = "string, message", tag = "1")]
    pub presence: BTreeMap<String, ClientInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceStatsRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceStatsResult {
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
    #[prost(uint32, tag = "2")]
    pub num_users: u32,
}

/// From the centrifuge-js 2.8 schema (protocol v0.4+); v1 history ignores it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPosition {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(string, tag = "2")]
    pub epoch: String,
}

/// `limit`, `since` and `reverse` come from the centrifuge-js 2.8 schema; v1 ignores them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(int32, tag = "7")]
    pub limit: i32,
    #[prost(message, optional, tag = "8")]
    pub since: Option<StreamPosition>,
    #[prost(bool, tag = "9")]
    pub reverse: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryResult {
    #[prost(message, repeated, tag = "1")]
    pub publications: Vec<Publication>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PingRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PingResult {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcRequest {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
    #[prost(string, tag = "2")]
    pub method: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResult {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SendRequest {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}
