//! Redis Cluster addresses in every generation's form: `redis_cluster_addrs` /
//! `redis_cluster_address` groups of comma-separated seeds, and v6 `redis+cluster://` URLs.

use super::*;

/// One cluster's seeds as the configuration gives them.
#[derive(Debug, Default)]
pub(super) struct Seeds {
    pub(super) nodes: Vec<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) tls: bool,
}

/// The clusters a configuration names (see the module docs); empty when it names none.
pub(super) fn clusters(keys: &Keys<'_>) -> Result<Vec<Seeds>, ConfigError> {
    for key in ["redis_cluster_address", "redis_cluster_addrs"] {
        let groups = keys.groups(key)?;
        if groups.is_empty() {
            continue;
        }
        return groups
            .iter()
            .map(|group| {
                let nodes = group
                    .split(',')
                    .map(|a| strip_scheme(a.trim()).to_string())
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>();
                for n in &nodes {
                    tcp_addr(n, key)?;
                }
                Ok(Seeds {
                    nodes,
                    ..Seeds::default()
                })
            })
            .filter(|s: &Result<Seeds, ConfigError>| {
                s.as_ref().map_or(true, |s| !s.nodes.is_empty())
            })
            .collect();
    }
    for key in ["redis_address", "redis_url"] {
        let list = keys.list(key)?;
        let urls = list.iter().filter(|a| is_cluster_url(a)).count();
        if urls == 0 {
            continue;
        }
        if urls != list.len() {
            return Err(bad(format!(
                "{key}: redis+cluster:// addresses cannot be mixed with plain Redis addresses"
            )));
        }
        return list.iter().map(|a| cluster_url(a, key)).collect();
    }
    Ok(Vec::new())
}

fn is_cluster_url(a: &str) -> bool {
    let a = a.trim().to_ascii_lowercase();
    a.starts_with("redis+cluster://") || a.starts_with("rediss+cluster://")
}

/// `redis+cluster://[user:password@]host:port[/db][?addr=host:port&addr=...]` (Centrifugo 6).
fn cluster_url(a: &str, key: &str) -> Result<Seeds, ConfigError> {
    let a = a.trim();
    let (scheme, rest) = a
        .split_once("://")
        .ok_or_else(|| bad(format!("{key}: invalid address {a:?}")))?;
    let tls = scheme.eq_ignore_ascii_case("rediss+cluster");
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.split('/').next().unwrap_or_default();
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut seeds = Seeds {
        tls,
        ..Seeds::default()
    };
    if let Some(u) = userinfo {
        let (user, pass) = u.split_once(':').unwrap_or((u, ""));
        seeds.username = Some(percent_decode(user)).filter(|s| !s.is_empty());
        seeds.password = Some(percent_decode(pass)).filter(|s| !s.is_empty());
    }
    if !host.is_empty() {
        seeds.nodes.push(host.to_string());
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "addr" {
            seeds.nodes.push(percent_decode(v));
        }
    }
    if seeds.nodes.is_empty() {
        return Err(bad(format!("{key}: {a:?} names no cluster node")));
    }
    for n in &seeds.nodes {
        tcp_addr(n, key)?;
    }
    Ok(seeds)
}

/// Decodes `%XX` escapes (anything malformed stays as it is).
pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
