//! TLS for a gRPC proxy (`grpc.tls`): a rustls client configuration (the CA to trust or the
//! system roots, an optional client certificate, `server_name`, `insecure_skip_verify`) and
//! the connector the tonic channel dials through, offering `h2` by ALPN.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::Uri;

use crate::config::TlsSettings;

/// Dials the backend over TCP and runs the TLS handshake; the URI tonic passes is ignored
/// (the target is fixed per proxy).
#[derive(Clone)]
pub(super) struct Connector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    host: Arc<str>,
    port: u16,
}

impl Connector {
    pub(super) fn new(tls: &TlsSettings, host: &str, port: u16) -> Result<Self, String> {
        let name = if tls.server_name.is_empty() {
            host
        } else {
            tls.server_name.as_str()
        };
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("server name {name:?}: {e}"))?;
        Ok(Self {
            config: Arc::new(client_config(tls)?),
            server_name,
            host: Arc::from(host),
            port,
        })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect((&*this.host, this.port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(this.server_name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// PEM text as given, or the contents of the file it names.
fn pem_bytes(value: &str, field: &str) -> Result<Vec<u8>, String> {
    if value.contains("-----BEGIN") {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(value).map_err(|e| format!("{field}: cannot read {value:?}: {e}"))
    }
}

fn certs(value: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = pem_bytes(value, field)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{field}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{field}: no certificate found"));
    }
    Ok(certs)
}

fn client_config(tls: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if tls.server_ca_pem.is_empty() {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system certificate rustls cannot use is skipped, as Go skips it.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no server_ca_pem and no usable system root certificate".into());
            }
        } else {
            for cert in certs(&tls.server_ca_pem, "server_ca_pem")? {
                roots.add(cert).map_err(|e| format!("server_ca_pem: {e}"))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (tls.cert_pem.is_empty(), tls.key_pem.is_empty()) {
        (true, true) => builder.with_no_client_auth(),
        (false, false) => {
            let chain = certs(&tls.cert_pem, "cert_pem")?;
            let key = PrivateKeyDer::from_pem_slice(&pem_bytes(&tls.key_pem, "key_pem")?)
                .map_err(|e| format!("key_pem: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("cert_pem/key_pem: {e}"))?
        }
        _ => return Err("cert_pem and key_pem go together".into()),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// `insecure_skip_verify`: any certificate and name are accepted; the handshake signatures
/// are still checked, as Go's `InsecureSkipVerify` does.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
