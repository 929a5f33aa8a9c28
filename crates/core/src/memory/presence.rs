//! [`MemoryPresence`]: the in-process [`PresenceManager`]. Per channel, a map from client ID to
//! the client's info and the instant its entry expires.
//!
//! Invariants:
//! * An entry is live while `now < expire_at`; expired entries are never returned or counted,
//!   and are dropped whenever their channel is touched or on [`MemoryPresence::cleanup_expired`].
//! * A channel with no entries left is removed, so the map only holds channels with presence.
//! * Adding an existing client ID replaces its info and pushes its expiry forward.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rotor_protocol::ClientInfo;

use super::{shard_index, system_clock, Clock, NUM_SHARDS};
use crate::engine::{EngineError, PresenceManager, PresenceStats};

/// One client's presence in one channel.
struct Entry {
    info: ClientInfo,
    expire_at: Instant,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        now < self.expire_at
    }
}

/// Client ID → entry, for one channel.
type Members = HashMap<String, Entry>;

/// In-process [`PresenceManager`]: sharded per-channel member maps with expiring entries.
///
/// Call [`MemoryPresence::cleanup_expired`] periodically to reclaim entries of channels nobody
/// reads.
pub struct MemoryPresence {
    shards: Box<[Mutex<HashMap<String, Members>>]>,
    clock: Clock,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPresence {
    /// Presence on the system clock.
    pub fn new() -> Self {
        Self::with_clock(system_clock())
    }

    /// Presence on a custom clock (for tests).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            shards: (0..NUM_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            clock,
        }
    }

    fn shard(&self, channel: &str) -> &Mutex<HashMap<String, Members>> {
        &self.shards[shard_index(channel)]
    }

    /// Runs `f` on the live members of `channel` after dropping its expired entries (and the
    /// channel itself when nothing is left). `f` sees an empty map for an unknown channel.
    fn with_live<T>(&self, channel: &str, f: impl FnOnce(&Members) -> T) -> T {
        let now = (self.clock)();
        let mut channels = self.shard(channel).lock();
        let Some(members) = channels.get_mut(channel) else {
            return f(&Members::new());
        };
        members.retain(|_, entry| entry.is_live(now));
        let result = f(members);
        if members.is_empty() {
            channels.remove(channel);
        }
        result
    }

    /// Drops expired entries, and channels left empty, as of `now`. Locks one shard at a time.
    pub fn cleanup_expired(&self, now: Instant) {
        for shard in self.shards.iter() {
            shard.lock().retain(|_, members| {
                members.retain(|_, entry| entry.is_live(now));
                !members.is_empty()
            });
        }
    }

    /// Number of channels currently holding entries (live or awaiting cleanup).
    pub fn num_channels(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }
}

impl std::fmt::Debug for MemoryPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPresence")
            .field("shards", &self.shards.len())
            .finish()
    }
}

#[async_trait]
impl PresenceManager for MemoryPresence {
    /// Adds or refreshes `info` under its client ID. An entry added with `expire_secs == 0` is
    /// already expired.
    async fn add_presence(
        &self,
        channel: &str,
        info: ClientInfo,
        expire_secs: u64,
    ) -> Result<(), EngineError> {
        let now = (self.clock)();
        let expire_at = now
            .checked_add(Duration::from_secs(expire_secs))
            // Unrepresentably far away: as good as never (about 30 years on).
            .unwrap_or_else(|| now + Duration::from_secs(1 << 30));
        let id = info.client.clone();
        let entry = Entry { info, expire_at };
        let mut channels = self.shard(channel).lock();
        if let Some(members) = channels.get_mut(channel) {
            members.insert(id, entry);
        } else {
            channels.insert(channel.to_owned(), HashMap::from([(id, entry)]));
        }
        Ok(())
    }

    /// Removes the client's entry; drops the channel when it was the last one.
    async fn remove_presence(&self, channel: &str, client_id: &str) -> Result<(), EngineError> {
        let mut channels = self.shard(channel).lock();
        if let Some(members) = channels.get_mut(channel) {
            members.remove(client_id);
            if members.is_empty() {
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, EngineError> {
        Ok(self.with_live(channel, |members| {
            members.values().map(|entry| entry.info.clone()).collect()
        }))
    }

    /// Live clients, and distinct user IDs among them (anonymous `""` counts as one user).
    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, EngineError> {
        Ok(self.with_live(channel, |members| {
            let users: HashSet<&str> = members
                .values()
                .map(|entry| entry.info.user.as_str())
                .collect();
            PresenceStats {
                num_clients: saturating_u32(members.len()),
                num_users: saturating_u32(users.len()),
            }
        }))
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::testing::ManualClock;
    use bytes::Bytes;
    use std::sync::Arc;

    fn client(user: &str, client: &str) -> ClientInfo {
        ClientInfo {
            user: user.into(),
            client: client.into(),
            ..Default::default()
        }
    }

    fn setup() -> (MemoryPresence, Arc<ManualClock>) {
        let clock = ManualClock::new();
        (MemoryPresence::with_clock(clock.clock()), clock)
    }

    async fn clients(presence: &MemoryPresence, channel: &str) -> Vec<String> {
        let mut ids: Vec<String> = presence
            .presence(channel)
            .await
            .unwrap()
            .into_iter()
            .map(|info| info.client)
            .collect();
        ids.sort();
        ids
    }

    async fn stats(presence: &MemoryPresence, channel: &str) -> (u32, u32) {
        let s = presence.presence_stats(channel).await.unwrap();
        (s.num_clients, s.num_users)
    }

    #[tokio::test]
    async fn add_and_remove_with_repeated_users() {
        let (presence, _clock) = setup();
        presence
            .add_presence("c", client("alice", "a1"), 60)
            .await
            .unwrap();
        presence
            .add_presence("c", client("alice", "a2"), 60)
            .await
            .unwrap();
        presence
            .add_presence("c", client("bob", "b1"), 60)
            .await
            .unwrap();
        presence
            .add_presence("c", client("", "x1"), 60)
            .await
            .unwrap();
        presence
            .add_presence("c", client("", "x2"), 60)
            .await
            .unwrap();
        presence
            .add_presence("other", client("carol", "c1"), 60)
            .await
            .unwrap();

        assert_eq!(
            clients(&presence, "c").await,
            ["a1", "a2", "b1", "x1", "x2"]
        );
        assert_eq!(stats(&presence, "c").await, (5, 3));
        assert_eq!(stats(&presence, "other").await, (1, 1));

        presence.remove_presence("c", "a1").await.unwrap();
        assert_eq!(stats(&presence, "c").await, (4, 3));
        presence.remove_presence("c", "a2").await.unwrap();
        assert_eq!(stats(&presence, "c").await, (3, 2));
        presence.remove_presence("c", "nobody").await.unwrap();
        presence.remove_presence("nowhere", "a1").await.unwrap();
        assert_eq!(stats(&presence, "c").await, (3, 2));

        for id in ["b1", "x1", "x2"] {
            presence.remove_presence("c", id).await.unwrap();
        }
        assert!(clients(&presence, "c").await.is_empty());
        assert_eq!(stats(&presence, "c").await, (0, 0));
        assert_eq!(
            presence.num_channels(),
            1,
            "c was dropped once empty; only `other` remains"
        );
    }

    #[tokio::test]
    async fn re_adding_replaces_info_and_refreshes_expiry() {
        let (presence, clock) = setup();
        presence
            .add_presence("c", client("alice", "a1"), 10)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(8));
        let mut refreshed = client("alice", "a1");
        refreshed.conn_info = Some(Bytes::from_static(b"{\"n\":1}"));
        presence
            .add_presence("c", refreshed.clone(), 10)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(8));
        assert_eq!(presence.presence("c").await.unwrap(), vec![refreshed]);
        assert_eq!(stats(&presence, "c").await, (1, 1));
        clock.advance(Duration::from_secs(2));
        assert!(presence.presence("c").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn expired_entries_are_hidden_and_dropped() {
        let (presence, clock) = setup();
        presence
            .add_presence("c", client("alice", "a1"), 10)
            .await
            .unwrap();
        presence
            .add_presence("c", client("alice", "a2"), 30)
            .await
            .unwrap();
        presence
            .add_presence("c", client("bob", "b1"), 10)
            .await
            .unwrap();
        presence
            .add_presence("zero", client("z", "z1"), 0)
            .await
            .unwrap();
        assert!(presence.presence("zero").await.unwrap().is_empty());

        clock.advance(Duration::from_secs(9));
        assert_eq!(stats(&presence, "c").await, (3, 2));
        clock.advance(Duration::from_secs(1));
        assert_eq!(clients(&presence, "c").await, ["a2"]);
        assert_eq!(stats(&presence, "c").await, (1, 1));

        clock.advance(Duration::from_secs(20));
        assert_eq!(stats(&presence, "c").await, (0, 0));
        assert_eq!(presence.num_channels(), 0);
    }

    #[tokio::test]
    async fn cleanup_reclaims_unread_channels() {
        let (presence, clock) = setup();
        for i in 0..100 {
            presence
                .add_presence(&format!("ch{i}"), client("u", &format!("c{i}")), 10)
                .await
                .unwrap();
        }
        presence
            .add_presence("long", client("u", "l1"), 100)
            .await
            .unwrap();
        assert_eq!(presence.num_channels(), 101);
        clock.advance(Duration::from_secs(5));
        presence.cleanup_expired(clock.now());
        assert_eq!(presence.num_channels(), 101);
        clock.advance(Duration::from_secs(5));
        presence.cleanup_expired(clock.now());
        assert_eq!(presence.num_channels(), 1);
        assert_eq!(clients(&presence, "long").await, ["l1"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_adds_and_removes() {
        let presence = Arc::new(MemoryPresence::new());
        let mut tasks = Vec::new();
        for t in 0..4 {
            let presence = presence.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..200 {
                    let id = format!("{t}-{i}");
                    presence
                        .add_presence("c", client(&format!("u{}", i % 10), &id), 60)
                        .await
                        .unwrap();
                    if i % 2 == 1 {
                        presence.remove_presence("c", &id).await.unwrap();
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Even i survive: 100 per task, users u0, u2, u4, u6, u8.
        assert_eq!(stats(&presence, "c").await, (400, 5));
    }
}
