//! TLS 1.3 to the brokers: [`ClientTls`], the configuration every connection of a client uses
//! once TLS is on (bootstrap, partition leaders, the replay's own HTTP/2 transport), and the
//! connector that dials through it. The broker's certificate is verified against the CA the
//! caller names and against the host of the address dialled (its IP address or DNS name must
//! be in the certificate's subjectAltName); there is no way to turn that check off.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::ClientError;

/// How a client speaks TLS to the brokers. Clones share one configuration.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ClientTls {}

impl ClientTls {
    /// TLS 1.3 trusting the CA certificates in the PEM file `ca`, presenting the client
    /// certificate chain `cert` with its key `key` (PEM) when both are given, for brokers that
    /// require one (mTLS).
    ///
    /// # Errors
    /// [`ClientError::Tls`] naming the file and what is wrong with it: unreadable, not PEM, no
    /// certificate or key in it, or a key that does not match the certificate; and for a
    /// certificate given without its key or the other way round.
    pub fn from_pem_files(
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<ClientTls, ClientError> {
        let mut roots = RootCertStore::empty();
        for ca_cert in certificates(ca, "CA")? {
            roots
                .add(ca_cert)
                .map_err(|err| tls_error(ca, err.to_string()))?;
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|err| tls_error(ca, err.to_string()))?
            .with_root_certificates(roots);
        let config = match (cert, key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "client certificate")?;
                let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
                    .map_err(|_| tls_error(key, "holds no readable PEM private key".to_string()))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|err| match err {
                        rustls::Error::InconsistentKeys(_) => tls_error(
                            key,
                            format!("does not match the certificate {}", cert.display()),
                        ),
                        other => tls_error(key, format!("cannot be used: {other}")),
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(path), None) | (None, Some(path)) => {
                return Err(tls_error(
                    path,
                    "a client certificate needs its key and a key its certificate (--tls-cert with --tls-key)"
                        .to_string(),
                ));
            }
        };
        Ok(ClientTls::from_rustls(config))
    }

    /// TLS with a rustls configuration of the caller's own (its ALPN is set to `h2`, which
    /// gRPC needs).
    pub fn from_rustls(mut config: ClientConfig) -> ClientTls {
        config.alpn_protocols = vec![b"h2".to_vec()];
        ClientTls {
            config: Arc::new(config),
        }
    }

    /// Opens TCP to `uri`'s host and port, then TLS verifying the broker's certificate
    /// against that host.
    pub(crate) async fn connect(&self, uri: &Uri) -> std::io::Result<TlsStream<TcpStream>> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let host = uri
            .host()
            .ok_or_else(|| invalid(format!("no host in {uri}")))?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|err| invalid(format!("{host:?} is not a host name: {err}")))?;
        let tcp = TcpStream::connect((bare, port)).await?;
        tcp.set_nodelay(true)?;
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
    }

    /// The connector tonic channels dial through.
    pub(crate) fn connector(&self) -> TlsConnector {
        TlsConnector { tls: self.clone() }
    }
}

/// A tonic connector that opens each connection with [`ClientTls::connect`].
#[derive(Clone, Debug)]
pub(crate) struct TlsConnector {
    tls: ClientTls,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move { tls.connect(&uri).await.map(TokioIo::new) })
    }
}

/// rustls's `ring` provider, deprecated since rustls 0.23.48 for lacking post-quantum key
/// exchange; the provider that has it (aws-lc-rs) needs cmake to build, which this project does
/// not require. TLS 1.3 with X25519 stays sound.
#[allow(
    deprecated,
    reason = "see the doc comment: ring is chosen for its build, knowingly"
)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| tls_error(path, format!("is not well-formed PEM: {err}")))?;
    if certs.is_empty() {
        return Err(tls_error(path, format!("holds no {what} certificate")));
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|err| tls_error(path, format!("cannot be read: {err}")))
}

fn tls_error(path: &Path, reason: String) -> ClientError {
    ClientError::Tls {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    /// A self-signed certificate and its key, and another key, as PEM files in `dir`.
    fn files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let paths = (dir.join("c.crt"), dir.join("c.key"), dir.join("other.key"));
        std::fs::write(&paths.0, cert.pem()).unwrap();
        std::fs::write(&paths.1, key.serialize_pem()).unwrap();
        std::fs::write(&paths.2, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        paths
    }

    fn reason(result: Result<ClientTls, ClientError>) -> String {
        match result {
            Err(ClientError::Tls { path, reason }) => format!("{}: {reason}", path.display()),
            Err(other) => panic!("not a TLS error: {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn good_files_load_and_each_mistake_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, other_key) = files(dir.path());
        ClientTls::from_pem_files(&cert, None, None).unwrap();
        ClientTls::from_pem_files(&cert, Some(&cert), Some(&key)).unwrap();
        let missing = dir.path().join("missing.crt");
        let err = reason(ClientTls::from_pem_files(&missing, None, None));
        assert!(
            err.contains("missing.crt") && err.contains("cannot be read"),
            "{err}"
        );
        let err = reason(ClientTls::from_pem_files(&key, None, None));
        assert!(
            err.contains("c.key") && err.contains("no CA certificate"),
            "{err}"
        );
        let err = reason(ClientTls::from_pem_files(&cert, Some(&cert), None));
        assert!(err.contains("needs its key"), "{err}");
        let err = reason(ClientTls::from_pem_files(
            &cert,
            Some(&cert),
            Some(&other_key),
        ));
        assert!(
            err.contains("other.key") && err.contains("does not match"),
            "{err}"
        );
        let err = reason(ClientTls::from_pem_files(&cert, Some(&cert), Some(&cert)));
        assert!(err.contains("no readable PEM private key"), "{err}");
        assert!(!err.contains("PRIVATE KEY-----"), "{err}");
    }
}
