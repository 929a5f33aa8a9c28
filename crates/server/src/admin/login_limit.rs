//! The rate limit of the admin login (`POST /admin/auth`), per client address: a token bucket
//! of [`BURST`] attempts refilled one every [`REFILL`], so a guesser gets a handful of tries
//! and then a few per minute, while a person who mistypes is not locked out for long.
//!
//! * The key is the TCP peer address (an IPv6 address by its /64 network, which one host
//!   usually owns whole). `X-Forwarded-For` is not trusted: anyone could send a new value per
//!   attempt. Behind a reverse proxy all logins share the proxy's bucket; limit there too.
//! * Only failures spend the budget: an attempt takes a token before the password is compared
//!   (so parallel guesses cannot all pass the check), and a right password gives it back. With
//!   no token left every attempt, a right password too, is answered 429 with `Retry-After`:
//!   otherwise a 200 among the 429s would tell the guesser it found the password.
//! * The map holds at most [`MAX_ADDRESSES`] addresses: when it is full, addresses whose
//!   bucket has refilled (indistinguishable from new ones) are dropped, then the one idle the
//!   longest. Memory stays bounded whatever the number of addresses trying.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failed attempts an address may make at once.
pub(crate) const BURST: u32 = 5;
/// One more attempt per this long.
pub(crate) const REFILL: Duration = Duration::from_secs(12);
/// Addresses remembered at most.
pub(crate) const MAX_ADDRESSES: usize = 10_000;

/// What the map is keyed by: an IPv4 address, or the first 64 bits of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6(u64),
    /// No peer address known (a router mounted without the accept loop): one shared bucket.
    Unknown,
}

impl Key {
    fn of(peer: Option<SocketAddr>) -> Key {
        match peer.map(|p| p.ip()) {
            None => Key::Unknown,
            Some(IpAddr::V4(a)) => Key::V4(a.into()),
            Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => Key::V4(v4.into()),
                None => Key::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed / REFILL.as_secs_f64()).min(f64::from(BURST));
        self.at = now.max(self.at);
    }

    fn is_full(&self, now: Instant) -> bool {
        let mut b = *self;
        b.refill(now);
        b.tokens >= f64::from(BURST)
    }
}

/// A token taken for one attempt; [`LoginLimit::refund`] gives it back after a success.
#[derive(Debug)]
pub(crate) struct Attempt(Key);

/// The per-address login buckets; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct LoginLimit {
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl LoginLimit {
    /// Takes a token for an attempt from `peer`, or says how long until one is available.
    pub(crate) fn try_attempt(&self, peer: Option<SocketAddr>) -> Result<Attempt, Duration> {
        self.try_attempt_at(peer, Instant::now())
    }

    fn try_attempt_at(&self, peer: Option<SocketAddr>, now: Instant) -> Result<Attempt, Duration> {
        let key = Key::of(peer);
        let mut map = self.buckets.lock();
        if !map.contains_key(&key) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, b| !b.is_full(now));
            if map.len() >= MAX_ADDRESSES {
                let oldest = map.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: f64::from(BURST),
            at: now,
        });
        b.refill(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(Attempt(key))
        } else {
            Err(REFILL.mul_f64(1.0 - b.tokens))
        }
    }

    /// Gives the token of a successful attempt back.
    pub(crate) fn refund(&self, attempt: Attempt) {
        if let Some(b) = self.buckets.lock().get_mut(&attempt.0) {
            b.tokens = (b.tokens + 1.0).min(f64::from(BURST));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().len()
    }
}

/// Whole seconds for `Retry-After`, rounded up (at least 1).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn burst_then_one_per_refill() {
        let l = LoginLimit::default();
        let t0 = Instant::now();
        let a = addr("10.0.0.1:1000");
        for _ in 0..BURST {
            assert!(l.try_attempt_at(a, t0).is_ok());
        }
        let wait = l.try_attempt_at(a, t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= REFILL, "{wait:?}");
        assert_eq!(retry_after_secs(wait), REFILL.as_secs());
        // Another port of the same address shares the bucket; another address does not.
        assert!(l.try_attempt_at(addr("10.0.0.1:2000"), t0).is_err());
        assert!(l.try_attempt_at(addr("10.0.0.2:1000"), t0).is_ok());
        // One refill period later: exactly one more attempt.
        let t1 = t0 + REFILL;
        assert!(l.try_attempt_at(a, t1).is_ok());
        assert!(l.try_attempt_at(a, t1).is_err());
    }

    #[test]
    fn a_success_is_refunded() {
        let l = LoginLimit::default();
        let t0 = Instant::now();
        let a = addr("10.0.0.1:1000");
        for _ in 0..BURST * 3 {
            let attempt = l.try_attempt_at(a, t0).unwrap();
            l.refund(attempt);
        }
        assert!(l.try_attempt_at(a, t0).is_ok());
    }

    #[test]
    fn ipv6_by_network_and_mapped_v4_as_v4() {
        let l = LoginLimit::default();
        let t0 = Instant::now();
        for i in 0..BURST {
            let a = addr(&format!("[2001:db8:1:2::{i}]:443"));
            assert!(l.try_attempt_at(a, t0).is_ok());
        }
        assert!(l
            .try_attempt_at(addr("[2001:db8:1:2:ffff::1]:1"), t0)
            .is_err());
        assert!(l.try_attempt_at(addr("[2001:db8:1:3::1]:1"), t0).is_ok());
        for _ in 0..BURST {
            assert!(l.try_attempt_at(addr("192.0.2.7:1"), t0).is_ok());
        }
        assert!(l.try_attempt_at(addr("[::ffff:192.0.2.7]:1"), t0).is_err());
    }

    #[test]
    fn the_map_stays_bounded() {
        let l = LoginLimit::default();
        let t0 = Instant::now();
        let victim = addr("10.255.255.255:1");
        for _ in 0..BURST {
            let _ = l.try_attempt_at(victim, t0);
        }
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            let _ = l.try_attempt_at(
                Some(SocketAddr::from((ip, 1))),
                t0 + Duration::from_millis(1),
            );
            assert!(l.len() <= MAX_ADDRESSES);
        }
        assert_eq!(l.len(), MAX_ADDRESSES);
    }
}
