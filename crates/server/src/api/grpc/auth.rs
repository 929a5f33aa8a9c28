//! The API key check of the gRPC API (GRPC-API.md §1.4, §2.5), as a tonic interceptor on both
//! services and on reflection.
//!
//! * Key set: the first `authorization` metadata value must equal `apikey <key>` byte for
//!   byte (compared in constant time); anything else — missing, another scheme, `Apikey`,
//!   extra spaces — is UNAUTHENTICATED with message `unauthenticated`.
//! * Key empty (Rotor's decision; Centrifugo accepts every call then): calls are accepted
//!   without a key only from loopback and private-network peers ([`is_private`]); other
//!   peers get UNAUTHENTICATED. `grpc_api_insecure` / `grpc_api.insecure` accepts every peer.
//!   A 2.x deployment without a key on a private network therefore keeps working, while an
//!   API exposed to the internet by mistake is not open to it.

use crate::api::http::key_matches;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use tonic::{Request, Status};

/// Who may call.
#[derive(Clone)]
pub(crate) struct Auth {
    /// `apikey <key>`; `None` for an empty key.
    expected: Option<Arc<[u8]>>,
    /// Empty key: every peer (else only private ones).
    insecure: bool,
}

impl Auth {
    pub(crate) fn new(key: &str, insecure: bool) -> Self {
        let expected = (!key.is_empty()).then(|| Arc::from(format!("apikey {key}").into_bytes()));
        Self { expected, insecure }
    }

    /// Whether a call with these credentials from `peer` may run.
    pub(crate) fn allows(&self, authorization: Option<&[u8]>, peer: Option<IpAddr>) -> bool {
        match &self.expected {
            Some(want) => authorization.is_some_and(|got| key_matches(got, want)),
            None => self.insecure || peer.is_some_and(is_private),
        }
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let authorization = req.metadata().get("authorization").map(|v| v.as_bytes());
        let peer = req.remote_addr().map(|a| a.ip());
        if self.allows(authorization, peer) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("unauthenticated"))
        }
    }
}

/// Loopback and private-network addresses: 127.0.0.0/8, 10/8, 172.16/12, 192.168/16,
/// 100.64/10 (carrier-grade NAT), ::1, fc00::/7, fe80::/10, and the IPv4-mapped and
/// IPv4-compatible forms of the IPv4 ones.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 127 || a == 10 || (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168)
        // 100.64.0.0/10
        || (a == 100 && (64..=127).contains(&b))
}

fn private_v6(ip: Ipv6Addr) -> bool {
    if ip == Ipv6Addr::LOCALHOST {
        return true;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let s = ip.segments();
    // fc00::/7 (unique local), fe80::/10 (link local).
    if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfe80 {
        return true;
    }
    // IPv4-compatible `::a.b.c.d` (deprecated, still seen): not `::` or `::1`.
    if s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1) {
        return private_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_public_addresses() {
        for p in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_private(ip(p)), "{p} should be private");
        }
        for p in [
            "8.8.8.8",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "11.0.0.1",
            "0.0.0.0",
            "2001:db8::1",
            "2a00:1450::1",
            "fec0::1",
            "::",
            "::ffff:8.8.8.8",
            "::ffff:172.32.0.1",
        ] {
            assert!(!is_private(ip(p)), "{p} should not be private");
        }
    }

    #[test]
    fn key_is_exact_and_empty_key_needs_a_private_peer() {
        let a = Auth::new("secret", false);
        let public = Some(ip("8.8.8.8"));
        assert!(a.allows(Some(b"apikey secret"), public));
        for bad in [
            &b"Apikey secret"[..],
            b"apikey  secret",
            b"apikey secret ",
            b"bearer secret",
            b"apikey secre",
            b"",
        ] {
            assert!(!a.allows(Some(bad), Some(ip("127.0.0.1"))), "{bad:?}");
        }
        assert!(!a.allows(None, Some(ip("127.0.0.1"))));

        let open = Auth::new("", false);
        assert!(open.allows(None, Some(ip("127.0.0.1"))));
        assert!(open.allows(Some(b"anything"), Some(ip("10.0.0.7"))));
        assert!(!open.allows(None, public));
        assert!(!open.allows(None, None));
        let insecure = Auth::new("", true);
        assert!(insecure.allows(None, public));
        assert!(insecure.allows(None, None));
    }
}
