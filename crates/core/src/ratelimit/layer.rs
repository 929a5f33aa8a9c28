//! One compiled layer: every distinct limiter ("slot": a command's own buckets, `default`
//! copied for a command without an entry, one per namespace or method override, `total`)
//! numbered once at start, so a check is an index into a vector of bucket sets. And the state
//! of one key (a connection or a user): the bucket sets of the slots it has used, created
//! full on first use.

use super::bucket::{Bucket, BucketSet};
use super::config::{Command, LayerConfig};

/// A limiter of a layer: its name (metrics, Redis keys) and buckets (never empty).
#[derive(Debug)]
pub(crate) struct Slot {
    pub name: String,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug)]
pub(crate) struct Layer {
    pub dry_run: bool,
    pub slots: Vec<Slot>,
    base: [Option<u16>; Command::COUNT],
    namespaces: [Vec<(Box<str>, Option<u16>)>; Command::COUNT],
    methods: Vec<(Box<str>, Option<u16>)>,
    pub total: Option<u16>,
    /// The longest interval of any bucket: a key idle this long has every bucket full again.
    pub longest: u64,
}

/// The result of one layer's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Passed (tokens taken).
    Pass,
    /// A bucket had no token: the command's own, or `total`.
    Hit,
}

impl Layer {
    pub fn compile(cfg: &LayerConfig) -> Self {
        let mut slots: Vec<Slot> = Vec::new();
        let mut add = |name: String, buckets: &[Bucket]| -> Option<u16> {
            if buckets.is_empty() {
                return None;
            }
            slots.push(Slot {
                name,
                buckets: buckets.to_vec(),
            });
            Some((slots.len() - 1) as u16)
        };
        let default = cfg.default.as_deref().unwrap_or(&[]);
        let mut base = [None; Command::COUNT];
        let mut namespaces: [Vec<(Box<str>, Option<u16>)>; Command::COUNT] = Default::default();
        let mut methods = Vec::new();
        for cmd in Command::ALL {
            let rule = cfg.commands.iter().find(|(c, _)| *c == cmd).map(|(_, r)| r);
            let own = rule.and_then(|r| r.buckets.as_deref()).unwrap_or(default);
            base[cmd.index()] = add(cmd.name().to_string(), own);
            let Some(rule) = rule else { continue };
            if cmd.is_channel() {
                for (ns, b) in &rule.namespace_overrides {
                    let b = b.as_deref().unwrap_or(default);
                    let slot = add(format!("{}@{ns}", cmd.name()), b);
                    namespaces[cmd.index()].push((ns.as_str().into(), slot));
                }
            }
            if cmd == Command::Rpc {
                for (m, b) in &rule.method_overrides {
                    let b = b.as_deref().unwrap_or(default);
                    methods.push((m.as_str().into(), add(format!("rpc#{m}"), b)));
                }
            }
        }
        let total = add("total".into(), cfg.total.as_deref().unwrap_or(&[]));
        let longest = slots
            .iter()
            .flat_map(|s| &s.buckets)
            .map(|b| b.interval.as_nanos().min(u128::from(u64::MAX)) as u64)
            .max()
            .unwrap_or(0);
        Self {
            dry_run: cfg.dry_run,
            slots,
            base,
            namespaces,
            methods,
            total,
            longest,
        }
    }

    /// Whether a namespace override exists for `cmd` (the caller then resolves the name).
    pub fn has_namespace_overrides(&self, cmd: Command) -> bool {
        !self.namespaces[cmd.index()].is_empty()
    }

    /// The slot limiting `cmd` (`None`: no own limit; `total` may still apply).
    pub fn resolve(&self, cmd: Command, namespace: Option<&str>, method: &str) -> Option<u16> {
        if let Some(ns) = namespace {
            let list = &self.namespaces[cmd.index()];
            if let Some((_, slot)) = list.iter().find(|(n, _)| &**n == ns) {
                return *slot;
            }
        }
        if cmd == Command::Rpc {
            if let Some((_, slot)) = self.methods.iter().find(|(m, _)| &**m == method) {
                return *slot;
            }
        }
        self.base[cmd.index()]
    }

    /// Whether anything limits `cmd` in this layer.
    pub fn limits(&self, cmd: Command) -> bool {
        self.total.is_some()
            || self.base[cmd.index()].is_some()
            || self.has_namespace_overrides(cmd)
            || (cmd == Command::Rpc && !self.methods.is_empty())
    }

    /// Checks `slot` then `total` for one key at `now`. An enforced command takes tokens only
    /// when both pass (a refusal takes nothing); an accounted-only one takes what is there.
    pub fn check(&self, st: &mut KeyState, cmd: Command, slot: Option<u16>, now: u64) -> Verdict {
        st.last = st.last.max(now);
        let slots = [slot, self.total];
        if cmd.is_accounted_only() {
            let mut verdict = Verdict::Pass;
            for (i, s) in slots.into_iter().enumerate() {
                let Some(s) = s else { continue };
                let b = &self.slots[s as usize].buckets;
                if !st.set(s, b, now).take_available(b, now) && i == 0 {
                    verdict = Verdict::Hit;
                }
            }
            return verdict;
        }
        for s in slots.into_iter().flatten() {
            let b = &self.slots[s as usize].buckets;
            if !st.set(s, b, now).allows(b, now) {
                return Verdict::Hit;
            }
        }
        for s in slots.into_iter().flatten() {
            let b = &self.slots[s as usize].buckets;
            st.set(s, b, now).take(b);
        }
        Verdict::Pass
    }
}

/// The bucket sets of one connection or user, by slot.
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    sets: Vec<Option<BucketSet>>,
    /// The last check (monotonic ns).
    pub last: u64,
}

impl KeyState {
    fn set(&mut self, slot: u16, buckets: &[Bucket], now: u64) -> &mut BucketSet {
        let i = slot as usize;
        if self.sets.len() <= i {
            self.sets.resize_with(i + 1, || None);
        }
        self.sets[i].get_or_insert_with(|| BucketSet::new(buckets, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::config::CommandRule;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn per_sec(rate: u32) -> Option<Vec<Bucket>> {
        Some(vec![Bucket {
            interval: Duration::from_secs(1),
            rate,
        }])
    }

    fn layer() -> Layer {
        Layer::compile(&LayerConfig {
            dry_run: false,
            commands: vec![
                (
                    Command::Publish,
                    CommandRule {
                        buckets: per_sec(2),
                        namespace_overrides: vec![("chat".into(), per_sec(5))],
                        ..Default::default()
                    },
                ),
                (
                    Command::Rpc,
                    CommandRule {
                        buckets: per_sec(10),
                        method_overrides: vec![("slow".into(), per_sec(1)), ("dflt".into(), None)],
                        ..Default::default()
                    },
                ),
                (
                    Command::Unsubscribe,
                    CommandRule {
                        buckets: per_sec(1),
                        ..Default::default()
                    },
                ),
            ],
            default: per_sec(3),
            total: None,
        })
    }

    fn run(l: &Layer, st: &mut KeyState, cmd: Command, ns: Option<&str>, m: &str, n: u32) -> u32 {
        let slot = l.resolve(cmd, ns, m);
        (0..n)
            .filter(|_| l.check(st, cmd, slot, 0) == Verdict::Pass)
            .count() as u32
    }

    #[test]
    fn commands_namespaces_methods_and_default_have_their_own_limiters() {
        let l = layer();
        let mut st = KeyState::default();
        assert_eq!(run(&l, &mut st, Command::Publish, Some(""), "", 10), 2);
        // The namespace override replaces the base (5, not 2) and has its own tokens.
        assert_eq!(run(&l, &mut st, Command::Publish, Some("chat"), "", 10), 5);
        assert_eq!(run(&l, &mut st, Command::Rpc, None, "x", 20), 10);
        assert_eq!(run(&l, &mut st, Command::Rpc, None, "slow", 5), 1);
        // An override without buckets uses `default`.
        assert_eq!(run(&l, &mut st, Command::Rpc, None, "dflt", 5), 3);
        // Commands without an entry: `default`, one limiter each.
        assert_eq!(run(&l, &mut st, Command::History, Some(""), "", 5), 3);
        assert_eq!(run(&l, &mut st, Command::Presence, Some(""), "", 5), 3);
        // Unsubscribe: the layer reports hits (the caller never refuses it).
        assert_eq!(run(&l, &mut st, Command::Unsubscribe, Some(""), "", 5), 1);
        let slot = l.resolve(Command::Unsubscribe, None, "");
        assert_eq!(
            l.check(&mut st, Command::Unsubscribe, slot, 0),
            Verdict::Hit
        );
    }

    #[test]
    fn total_is_checked_after_and_a_refusal_takes_nothing() {
        let l = Layer::compile(&LayerConfig {
            commands: vec![(
                Command::Publish,
                CommandRule {
                    buckets: per_sec(1),
                    ..Default::default()
                },
            )],
            total: per_sec(3),
            ..Default::default()
        });
        let mut st = KeyState::default();
        let p = l.resolve(Command::Publish, None, "");
        let h = l.resolve(Command::History, None, "");
        assert_eq!(h, None, "no default: history is limited by total only");
        assert_eq!(l.check(&mut st, Command::Publish, p, 0), Verdict::Pass);
        // Refused publishes take nothing from total.
        for _ in 0..10 {
            assert_eq!(l.check(&mut st, Command::Publish, p, 0), Verdict::Hit);
        }
        assert_eq!(l.check(&mut st, Command::History, h, 0), Verdict::Pass);
        assert_eq!(l.check(&mut st, Command::History, h, 0), Verdict::Pass);
        assert_eq!(l.check(&mut st, Command::History, h, 0), Verdict::Hit);
        // A second later: total is full again (3), publish has 1.
        assert_eq!(l.check(&mut st, Command::Publish, p, S), Verdict::Pass);
        assert_eq!(l.check(&mut st, Command::Publish, p, S), Verdict::Hit);
    }
}
