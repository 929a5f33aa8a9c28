//! Certificates for TLS to Redis: Centrifugo 6's `engine.redis.tls` object, which the server's
//! nested-config mapping hands over as `redis_tls_<field>` keys (`enabled` → `redis_tls`,
//! `insecure_skip_verify` → `redis_tls_skip_verify`, both 2.x keys too).
//!
//! `server_ca_pem` (the CA to trust instead of the system roots) and `cert_pem` + `key_pem` (a
//! client certificate, for a Redis with `tls-auth-clients yes`) are PEM text or the path of a
//! file holding it, as Centrifugo accepts them. They are read once, at start, so a bad value
//! stops the node with the key named instead of failing every connection later. They apply to
//! every TLS connection of the engine: `redis_tls` shards, `rediss://` addresses, and every
//! node of a cluster (`rediss+cluster://` or `redis_tls` with cluster addresses).
//! `client_ca_pem` verifies the clients of a server and means nothing here (accepted, as
//! Centrifugo does); `server_name` is refused: redis-rs checks the certificate against the host
//! it dials and offers no way to name another.

use redis::{ClientTlsConfig, ConnectionAddr, ConnectionInfo, TlsCertificates};

use super::{bad, ClusterTls, ConfigError, Keys, ShardTarget, Topology};

/// The PEM material of `engine.redis.tls` (file contents already read).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsPem {
    /// The CA to verify Redis with; `None`: the system roots.
    pub root_cert: Option<Vec<u8>>,
    /// Client certificate chain and key, both PEM.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material is never printed.
        f.debug_struct("TlsPem")
            .field("root_cert", &self.root_cert.as_ref().map(|_| "set"))
            .field("client", &self.client.as_ref().map(|_| "set"))
            .finish()
    }
}

impl TlsPem {
    /// What redis-rs takes to build a TLS client.
    pub fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.root_cert.clone(),
        }
    }

    /// `info` (a `TcpTls` address) with these certificates attached.
    pub fn attach(&self, info: ConnectionInfo) -> Result<ConnectionInfo, redis::RedisError> {
        Ok(redis::Client::build_with_tls(info, self.certificates())?
            .get_connection_info()
            .clone())
    }
}

/// Reads `redis_tls_server_ca_pem`, `redis_tls_cert_pem`, `redis_tls_key_pem` (and refuses
/// `redis_tls_server_name`); `None` when none is set.
pub(super) fn read(keys: &Keys<'_>) -> Result<Option<TlsPem>, ConfigError> {
    if keys
        .string("redis_tls_server_name")?
        .is_some_and(|s| !s.trim().is_empty())
    {
        return Err(bad(
            "redis_tls_server_name (engine.redis.tls.server_name): not supported; the \
             certificate is checked against the host of the address",
        ));
    }
    let pem = |key: &str| -> Result<Option<Vec<u8>>, ConfigError> {
        match keys.string(key)?.filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => pem_value(key, &v).map(Some),
        }
    };
    let root_cert = pem("redis_tls_server_ca_pem")?;
    let client = match (pem("redis_tls_cert_pem")?, pem("redis_tls_key_pem")?) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((c, k)),
        _ => {
            return Err(bad(
                "redis_tls_cert_pem and redis_tls_key_pem (engine.redis.tls.cert_pem / \
                 key_pem) must be set together",
            ))
        }
    };
    if root_cert.is_none() && client.is_none() {
        return Ok(None);
    }
    let pem = TlsPem { root_cert, client };
    // Parse now: a bad certificate or key is a start-up error, not a failing connection.
    let probe = ConnectionAddr::TcpTls {
        host: "localhost".into(),
        port: 6379,
        insecure: false,
        tls_params: None,
    };
    let info = redis::IntoConnectionInfo::into_connection_info(probe)
        .map_err(|e| bad(format!("redis_tls: {e}")))?;
    pem.attach(info)
        .map_err(|e| bad(format!("redis_tls (engine.redis.tls) certificates: {e}")))?;
    Ok(Some(pem))
}

/// PEM text as given, or the contents of the file it names.
fn pem_value(key: &str, v: &str) -> Result<Vec<u8>, ConfigError> {
    if v.contains("-----BEGIN") {
        return Ok(v.as_bytes().to_vec());
    }
    std::fs::read(v.trim()).map_err(|e| bad(format!("{key}: cannot read {v:?}: {e}")))
}

/// Attaches `pem` to every TLS connection of `topology` (plain ones are left alone: the
/// `tls` object's fields mean nothing while TLS is off).
pub(super) fn apply(topology: Topology, pem: &TlsPem) -> Result<Topology, ConfigError> {
    let one = |t: ShardTarget| -> Result<ShardTarget, ConfigError> {
        Ok(match t {
            ShardTarget::Direct(info) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => {
                ShardTarget::Direct(
                    pem.attach(info)
                        .map_err(|e| bad(format!("redis_tls certificates: {e}")))?,
                )
            }
            ShardTarget::Cluster(mut c) => {
                if let Some(tls) = &mut c.tls {
                    tls.certs = Some(pem.clone());
                }
                ShardTarget::Cluster(c)
            }
            other => other,
        })
    };
    Ok(match topology {
        Topology::Cluster(mut c) => {
            if let Some(tls) = &mut c.tls {
                tls.certs = Some(pem.clone());
            }
            Topology::Cluster(c)
        }
        Topology::Shards(shards) => {
            Topology::Shards(shards.into_iter().map(one).collect::<Result<Vec<_>, _>>()?)
        }
    })
}

impl ClusterTls {
    /// TLS without certificates of its own (system roots, no client certificate).
    pub fn plain(skip_verify: bool) -> Self {
        ClusterTls {
            skip_verify,
            certs: None,
        }
    }
}
