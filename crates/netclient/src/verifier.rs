//! `insecure_skip_verify`: a server certificate verifier that accepts any certificate and any
//! name, as Go's `InsecureSkipVerify` does. The handshake signatures are still checked against
//! the key the server presented, so the peer must hold that key.
//!
//! `server_name` for clients that cannot be given a name: a verifier that checks the
//! certificate against the configured name, whatever host the connection was opened with.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// Accepts any server certificate; checks signatures with the provider's algorithms.
#[derive(Debug)]
pub(crate) struct AnyServerCert(WebPkiSupportedAlgorithms);

impl AnyServerCert {
    pub(crate) fn new(provider: &CryptoProvider) -> Self {
        Self(provider.signature_verification_algorithms)
    }
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Verifies the server certificate (chain, validity, name) against a configured name instead
/// of the one the connection was opened with, for clients that always use their URL's host
/// (async-nats): everything else is delegated to the wrapped verifier (rustls' WebPki one).
#[derive(Debug)]
pub(crate) struct NamedServerCert {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl NamedServerCert {
    pub(crate) fn new(inner: Arc<dyn ServerCertVerifier>, name: ServerName<'static>) -> Self {
        Self { inner, name }
    }
}

impl ServerCertVerifier for NamedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::client::WebPkiServerVerifier;
    use tokio_rustls::rustls::crypto::ring;
    use tokio_rustls::rustls::{CertificateError, RootCertStore};

    /// A CA and a leaf certificate it signed for `nats.internal`.
    fn ca_and_leaf() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let p = crate::test_pki::pki("nats.internal");
        (p.ca, p.leaf)
    }

    fn named(ca: &CertificateDer<'static>, name: &str) -> NamedServerCert {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).expect("root");
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(ring::default_provider()),
        )
        .build()
        .expect("verifier");
        NamedServerCert::new(webpki, ServerName::try_from(name.to_owned()).expect("name"))
    }

    fn verify(v: &NamedServerCert, leaf: &CertificateDer<'_>, dialed: &str) -> Result<(), Error> {
        let dialed = ServerName::try_from(dialed.to_owned()).expect("name");
        v.verify_server_cert(leaf, &[], &dialed, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn the_configured_name_replaces_the_dialed_one() {
        let (ca, leaf) = ca_and_leaf();
        // Dialed by IP or another host: the certificate is checked for the configured name.
        let v = named(&ca, "nats.internal");
        verify(&v, &leaf, "127.0.0.1").expect("configured name matches");
        verify(&v, &leaf, "elsewhere.example").expect("configured name matches");
        // A configured name the certificate does not hold fails, even if the dialed one would
        // match.
        let v = named(&ca, "other.internal");
        assert!(matches!(
            verify(&v, &leaf, "nats.internal"),
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForNameContext { .. }
            )) | Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        ));
    }

    #[test]
    fn the_chain_is_still_verified() {
        let (_, leaf) = ca_and_leaf();
        let (other_ca, _) = ca_and_leaf();
        let v = named(&other_ca, "nats.internal");
        // Same subject names, another CA's key: the signature does not verify.
        let err = verify(&v, &leaf, "nats.internal").unwrap_err();
        assert!(matches!(err, Error::InvalidCertificate(_)), "{err:?}");
    }
}
