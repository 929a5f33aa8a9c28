//! The connector against real TLS servers on local ports: a custom CA given as a file path,
//! mTLS, `server_name`, `insecure_skip_verify`, TLS forced on an `http` URI, plain `http`;
//! and the configuration errors a user sees for unusable PEM values.

use std::sync::Arc;

use hyper::Uri;
use rotor_netclient::{client_config, Connector, Stream, TlsError, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower_service::Service;

/// A CA, a server certificate it signed for `backend.test`, a client certificate, and a
/// certificate of another CA.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    other_ca_pem: String,
}

fn ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
}

fn pki() -> Pki {
    let ca = ca();
    let leaf = |name: &str| {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: leaf("backend.test"),
        client: leaf("rotor-node"),
        other_ca_pem: self::ca().pem(),
    }
}

/// A TLS server on a free port answering each connection's first 4 bytes with
/// `pong/<did the client present a certificate>`; handshake failures just close.
async fn tls_server(pki: &Pki, client_auth: bool) -> u16 {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{self, server::WebPkiClientVerifier, RootCertStore};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = vec![CertificateDer::from_pem_slice(pki.server.0.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).expect("key");
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let b = if client_auth {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("ca"))
            .expect("root");
        let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
        b.with_client_cert_verifier(v)
    } else {
        b.with_no_client_auth()
    };
    let config = b.with_single_cert(certs, key).expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut ping = [0u8; 4];
                if tls.read_exact(&mut ping).await.is_err() {
                    return;
                }
                let has_cert = tls.get_ref().1.peer_certificates().is_some();
                let _ = tls.write_all(format!("pong/{has_cert}").as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// Connects through `connector`, sends `ping`, returns the answer and whether it was TLS.
async fn exchange(mut connector: Connector, uri: &str) -> Result<(String, bool), String> {
    let uri: Uri = uri.parse().expect("uri");
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(|e| e.to_string())?;
    let mut io = connector.call(uri).await.map_err(|e| e.to_string())?;
    let stream = io.inner_mut();
    let tls = matches!(stream, Stream::Tls(_));
    stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok((answer, tls))
}

fn options(pki: &Pki) -> TlsOptions {
    TlsOptions {
        enabled: true,
        server_ca_pem: pki.ca_pem.clone(),
        server_name: "backend.test".into(),
        ..TlsOptions::default()
    }
}

#[tokio::test]
async fn custom_ca_from_file_and_client_certificate() {
    let pki = pki();
    let port = tls_server(&pki, true).await;
    let dir = std::env::temp_dir().join(format!("rotor-netclient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).expect("write ca");
    let with_cert = TlsOptions {
        server_ca_pem: ca_file.to_string_lossy().into_owned(),
        cert_pem: pki.client.0.clone(),
        key_pem: pki.client.1.clone(),
        ..options(&pki)
    };
    let uri = format!("https://127.0.0.1:{port}/");
    let connector = Connector::from_options(&with_cert).expect("connector");
    assert_eq!(
        exchange(connector, &uri).await,
        Ok(("pong/true".to_owned(), true))
    );
    // Without the client certificate the server refuses the connection.
    let connector = Connector::from_options(&options(&pki)).expect("connector");
    assert!(exchange(connector, &uri).await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn server_name_replaces_the_uri_host() {
    let pki = pki();
    let port = tls_server(&pki, false).await;
    let uri = format!("https://127.0.0.1:{port}/");
    let named = Connector::from_options(&options(&pki)).expect("connector");
    assert_eq!(
        exchange(named, &uri).await,
        Ok(("pong/false".to_owned(), true))
    );
    // The certificate is for backend.test, not 127.0.0.1.
    let unnamed = TlsOptions {
        server_name: String::new(),
        ..options(&pki)
    };
    let connector = Connector::from_options(&unnamed).expect("connector");
    let err = exchange(connector, &uri).await.expect_err("name mismatch");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn another_ca_fails_and_skip_verify_accepts_any_certificate() {
    let pki = pki();
    let port = tls_server(&pki, false).await;
    let uri = format!("https://127.0.0.1:{port}/");
    let other = TlsOptions {
        server_ca_pem: pki.other_ca_pem.clone(),
        ..options(&pki)
    };
    let connector = Connector::from_options(&other).expect("connector");
    assert!(exchange(connector, &uri).await.is_err());
    let skip = TlsOptions {
        insecure_skip_verify: true,
        server_name: String::new(),
        ..other
    };
    let connector = Connector::from_options(&skip).expect("connector");
    assert_eq!(
        exchange(connector, &uri).await,
        Ok(("pong/false".to_owned(), true))
    );
}

#[tokio::test]
async fn http_uris_are_plain_unless_tls_is_forced() {
    let pki = pki();
    let tls_port = tls_server(&pki, false).await;
    // An `http` URI to a TLS server: forced TLS works (as a gRPC channel uses it).
    let forced = Connector::from_options(&options(&pki))
        .expect("connector")
        .always_tls();
    assert_eq!(
        exchange(forced, &format!("http://127.0.0.1:{tls_port}/")).await,
        Ok(("pong/false".to_owned(), true))
    );
    // A plain server: the default connector speaks plain TCP to `http` URIs.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        if let Ok((mut tcp, _)) = listener.accept().await {
            let mut ping = [0u8; 4];
            if tcp.read_exact(&mut ping).await.is_ok() {
                let _ = tcp.write_all(b"plain").await;
            }
        }
    });
    assert_eq!(
        exchange(Connector::system(), &format!("http://127.0.0.1:{port}/")).await,
        Ok(("plain".to_owned(), false))
    );
}

#[test]
fn unusable_pem_values_are_reported_by_field() {
    let pki = pki();
    let missing = TlsOptions {
        server_ca_pem: "/nonexistent/ca.pem".into(),
        ..options(&pki)
    };
    let err = client_config(&missing).expect_err("missing file");
    assert!(matches!(
        err,
        TlsError::Read {
            field: "server_ca_pem",
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with("server_ca_pem: cannot read \"/nonexistent/ca.pem\": "),
        "{err}"
    );
    // A key is not a certificate.
    let no_cert = TlsOptions {
        server_ca_pem: pki.client.1.clone(),
        ..options(&pki)
    };
    assert_eq!(
        client_config(&no_cert).err(),
        Some(TlsError::NoCertificate {
            field: "server_ca_pem"
        })
    );
    let half = TlsOptions {
        cert_pem: pki.client.0.clone(),
        ..options(&pki)
    };
    assert_eq!(client_config(&half).err(), Some(TlsError::HalfClientCert));
    let bad_key = TlsOptions {
        cert_pem: pki.client.0.clone(),
        key_pem: pki.client.0.clone(),
        ..options(&pki)
    };
    assert!(matches!(
        client_config(&bad_key),
        Err(TlsError::Pem {
            field: "key_pem",
            ..
        })
    ));
    let bad_name = TlsOptions {
        server_name: "not a name".into(),
        ..options(&pki)
    };
    assert!(matches!(
        Connector::from_options(&bad_name),
        Err(TlsError::ServerName { .. })
    ));
    // Options that are not enabled are not read: the system connector.
    let off = TlsOptions {
        enabled: false,
        ..missing
    };
    assert!(Connector::from_options(&off).is_ok());
}
