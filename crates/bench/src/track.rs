//! Loss, duplicate and reorder accounting.
//!
//! Every publication carries `[publisher, channel, seq, ts]`; `seq` counts 1, 2, 3, ... per
//! (publisher, channel) stream. A publisher sends its requests one after another, so a correct
//! server delivers one stream in order. A subscriber keeps a [`Track`] per stream it can receive:
//! a bitset of the sequence numbers seen (compacted from the front while everything below is
//! seen, so memory stays small when nothing is lost).
//!
//! lost = expected − distinct received (expected from the publishers' counts, see [`Plan`]);
//! dup = a sequence number seen again; reorder = a new sequence number below the highest one
//! already seen in that stream.

/// What one delivery was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// First time, in order.
    Fresh,
    /// First time, but a higher sequence number of the stream came earlier.
    Reordered,
    /// Seen before.
    Duplicate,
}

/// Sequence numbers received on one stream.
#[derive(Clone, Debug, Default)]
pub struct Track {
    /// Bit `k` of `words[w]` is sequence number `(base_word + w) * 64 + k + 1`.
    words: Vec<u64>,
    /// Words dropped from the front because they were full.
    base_word: u64,
    /// Highest sequence number seen.
    highest: u64,
}

/// Compact only when this many leading words could go (amortises the shift).
const COMPACT_AT: usize = 16;

impl Track {
    /// Records sequence number `seq` (>= 1; 0 is treated as a duplicate of nothing and ignored
    /// by callers).
    pub fn record(&mut self, seq: u64) -> Seen {
        let bit = seq.saturating_sub(1);
        let w = bit >> 6;
        if w < self.base_word {
            return Seen::Duplicate;
        }
        let idx = (w - self.base_word) as usize;
        if idx >= self.words.len() {
            self.words.resize(idx + 1, 0);
        }
        let mask = 1u64 << (bit & 63);
        if self.words[idx] & mask != 0 {
            return Seen::Duplicate;
        }
        self.words[idx] |= mask;
        let out = if seq < self.highest {
            Seen::Reordered
        } else {
            self.highest = seq;
            Seen::Fresh
        };
        if self.words[idx] == u64::MAX && self.words[0] == u64::MAX {
            self.compact();
        }
        out
    }

    fn compact(&mut self) {
        let full = self.words.iter().take_while(|w| **w == u64::MAX).count();
        // Keep at least one word so the vector does not reallocate from nothing each time.
        if full >= COMPACT_AT || (full > 0 && full == self.words.len()) {
            let drop = if full == self.words.len() {
                full - 1
            } else {
                full
            };
            if drop > 0 {
                self.words.drain(..drop);
                self.base_word += drop as u64;
            }
        }
    }

    /// Distinct sequence numbers received.
    #[cfg(test)]
    pub fn unique(&self) -> u64 {
        self.base_word * 64
            + self
                .words
                .iter()
                .map(|w| w.count_ones() as u64)
                .sum::<u64>()
    }

    #[cfg(test)]
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Words held (for memory checks in tests).
    #[cfg(test)]
    pub fn words_held(&self) -> usize {
        self.words.len()
    }
}

/// Per-connection tallies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Deliveries, duplicates included.
    pub received: u64,
    pub unique: u64,
    pub dup: u64,
    pub reorder: u64,
    /// Deliveries for a stream this connection is not subscribed to (misrouted).
    pub unexpected: u64,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.received += o.received;
        self.unique += o.unique;
        self.dup += o.dup;
        self.reorder += o.reorder;
        self.unexpected += o.unexpected;
    }
}

/// The streams one connection can receive: `publishers` × its channels.
#[derive(Clone, Debug)]
pub struct ConnTracks {
    publishers: usize,
    /// Global indices of this connection's channels.
    channels: Vec<u32>,
    tracks: Vec<Track>,
    pub tally: Tally,
}

impl ConnTracks {
    pub fn new(publishers: usize, channels: Vec<u32>) -> Self {
        let tracks = vec![Track::default(); publishers * channels.len()];
        Self {
            publishers,
            channels,
            tracks,
            tally: Tally::default(),
        }
    }

    /// Records one delivery; returns whether it was new.
    #[inline]
    pub fn record(&mut self, publisher: u64, channel: u64, seq: u64) -> bool {
        self.tally.received += 1;
        let slot = self.channels.iter().position(|c| *c as u64 == channel);
        let (Some(slot), true) = (slot, (publisher as usize) < self.publishers && seq > 0) else {
            self.tally.unexpected += 1;
            return false;
        };
        let t = &mut self.tracks[publisher as usize * self.channels.len() + slot];
        match t.record(seq) {
            Seen::Fresh => {
                self.tally.unique += 1;
                true
            }
            Seen::Reordered => {
                self.tally.unique += 1;
                self.tally.reorder += 1;
                true
            }
            Seen::Duplicate => {
                self.tally.dup += 1;
                false
            }
        }
    }

    /// Publications this connection should have received, given the publishers' counts.
    #[cfg(test)]
    pub fn expected(&self, counts: &Counts) -> u64 {
        self.channels
            .iter()
            .map(|c| counts.to_channel(*c as usize))
            .sum()
    }
}

/// Which channel each publication goes to: publisher `p`'s `j`-th publication (from 0) goes to
/// channel `(j·K + p) mod C`, so K publishers sweep all C channels round-robin together.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub publishers: usize,
    pub channels: usize,
}

impl Plan {
    #[inline]
    pub fn channel(&self, publisher: usize, j: u64) -> usize {
        if self.channels <= 1 {
            return 0;
        }
        let c = self.channels as u64;
        (((j % c) * self.publishers as u64 + publisher as u64) % c) as usize
    }

    /// Per-(publisher, channel) counts of the publications that went out: `attempts[p]`
    /// publications were attempted by publisher `p`, of which those listed in `failed`
    /// (publisher, j) did not go through.
    pub fn counts(&self, attempts: &[u64], failed: &[(usize, u64)]) -> Counts {
        let c = self.channels.max(1);
        let mut per = vec![vec![0u64; c]; self.publishers];
        for (p, n) in attempts.iter().enumerate().take(self.publishers) {
            if c == 1 {
                per[p][0] = *n;
                continue;
            }
            let row = &mut per[p];
            for j in 0..*n {
                row[self.channel(p, j)] += 1;
            }
        }
        for (p, j) in failed {
            if *p < self.publishers {
                let ch = self.channel(*p, *j);
                per[*p][ch] = per[*p][ch].saturating_sub(1);
            }
        }
        let totals = (0..c)
            .map(|ch| per.iter().map(|row| row[ch]).sum())
            .collect();
        Counts { totals }
    }
}

/// Publications that went to each channel (all publishers together).
#[derive(Clone, Debug, Default)]
pub struct Counts {
    totals: Vec<u64>,
}

impl Counts {
    pub fn to_channel(&self, c: usize) -> u64 {
        self.totals.get(c).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_all_fresh_and_compacts() {
        let mut t = Track::default();
        for s in 1..=100_000u64 {
            assert_eq!(t.record(s), Seen::Fresh);
        }
        assert_eq!(t.unique(), 100_000);
        assert_eq!(t.highest(), 100_000);
        assert!(t.words_held() <= COMPACT_AT + 2, "{}", t.words_held());
        // Anything again is a duplicate, compacted away or not.
        assert_eq!(t.record(1), Seen::Duplicate);
        assert_eq!(t.record(99_999), Seen::Duplicate);
        assert_eq!(t.unique(), 100_000);
    }

    #[test]
    fn gaps_duplicates_and_reordering() {
        let mut t = Track::default();
        assert_eq!(t.record(1), Seen::Fresh);
        assert_eq!(t.record(2), Seen::Fresh);
        assert_eq!(t.record(5), Seen::Fresh); // 3, 4 missing so far
        assert_eq!(t.record(2), Seen::Duplicate);
        assert_eq!(t.record(3), Seen::Reordered);
        assert_eq!(t.record(3), Seen::Duplicate);
        assert_eq!(t.record(200), Seen::Fresh);
        assert_eq!(t.record(64), Seen::Reordered);
        assert_eq!(t.record(65), Seen::Reordered);
        assert_eq!(t.unique(), 7);
        // A gap blocks compaction: 4 never arrives, so the front word stays.
        for s in 6..=5000 {
            t.record(s);
        }
        assert_eq!(t.unique(), 4999 - 1 + 1); // 1..=5000 without 4
        assert_eq!(t.record(4), Seen::Reordered);
        assert_eq!(t.unique(), 5000);
    }

    #[test]
    fn connection_tally_counts_loss_dup_reorder_and_misrouting() {
        // 2 publishers, connection on channels 7 and 12.
        let mut c = ConnTracks::new(2, vec![7, 12]);
        assert!(c.record(0, 7, 1));
        assert!(c.record(0, 7, 2));
        assert!(c.record(1, 7, 1));
        assert!(c.record(0, 12, 1));
        assert!(!c.record(0, 7, 2)); // duplicate
        assert!(c.record(1, 12, 2));
        assert!(c.record(1, 12, 1)); // reordered but new
        assert!(!c.record(0, 8, 1)); // not our channel
        assert!(!c.record(5, 7, 1)); // no such publisher
        assert!(!c.record(0, 7, 0)); // seq 0 is never sent
        let t = &c.tally;
        assert_eq!(t.received, 10);
        assert_eq!(t.unique, 6);
        assert_eq!(t.dup, 1);
        assert_eq!(t.reorder, 1);
        assert_eq!(t.unexpected, 3);

        // Publisher 0 sent 3 to channel 7 (one lost here) and 1 to 12; publisher 1 sent 1 to 7
        // and 2 to 12.
        let mut totals = vec![0u64; 13];
        totals[7] = 4;
        totals[12] = 3;
        let counts = Counts { totals };
        assert_eq!(c.expected(&counts), 7);
        assert_eq!(c.expected(&counts) - c.tally.unique, 1); // lost
    }

    #[test]
    fn plan_sweeps_all_channels_and_counts_match_a_replay() {
        for (k, ch) in [
            (1usize, 1usize),
            (4, 1),
            (1, 7),
            (4, 10),
            (3, 9),
            (4, 21_000),
        ] {
            let plan = Plan {
                publishers: k,
                channels: ch,
            };
            let attempts: Vec<u64> = (0..k as u64).map(|p| 3 * ch as u64 + 5 + p * 7).collect();
            let failed = vec![(0usize, 2u64), (k - 1, 4)];
            let mut replay = vec![0u64; ch];
            for (p, n) in attempts.iter().enumerate() {
                for j in 0..*n {
                    if !failed.contains(&(p, j)) {
                        let c = plan.channel(p, j);
                        assert!(c < ch);
                        replay[c] += 1;
                    }
                }
            }
            let counts = plan.counts(&attempts, &failed);
            for (c, want) in replay.iter().enumerate() {
                assert_eq!(counts.to_channel(c), *want, "k={k} ch={ch} c={c}");
            }
            // Consecutive publications of all publishers together cover every channel.
            if ch > 1 {
                let mut hit = vec![false; ch];
                for j in 0..(ch as u64) {
                    for p in 0..k {
                        hit[plan.channel(p, j)] = true;
                    }
                }
                assert!(hit.iter().all(|h| *h), "k={k} ch={ch}");
            }
        }
    }
}
