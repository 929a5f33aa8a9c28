//! Builds the node on the engine the configuration names: `memory` (in process) or `redis`
//! (several nodes as one service, `rotor-engine-redis`, configured by the `redis_*` keys),
//! and installs the client command rate limits (`client.rate_limit`; `redis_user_command`
//! keeps its buckets in the Redis engine).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rotor_core::ratelimit::{RateLimits, SharedLimiter};
use rotor_core::Node;
use rotor_engine_redis::{RedisConfig, RedisEngine, RedisRateLimiter};

use crate::config::LoadedConfig;

/// How long start-up waits for Redis before serving anyway (`/health` answers 503 until every
/// shard is connected, and engine operations fail meanwhile).
const REDIS_START_WAIT: Duration = Duration::from_secs(3);

/// The node for `cfg`, its engine started. Must run inside the Tokio runtime.
pub async fn build_node(cfg: &LoadedConfig) -> anyhow::Result<Node> {
    let (node, shared) = build_engine(cfg).await?;
    let limits = RateLimits::new(&cfg.server.rate_limit.config, shared)
        .context("invalid configuration (client.rate_limit)")?;
    if let Some(limits) = limits {
        let _ = node.set_rate_limits(Arc::new(limits));
    }
    Ok(node)
}

async fn build_engine(
    cfg: &LoadedConfig,
) -> anyhow::Result<(Node, Option<Arc<dyn SharedLimiter>>)> {
    match cfg.server.engine.as_str() {
        "memory" => Ok((
            Node::new(cfg.node.clone()).context("invalid configuration")?,
            None,
        )),
        "redis" => {
            let redis = RedisConfig::from_map(&cfg.server.redis)?.with_client_name(&cfg.node.name);
            let prefix = redis.prefix.clone();
            let engine = RedisEngine::start(redis);
            if !engine.wait_ready(REDIS_START_WAIT).await {
                tracing::warn!(
                    shards = ?engine.unready_shards(),
                    "redis is not reachable yet; serving anyway, /health answers 503 until it is"
                );
            }
            let shared: Option<Arc<dyn SharedLimiter>> = cfg
                .server
                .rate_limit
                .config
                .redis_user_command
                .as_ref()
                .map(|_| {
                    Arc::new(RedisRateLimiter::new(&engine, &prefix)) as Arc<dyn SharedLimiter>
                });
            let node = Node::with_engine(
                cfg.node.clone(),
                engine.broker.clone(),
                engine.presence.clone(),
            )
            .context("invalid configuration")?;
            Ok((node, shared))
        }
        other => anyhow::bail!("engine {other:?} is not available; use \"memory\" or \"redis\""),
    }
}
