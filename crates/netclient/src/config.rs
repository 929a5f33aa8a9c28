//! rustls client configurations: the [`TlsOptions`] of one outgoing client turned into a
//! `ClientConfig` (the CA to trust, or the system roots, or any certificate; an optional
//! client certificate), and the system-roots configuration of plain `https`, built once per
//! process. PEM values are PEM text or the path of a file holding it, as Centrifugo accepts.
//! [`client_config_named`] is the variant for clients that cannot be given a TLS name other
//! than their URL's host: it verifies the server certificate against `server_name` itself.

use std::sync::{Arc, OnceLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::client::{WantsClientCert, WebPkiServerVerifier};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::{ClientConfig, ConfigBuilder, RootCertStore, WantsVerifier};

use crate::verifier::{AnyServerCert, NamedServerCert};

/// The TLS settings of one outgoing client (Centrifugo's `tls` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Whether the client uses these options; [`client_config`] itself does not look at it.
    pub enabled: bool,
    /// Client certificate chain for mTLS (PEM text or file path); set with `key_pem`.
    pub cert_pem: String,
    /// The client certificate's private key (PEM text or file path).
    pub key_pem: String,
    /// The CA to verify the server with (PEM text or file path); empty = the system roots.
    pub server_ca_pem: String,
    /// Accept any server certificate and name (handshake signatures are still checked).
    pub insecure_skip_verify: bool,
    /// The name sent by SNI and verified; empty = the host of the URI.
    pub server_name: String,
}

/// Why TLS options cannot be used. Cheap to clone (a failed system-roots load is kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("TLS protocol versions: {0}")]
    Versions(String),
    #[error("{field}: cannot read {path:?}: {reason}")]
    Read {
        field: &'static str,
        path: String,
        reason: String,
    },
    #[error("{field}: {reason}")]
    Pem { field: &'static str, reason: String },
    #[error("{field}: no certificate found")]
    NoCertificate { field: &'static str },
    #[error("cert_pem and key_pem must be set together")]
    HalfClientCert,
    #[error("cert_pem/key_pem: {0}")]
    ClientCert(String),
    #[error("no system CA certificates could be loaded: {0}")]
    NoSystemRoots(String),
    #[error("server_name {name:?}: {reason}")]
    ServerName { name: String, reason: String },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn builder() -> Result<ConfigBuilder<ClientConfig, WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Versions(e.to_string()))
}

/// The system roots, loaded on first use; a certificate rustls cannot use is skipped.
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsError>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(TlsError::NoSystemRoots(why));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// The configuration of plain `https`: the system roots, no client certificate. Built once
/// per process, on the first call.
///
/// # Errors
/// No usable system root certificate.
pub fn system_config() -> Result<Arc<ClientConfig>, TlsError> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, TlsError>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Ok(Arc::new(
                builder()?
                    .with_root_certificates(system_roots()?)
                    .with_no_client_auth(),
            ))
        })
        .clone()
}

/// The rustls configuration of `options` (no ALPN: the caller sets it when it needs one).
///
/// # Errors
/// A PEM value that cannot be read or holds no usable certificate or key, a client
/// certificate without its key (or the reverse), no usable system root when no CA is given.
pub fn client_config(options: &TlsOptions) -> Result<ClientConfig, TlsError> {
    let b = builder()?;
    let b = if options.insecure_skip_verify {
        b.dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert::new(&provider())))
    } else {
        b.with_root_certificates(roots(options)?)
    };
    with_client_auth(b, options)
}

/// [`client_config`] for a client that always connects with its URL's host as the TLS name
/// and cannot be given another one (async-nats): when `server_name` is set (and
/// `insecure_skip_verify` is not), the server certificate is verified against `server_name`
/// instead, whatever host was dialed. SNI still carries the dialed host.
///
/// # Errors
/// Those of [`client_config`], and a `server_name` that is neither a DNS name nor an IP address.
pub fn client_config_named(options: &TlsOptions) -> Result<ClientConfig, TlsError> {
    if options.server_name.is_empty() || options.insecure_skip_verify {
        return client_config(options);
    }
    let name = server_name(&options.server_name)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(roots(options)?, provider())
        .build()
        .map_err(|e| TlsError::Pem {
            field: "server_ca_pem",
            reason: e.to_string(),
        })?;
    let b = builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NamedServerCert::new(webpki, name)));
    with_client_auth(b, options)
}

/// The CA of `server_ca_pem`, or the system roots when it is empty.
fn roots(options: &TlsOptions) -> Result<Arc<RootCertStore>, TlsError> {
    if options.server_ca_pem.is_empty() {
        return system_roots();
    }
    let mut roots = RootCertStore::empty();
    for cert in certs(&options.server_ca_pem, "server_ca_pem")? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            field: "server_ca_pem",
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

fn with_client_auth(
    b: ConfigBuilder<ClientConfig, WantsClientCert>,
    options: &TlsOptions,
) -> Result<ClientConfig, TlsError> {
    match (options.cert_pem.is_empty(), options.key_pem.is_empty()) {
        (true, true) => Ok(b.with_no_client_auth()),
        (false, false) => {
            let chain = certs(&options.cert_pem, "cert_pem")?;
            let key = PrivateKeyDer::from_pem_slice(&pem_bytes(&options.key_pem, "key_pem")?)
                .map_err(|e| TlsError::Pem {
                    field: "key_pem",
                    reason: e.to_string(),
                })?;
            b.with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::ClientCert(e.to_string()))
        }
        _ => Err(TlsError::HalfClientCert),
    }
}

/// A TLS server name (DNS name or IP address) for SNI and verification.
///
/// # Errors
/// `name` is neither.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|e| TlsError::ServerName {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// PEM text as given, or the contents of the file it names.
fn pem_bytes(value: &str, field: &'static str) -> Result<Vec<u8>, TlsError> {
    if value.contains("-----BEGIN") {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(value).map_err(|e| TlsError::Read {
            field,
            path: value.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// The certificates of a PEM value (other PEM sections are skipped); at least one.
fn certs(value: &str, field: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = pem_bytes(value, field)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            field,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { field });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::{ClientConnection, ServerConfig, ServerConnection};

    /// A CA's PEM, and a server certificate and key it signed for `nats.internal`.
    fn pki() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
        let p = crate::test_pki::pki("nats.internal");
        (p.ca_pem, p.leaf, p.key)
    }

    /// A TLS handshake in memory between `client` (dialing `dialed`) and a server with `cert`.
    fn handshake(
        client: ClientConfig,
        dialed: &str,
        cert: &CertificateDer<'static>,
        key: &PrivateKeyDer<'static>,
    ) -> Result<(), tokio_rustls::rustls::Error> {
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key.clone_key())
            .expect("server config");
        let mut c = ClientConnection::new(Arc::new(client), server_name(dialed).expect("name"))?;
        let mut s = ServerConnection::new(Arc::new(server))?;
        for _ in 0..20 {
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
            let mut buf = Vec::new();
            c.write_tls(&mut buf).expect("client write");
            s.read_tls(&mut buf.as_slice()).expect("server read");
            s.process_new_packets()?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).expect("server write");
            c.read_tls(&mut buf.as_slice()).expect("client read");
            c.process_new_packets()?;
        }
        panic!("the handshake did not finish");
    }

    fn options(ca: &str, server_name: &str) -> TlsOptions {
        TlsOptions {
            enabled: true,
            server_ca_pem: ca.to_owned(),
            server_name: server_name.to_owned(),
            ..TlsOptions::default()
        }
    }

    #[test]
    fn named_config_verifies_the_configured_name() {
        let (ca, cert, key) = pki();
        // Dialed by IP: the plain configuration checks the IP and fails, the named one checks
        // `server_name`.
        let plain = client_config(&options(&ca, "nats.internal")).expect("config");
        assert!(handshake(plain, "127.0.0.1", &cert, &key).is_err());
        let named = client_config_named(&options(&ca, "nats.internal")).expect("config");
        handshake(named, "127.0.0.1", &cert, &key).expect("verified for server_name");
        // A server_name the certificate does not hold fails, though the dialed name matches.
        let named = client_config_named(&options(&ca, "other.internal")).expect("config");
        assert!(handshake(named, "nats.internal", &cert, &key).is_err());
        // Without server_name it is the plain configuration: the dialed host is checked.
        let named = client_config_named(&options(&ca, "")).expect("config");
        handshake(named, "nats.internal", &cert, &key).expect("dialed name matches");
        let named = client_config_named(&options(&ca, "")).expect("config");
        assert!(handshake(named, "127.0.0.1", &cert, &key).is_err());
    }

    #[test]
    fn named_config_errors_name_the_field() {
        let (ca, _, _) = pki();
        let err = client_config_named(&options(&ca, "not a name!")).unwrap_err();
        assert!(matches!(err, TlsError::ServerName { .. }), "{err}");
        let err = client_config_named(&options("/no/such/ca.pem", "nats.internal")).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Read {
                    field: "server_ca_pem",
                    ..
                }
            ),
            "{err}"
        );
        let half = TlsOptions {
            cert_pem: ca.clone(),
            ..options(&ca, "nats.internal")
        };
        assert_eq!(
            client_config_named(&half).unwrap_err(),
            TlsError::HalfClientCert
        );
    }
}
