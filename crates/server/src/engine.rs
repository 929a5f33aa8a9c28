//! Builds the node on the engine the configuration names: `memory` (in process) or `redis`
//! (several nodes as one service, `rotor-engine-redis`, configured by the `redis_*` keys).

use std::time::Duration;

use anyhow::Context;
use rotor_core::Node;
use rotor_engine_redis::{RedisConfig, RedisEngine};

use crate::config::LoadedConfig;

/// How long start-up waits for Redis before serving anyway (`/health` answers 503 until every
/// shard is connected, and engine operations fail meanwhile).
const REDIS_START_WAIT: Duration = Duration::from_secs(3);

/// The node for `cfg`, its engine started. Must run inside the Tokio runtime.
pub async fn build_node(cfg: &LoadedConfig) -> anyhow::Result<Node> {
    match cfg.server.engine.as_str() {
        "memory" => Node::new(cfg.node.clone()).context("invalid configuration"),
        "redis" => {
            let redis = RedisConfig::from_map(&cfg.server.redis)?.with_client_name(&cfg.node.name);
            let engine = RedisEngine::start(redis);
            if !engine.wait_ready(REDIS_START_WAIT).await {
                tracing::warn!(
                    shards = ?engine.unready_shards(),
                    "redis is not reachable yet; serving anyway, /health answers 503 until it is"
                );
            }
            Node::with_engine(
                cfg.node.clone(),
                engine.broker.clone(),
                engine.presence.clone(),
            )
            .context("invalid configuration")
        }
        other => anyhow::bail!("engine {other:?} is not available; use \"memory\" or \"redis\""),
    }
}
