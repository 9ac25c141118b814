//! From the files an operator names ([`TlsFiles`]) to the rustls configurations the node uses
//! ([`TlsConfigs`]): the gRPC listener's (ALPN `h2`, client certificates required when a
//! client CA is given), the HTTP admin listener's (same certificate, no client certificate:
//! `/health` and `/metrics` carry no records, and health checkers and scrapers then need only
//! the CA), and the peer links' client configuration (the node's own certificate as its client
//! certificate, peers verified against the client CA).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::error::TlsError;
use super::pem_files;
use super::validity::{self, NotAfter};

/// ALPN of the gRPC listener and the peer links: gRPC is HTTP/2 only, and stock gRPC clients
/// (grpcio, grpc-go) refuse a TLS connection that did not negotiate it.
const ALPN_H2: &[u8] = b"h2";
/// ALPN of the HTTP admin listener, a small HTTP/1.1 responder.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The TLS files of a node, as configured (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the node's own certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM bundle of the CAs whose client certificates are accepted; when set, every gRPC
    /// client must present one (mTLS), and the node's peers are verified against it too.
    pub client_ca: Option<PathBuf>,
}

/// The rustls configurations built from one load of the [`TlsFiles`].
#[derive(Clone, Debug)]
pub struct TlsConfigs {
    /// For the gRPC listener.
    pub grpc: Arc<ServerConfig>,
    /// For the HTTP admin listener.
    pub http: Arc<ServerConfig>,
    /// For the peer links' connections, when a client CA is configured (which then also
    /// verifies the peers' certificates).
    pub peer: Option<Arc<ClientConfig>>,
    /// When the node's certificate expires, in seconds since the Unix epoch.
    pub not_after_unix_secs: i64,
}

/// rustls's `ring` provider. Deprecated since rustls 0.23.48 because `ring` has no
/// post-quantum key exchange; the provider that has one (aws-lc-rs) needs cmake and a C
/// toolchain to build, which this project does not require. TLS 1.3 with X25519 stays sound.
#[allow(
    deprecated,
    reason = "see the doc comment: ring is chosen for its build, knowingly"
)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

impl TlsFiles {
    /// Reads and checks every file and builds the configurations. `now_unix_secs` is the
    /// current time, against which the certificate's notAfter is checked.
    ///
    /// # Errors
    /// [`TlsError`] naming the file and what is wrong with it: unreadable, malformed PEM, no
    /// certificate or key, a key that is not the certificate's, an expired certificate, a
    /// client CA file without certificates.
    pub fn load(&self, now_unix_secs: i64) -> Result<TlsConfigs, TlsError> {
        let chain = pem_files::certificates("certificate", &self.cert)?;
        let key = pem_files::private_key(&self.key)?;
        let not_after = self.check_not_after(&chain, now_unix_secs)?;
        let provider = Arc::new(ring_provider());
        self.check_key(&chain, &key, &provider)?;
        let roots = self.client_roots()?;
        let grpc = {
            let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|err| TlsError::Config(err.to_string()))?;
            let builder = match (&roots, &self.client_ca) {
                (Some(roots), Some(path)) => {
                    let verifier = WebPkiClientVerifier::builder_with_provider(
                        Arc::clone(roots),
                        Arc::clone(&provider),
                    )
                    .build()
                    .map_err(|err| TlsError::ClientCa {
                        path: path.clone(),
                        reason: err.to_string(),
                    })?;
                    builder.with_client_cert_verifier(verifier)
                }
                _ => builder.with_no_client_auth(),
            };
            self.with_cert(builder, &chain, &key, ALPN_H2)?
        };
        let http = self.with_cert(
            ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|err| TlsError::Config(err.to_string()))?
                .with_no_client_auth(),
            &chain,
            &key,
            ALPN_HTTP1,
        )?;
        let peer = match roots {
            Some(roots) => {
                let mut config = ClientConfig::builder_with_provider(provider)
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .map_err(|err| TlsError::Config(err.to_string()))?
                    .with_root_certificates(roots)
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| TlsError::Config(err.to_string()))?;
                config.alpn_protocols = vec![ALPN_H2.to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        Ok(TlsConfigs {
            grpc,
            http,
            peer,
            not_after_unix_secs: not_after.unix_secs,
        })
    }

    /// Refuses an expired certificate: every client would refuse it at handshake anyway, and a
    /// node that starts with one looks healthy while nothing can connect.
    fn check_not_after(
        &self,
        chain: &[CertificateDer<'static>],
        now_unix_secs: i64,
    ) -> Result<NotAfter, TlsError> {
        let leaf = chain.first().ok_or_else(|| TlsError::NoCertificate {
            what: "certificate",
            path: self.cert.clone(),
        })?;
        let not_after = validity::not_after(leaf).map_err(|reason| TlsError::BadCertificate {
            what: "certificate",
            path: self.cert.clone(),
            reason,
        })?;
        if not_after.unix_secs < now_unix_secs {
            return Err(TlsError::Expired {
                path: self.cert.clone(),
                not_after: not_after.text,
            });
        }
        Ok(not_after)
    }

    fn check_key(
        &self,
        chain: &[CertificateDer<'static>],
        key: &PrivateKeyDer<'static>,
        provider: &CryptoProvider,
    ) -> Result<(), TlsError> {
        match CertifiedKey::from_der(chain.to_vec(), key.clone_key(), provider) {
            Ok(_) => Ok(()),
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::KeyMismatch {
                    cert: self.cert.clone(),
                    key: self.key.clone(),
                })
            }
            Err(rustls::Error::InvalidCertificate(reason)) => Err(TlsError::BadCertificate {
                what: "certificate",
                path: self.cert.clone(),
                reason: format!("{reason:?}"),
            }),
            Err(err) => Err(TlsError::UnusableKey {
                path: self.key.clone(),
                reason: err.to_string(),
            }),
        }
    }

    fn client_roots(&self) -> Result<Option<Arc<RootCertStore>>, TlsError> {
        let Some(path) = &self.client_ca else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        for cert in pem_files::certificates("client CA", path)? {
            roots.add(cert).map_err(|err| TlsError::BadCertificate {
                what: "client CA",
                path: path.clone(),
                reason: err.to_string(),
            })?;
        }
        Ok(Some(Arc::new(roots)))
    }

    fn with_cert(
        &self,
        builder: rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>,
        chain: &[CertificateDer<'static>],
        key: &PrivateKeyDer<'static>,
        alpn: &[u8],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = builder
            .with_single_cert(chain.to_vec(), key.clone_key())
            .map_err(|err| TlsError::UnusableKey {
                path: self.key.clone(),
                reason: err.to_string(),
            })?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}
