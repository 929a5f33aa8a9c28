//! Rotor's engine room: the node, its hub of connections and subscriptions, the client session
//! state machine, JWT verification, channel rules, and the engines behind the [`engine`]
//! traits. Transport-agnostic: the server binary feeds sessions with frames and drains their
//! writer queues.

pub mod api;
pub mod auth;
pub mod backend;
pub mod channel;
pub mod channel_regex;
pub mod client;
pub mod config;
pub mod control;
pub mod emulation;
pub mod engine;
pub mod hub;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod ratelimit;
pub mod transport;
pub mod writer;

pub use client::{ClientShared, Session};
pub use config::{ChannelOptions, Namespace, NodeConfig};
pub use node::Node;
