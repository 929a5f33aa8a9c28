//! The memory broker's memory of idempotent publishes: for each (channel, idempotency key)
//! published within its window, the stream position the first publish answered.
//!
//! Invariants:
//! * Entries live in the stream shard of their channel ([`Results`] is locked together with the
//!   channel's stream), so "look the key up, publish, remember the result" is one atomic step
//!   per channel and two concurrent publishes with the same key deliver once.
//! * An entry is keyed by a 128-bit keyed hash of channel and key, so every entry has the same
//!   small size whatever the lengths of the strings the client sent.
//! * Expiry is lazy on lookup and swept by [`Results::sweep`] (the engine's cleanup tick).
//! * Bounded: all shards together hold at most [`MAX_RESULTS`] entries (a shared counter).
//!   When the budget is spent, a new entry evicts the entry of its own shard that expires
//!   first; a shard holding nothing to evict does not remember the new key. Either way a
//!   repeat of that key after eviction would be published again: the bound wins over the
//!   window under a flood of keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::engine::StreamPosition;

/// The most idempotency results the memory broker keeps at once, over all channels: enough
/// for about 430 keyed publishes a second sustained over the default 300 s window. Measured,
/// an entry costs about 270 bytes of resident memory (hash map slot at its load factor,
/// deadline index node, the epoch's allocation), so a full budget is about 35 MB. Sweeps give
/// memory back once a shard shrinks.
pub const MAX_RESULTS: usize = 131_072;

/// A remembered result.
struct Entry {
    position: StreamPosition,
    deadline: Instant,
    /// Tie-breaker in the deadline index (several entries may share an instant).
    seq: u64,
}

/// One shard's idempotency results.
#[derive(Default)]
pub(super) struct Results {
    entries: HashMap<u128, Entry>,
    /// Deadline order, for sweeping and eviction.
    by_deadline: BTreeMap<(Instant, u64), u128>,
    next_seq: u64,
}

impl Results {
    /// The result remembered for `id`, unless it has expired at `now` (then it is dropped).
    pub(super) fn get(
        &mut self,
        id: u128,
        now: Instant,
        total: &AtomicUsize,
    ) -> Option<StreamPosition> {
        let entry = self.entries.get(&id)?;
        if entry.deadline > now {
            return Some(entry.position.clone());
        }
        self.remove(id, total);
        None
    }

    /// Remembers `position` for `id` until `deadline`, replacing what `id` had. Keeps the
    /// global bound `total <= MAX_RESULTS` (see the module docs).
    pub(super) fn insert(
        &mut self,
        id: u128,
        position: StreamPosition,
        deadline: Instant,
        total: &AtomicUsize,
    ) {
        self.remove(id, total);
        if total.load(Ordering::Relaxed) >= MAX_RESULTS {
            let Some(((_, _), victim)) = self.by_deadline.first_key_value() else {
                return;
            };
            let victim = *victim;
            self.remove(victim, total);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.by_deadline.insert((deadline, seq), id);
        self.entries.insert(
            id,
            Entry {
                position,
                deadline,
                seq,
            },
        );
        total.fetch_add(1, Ordering::Relaxed);
    }

    fn remove(&mut self, id: u128, total: &AtomicUsize) {
        if let Some(entry) = self.entries.remove(&id) {
            self.by_deadline.remove(&(entry.deadline, entry.seq));
            total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops every entry expired at `now`.
    pub(super) fn sweep(&mut self, now: Instant, total: &AtomicUsize) {
        while let Some((&(deadline, _), &id)) = self.by_deadline.first_key_value() {
            if deadline > now {
                break;
            }
            self.remove(id, total);
        }
        // Give back the memory of a burst.
        if self.entries.is_empty() {
            if self.entries.capacity() > 0 {
                self.entries = HashMap::new();
            }
        } else if self.entries.capacity() > 1024 && self.entries.len() * 4 < self.entries.capacity()
        {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The entry id of (`channel`, `key`): the first 128 bits of a SHA-256 over a per-process
/// salt and both strings (length-prefixed, so no two pairs share an input).
pub(super) fn result_id(salt: &[u8], channel: &str, key: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update((channel.len() as u64).to_le_bytes())
        .chain_update(channel.as_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pos(offset: u64) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: "e".into(),
        }
    }

    #[test]
    fn lookups_expire_lazily_and_sweep_reclaims() {
        let total = AtomicUsize::new(0);
        let mut r = Results::default();
        let now = Instant::now();
        r.insert(1, pos(1), now + Duration::from_secs(1), &total);
        r.insert(2, pos(2), now + Duration::from_secs(5), &total);
        assert_eq!(r.get(1, now, &total), Some(pos(1)));
        assert_eq!(r.get(1, now + Duration::from_secs(1), &total), None);
        assert_eq!((r.len(), total.load(Ordering::Relaxed)), (1, 1));
        r.sweep(now + Duration::from_secs(5), &total);
        assert_eq!((r.len(), total.load(Ordering::Relaxed)), (0, 0));
        assert_eq!(r.by_deadline.len(), 0);
    }

    #[test]
    fn replacing_an_id_keeps_one_entry() {
        let total = AtomicUsize::new(0);
        let mut r = Results::default();
        let now = Instant::now();
        r.insert(7, pos(1), now + Duration::from_secs(1), &total);
        r.insert(7, pos(2), now + Duration::from_secs(9), &total);
        assert_eq!((r.len(), r.by_deadline.len()), (1, 1));
        assert_eq!(r.get(7, now + Duration::from_secs(2), &total), Some(pos(2)));
        assert_eq!(total.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_budget_evicts_the_earliest_deadline_of_the_shard() {
        let total = AtomicUsize::new(MAX_RESULTS - 2);
        let mut r = Results::default();
        let now = Instant::now();
        r.insert(1, pos(1), now + Duration::from_secs(30), &total);
        r.insert(2, pos(2), now + Duration::from_secs(10), &total);
        r.insert(3, pos(3), now + Duration::from_secs(20), &total);
        assert_eq!(total.load(Ordering::Relaxed), MAX_RESULTS);
        assert_eq!(r.get(2, now, &total), None, "earliest deadline evicted");
        assert_eq!(r.get(1, now, &total), Some(pos(1)));
        assert_eq!(r.get(3, now, &total), Some(pos(3)));
        // A shard with nothing to evict does not exceed the budget.
        let mut empty = Results::default();
        empty.insert(9, pos(9), now + Duration::from_secs(5), &total);
        assert_eq!(empty.len(), 0);
        assert_eq!(total.load(Ordering::Relaxed), MAX_RESULTS);
    }

    #[test]
    fn ids_separate_channel_and_key() {
        let salt = [1u8; 16];
        assert_ne!(result_id(&salt, "ab", "c"), result_id(&salt, "a", "bc"));
        assert_ne!(result_id(&salt, "a", "k"), result_id(&[2u8; 16], "a", "k"));
        assert_eq!(result_id(&salt, "a", "k"), result_id(&salt, "a", "k"));
    }
}
