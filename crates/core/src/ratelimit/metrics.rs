//! Hits of rate limits (a bucket had no token), by layer, command and dry run: Centrifugo
//! PRO's `centrifugo_rate_limit_client_over_limit_count`. Only a hit touches a counter, so
//! commands that pass do no metric work.

use std::sync::atomic::{AtomicU64, Ordering};

use super::config::Command;
use super::LayerKind;

/// The command label index of `client_error` hits (`error`).
pub(crate) const ERROR_LABEL: usize = Command::COUNT;
const LABELS: usize = Command::COUNT + 1;
const LAYERS: [LayerKind; 4] = [
    LayerKind::ClientCommand,
    LayerKind::UserCommand,
    LayerKind::RedisUserCommand,
    LayerKind::ClientError,
];

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const PAIR: [AtomicU64; 2] = [ZERO; 2];
#[allow(clippy::declare_interior_mutable_const)]
const ROW: [[AtomicU64; 2]; LABELS] = [PAIR; LABELS];
static HITS: [[[AtomicU64; 2]; LABELS]; 4] = [ROW; 4];

pub(crate) fn hit(layer: LayerKind, label: usize, dry_run: bool) {
    HITS[layer as usize][label][usize::from(dry_run)].fetch_add(1, Ordering::Relaxed);
}

/// One non-zero counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverLimit {
    pub layer: &'static str,
    pub command: &'static str,
    pub dry_run: bool,
    pub count: u64,
}

/// Every counter that is not zero.
pub fn over_limit_counts() -> Vec<OverLimit> {
    let mut out = Vec::new();
    for layer in LAYERS {
        for (label, pair) in HITS[layer as usize].iter().enumerate() {
            for (dry, counter) in [false, true].into_iter().zip(pair) {
                let count = counter.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let command = Command::ALL.get(label).map_or("error", |c| c.name());
                out.push(OverLimit {
                    layer: layer.name(),
                    command,
                    dry_run: dry,
                    count,
                });
            }
        }
    }
    out
}
