//! Names of the Redis keys and PUB/SUB channels of a Rotor channel, and which shard a channel
//! lives on.
//!
//! Every name of channel `ch` carries the same Redis Cluster hash tag, so a channel's stream,
//! metadata, presence and (sharded) PUB/SUB channel share one slot and one Lua script can touch
//! them all. The tag is `{ch}`; a channel name containing `}` would cut the tag short, so such
//! names use `{#<hash of ch>}` and append the full name after the tag. Either way the names
//! stay unique per channel and the channel can be read back from its PUB/SUB channel name.
//!
//! Shards (a `redis_address` list) are chosen by jump consistent hashing of the channel name,
//! so adding a shard moves only about 1/n of the channels.
//!
//! With sharded PUB/SUB partitions (a Redis Cluster, `redis_sharded_pub_sub_partitions` = N),
//! the tag is the channel's partition instead: `p = jump_hash(fnv1a(ch), N)` and the names are
//! `P.stream.{p}.ch`, `P.stream.meta.{p}.ch`, `P.client.{p}.ch` (BROKERS.md §3.2), so every
//! channel of a partition lives in one slot and one SSUBSCRIBE carries many channels. Presence
//! keys keep their `{ch}` tag (their scripts touch only them). The idempotency result is
//! `P.result.{p}.<len>:ch:<key>`: the channel's byte length keeps (channel, key) pairs apart
//! (`a.b` + `c` and `a` + `b.c` would otherwise share `P.result.{p}.a.b.c`).

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Jump consistent hash (Lamping & Veach): a bucket in `0..buckets` for `key`.
pub fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let buckets = buckets.max(1) as i64;
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

/// The shard of `channel` among `shards`.
pub fn shard_of(channel: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    jump_hash(fnv1a(channel.as_bytes()), shards)
}

/// CRC16/XMODEM, as Redis Cluster uses for key slots.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in bytes {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The Redis Cluster slot of a key or shard channel name (honouring `{hash tags}`).
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|b| *b == b'}')?;
        let tag = &key[open + 1..open + 1 + close];
        (!tag.is_empty()).then_some(tag)
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

/// Key and channel names under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
    client_prefix: String,
    control: String,
    /// Sharded PUB/SUB partitions; 0 = none (names tagged `{ch}`).
    partitions: usize,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            client_prefix: format!("{prefix}.client."),
            control: format!("{prefix}.control"),
            partitions: 0,
        }
    }

    /// The names of a cluster with `partitions` sharded PUB/SUB partitions (0 = none).
    pub fn with_partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions;
        self
    }

    /// The partition of `channel`, when names are partitioned.
    pub fn partition(&self, channel: &str) -> Option<usize> {
        (self.partitions > 0).then(|| jump_hash(fnv1a(channel.as_bytes()), self.partitions))
    }

    /// `<prefix>.<kind>.{p}.ch` with partitions; `None` without.
    fn partitioned(&self, kind: &str, channel: &str) -> Option<String> {
        let p = self.partition(channel)?;
        Some(format!("{}.{kind}.{{{p}}}.{channel}", self.prefix))
    }

    /// `<prefix>.<kind>.{ch}` or `<prefix>.<kind>.{#hash}.ch`.
    fn name(&self, kind: &str, channel: &str) -> String {
        if channel.contains('}') {
            let h = fnv1a(channel.as_bytes());
            format!("{}.{kind}.{{#{h:016x}}}.{channel}", self.prefix)
        } else {
            format!("{}.{kind}.{{{channel}}}", self.prefix)
        }
    }

    /// The PUB/SUB channel of a channel's publications, joins and leaves.
    pub fn client_channel(&self, channel: &str) -> String {
        self.partitioned("client", channel)
            .unwrap_or_else(|| self.name("client", channel))
    }

    /// The PUB/SUB channel of control messages.
    pub fn control_channel(&self) -> &str {
        &self.control
    }

    /// The history stream (a Redis stream; entry IDs are `<offset>-0`).
    pub fn stream(&self, channel: &str) -> String {
        self.partitioned("stream", channel)
            .unwrap_or_else(|| self.name("stream", channel))
    }

    /// The stream metadata hash (`s` = top offset, `e` = epoch).
    pub fn meta(&self, channel: &str) -> String {
        self.partitioned("stream.meta", channel)
            .unwrap_or_else(|| self.name("meta", channel))
    }

    /// Presence: client ID → encoded info.
    pub fn presence_data(&self, channel: &str) -> String {
        self.name("presence.data", channel)
    }

    /// Presence: client ID scored by expiry (unix seconds).
    pub fn presence_expire(&self, channel: &str) -> String {
        self.name("presence.expire", channel)
    }

    /// The remembered result of the publish with idempotency key `key` in `channel` (a string
    /// `<offset>:<epoch>` with a PX expiry). In the same slot as the channel's other keys, and
    /// unique per (channel, key): after the `{ch}` tag comes `:` and the key; after a `{#hash}`
    /// tag comes `.`, the channel's length, `:`, the channel, `:` and the key.
    pub fn idempotency(&self, channel: &str, key: &str) -> String {
        if let Some(p) = self.partition(channel) {
            format!(
                "{}.result.{{{p}}}.{}:{channel}:{key}",
                self.prefix,
                channel.len()
            )
        } else if channel.contains('}') {
            let h = fnv1a(channel.as_bytes());
            format!(
                "{}.result.{{#{h:016x}}}.{}:{channel}:{key}",
                self.prefix,
                channel.len()
            )
        } else {
            format!("{}.result.{{{channel}}}:{key}", self.prefix)
        }
    }

    /// The channel whose PUB/SUB channel is `pubsub`; `None` for the control channel and
    /// foreign names.
    pub fn channel_of(&self, pubsub: &[u8]) -> Option<String> {
        let s = std::str::from_utf8(pubsub).ok()?;
        let rest = s.strip_prefix(&self.client_prefix)?.strip_prefix('{')?;
        let close = rest.find('}')?;
        if self.partitions > 0 {
            let p = &rest[..close];
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return rest[close + 1..].strip_prefix('.').map(str::to_string);
        }
        if close + 1 == rest.len() {
            Some(rest[..close].to_string())
        } else {
            rest[close + 1..].strip_prefix('.').map(str::to_string)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_a_slot_and_map_back() {
        let n = Names::new("centrifugo");
        for ch in [
            "news",
            "chat:1",
            "$private#42,43",
            "a}b",
            "}",
            "{x}",
            "a.b{c",
            "#abc",
        ] {
            let keys = [
                n.client_channel(ch),
                n.stream(ch),
                n.meta(ch),
                n.presence_data(ch),
                n.presence_expire(ch),
                n.idempotency(ch, "key"),
                n.idempotency(ch, "}{odd:.key"),
            ];
            let s = slot(keys[0].as_bytes());
            for k in &keys {
                assert_eq!(slot(k.as_bytes()), s, "{k} vs {}", keys[0]);
            }
            assert_eq!(n.channel_of(keys[0].as_bytes()).as_deref(), Some(ch));
            assert!(keys[1..].iter().all(|k| k != &keys[0]));
        }
        assert_eq!(n.client_channel("news"), "centrifugo.client.{news}");
        assert_eq!(n.channel_of(b"centrifugo.control"), None);
        assert_eq!(n.channel_of(b"other.client.{news}"), None);
        assert_ne!(n.client_channel("a}b"), n.client_channel("a}c"));
        assert_eq!(n.idempotency("news", "k1"), "centrifugo.result.{news}:k1");
        assert_ne!(n.idempotency("a}b", "c"), n.idempotency("a}b:c", ""));
        assert_ne!(n.idempotency("a", "b:c"), n.idempotency("a:b", "c"));
    }

    #[test]
    fn partitioned_names_share_the_partition_slot() {
        let n = Names::new("P").with_partitions(128);
        let classic = Names::new("P");
        let mut partitions = std::collections::HashSet::new();
        for ch in [
            "news",
            "chat:1",
            "a}b",
            "{x}",
            "a.b",
            "a",
            "$private#42,43",
            "",
        ] {
            let p = n.partition(ch).unwrap();
            assert!(p < 128);
            assert_eq!(
                p,
                shard_of(ch, 128),
                "partition = jump hash of the FNV-1a of ch"
            );
            partitions.insert(p);
            assert_eq!(n.client_channel(ch), format!("P.client.{{{p}}}.{ch}"));
            assert_eq!(n.stream(ch), format!("P.stream.{{{p}}}.{ch}"));
            assert_eq!(n.meta(ch), format!("P.stream.meta.{{{p}}}.{ch}"));
            let tag = format!("{{{p}}}");
            let s = slot(tag.as_bytes());
            for k in [
                n.client_channel(ch),
                n.stream(ch),
                n.meta(ch),
                n.idempotency(ch, "k"),
                n.idempotency(ch, "{odd}.key"),
            ] {
                assert_eq!(slot(k.as_bytes()), s, "{k}");
            }
            // Presence keeps the channel's own tag.
            assert_eq!(n.presence_data(ch), classic.presence_data(ch));
            assert_eq!(n.presence_expire(ch), classic.presence_expire(ch));
            assert_eq!(
                n.channel_of(n.client_channel(ch).as_bytes()).as_deref(),
                Some(ch)
            );
        }
        assert!(partitions.len() > 1, "channels spread over partitions");
        assert_eq!(n.channel_of(b"P.control"), None);
        assert_eq!(
            n.channel_of(b"P.client.{news}"),
            None,
            "not a partition tag"
        );
        assert_eq!(n.channel_of(b"P.client.{7}x"), None);
        assert_eq!(classic.partition("news"), None);
        assert_eq!(classic.client_channel("news"), "P.client.{news}");
        // (channel, key) pairs stay apart although channels may hold dots.
        let a = Names::new("P").with_partitions(1);
        assert_eq!(a.idempotency("news", "k1"), "P.result.{0}.4:news:k1");
        assert_ne!(a.idempotency("a.b", "c"), a.idempotency("a", "b.c"));
        assert_ne!(a.idempotency("a:b", "c"), a.idempotency("a", "b:c"));
    }

    #[test]
    fn partitions_spread_and_stay_stable() {
        let n = Names::new("P").with_partitions(16);
        let mut counts = [0usize; 16];
        for i in 0..16_000 {
            let ch = format!("chat:{i}");
            let p = n.partition(&ch).unwrap();
            assert_eq!(Some(p), n.partition(&ch));
            counts[p] += 1;
        }
        assert!(counts.iter().all(|c| *c > 600 && *c < 1400), "{counts:?}");
        // 16 partition tags land on 16 distinct slots (so on every master of a 3-master
        // cluster with the usual even split).
        let slots: std::collections::HashSet<u16> = (0..16)
            .map(|p| slot(format!("{{{p}}}").as_bytes()))
            .collect();
        assert_eq!(slots.len(), 16);
        let masters: std::collections::HashSet<u16> = slots.iter().map(|s| s / 5462).collect();
        assert_eq!(masters.len(), 3, "{slots:?}");
    }

    #[test]
    fn slots_match_redis() {
        // Known values from the Redis Cluster specification / CLUSTER KEYSLOT.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
    }

    #[test]
    fn jump_hash_is_stable_and_moves_little() {
        assert_eq!(shard_of("x", 1), 0);
        let n = 10_000;
        let mut moved = 0;
        let mut counts = [0usize; 3];
        for i in 0..n {
            let ch = format!("chat:{i}");
            let a = shard_of(&ch, 2);
            let b = shard_of(&ch, 3);
            assert!(a < 2 && b < 3);
            assert_eq!(a, shard_of(&ch, 2));
            counts[b] += 1;
            if a != b {
                moved += 1;
                assert_eq!(b, 2, "a channel only moves to the new shard");
            }
        }
        assert!(moved > n / 4 && moved < n / 2, "moved {moved}");
        assert!(counts.iter().all(|c| *c > n / 4), "{counts:?}");
    }
}
