//! Why a TLS file could not be used. Every variant names the file; none carries key material
//! (a PEM parser's message about a key file is reduced to its kind for that reason).

use std::path::PathBuf;

/// A TLS certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        /// Which file: "certificate", "private key" or "client CA".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("the TLS {what} file {path} is not well-formed PEM: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("the TLS {what} file {path} holds no certificate (no PEM CERTIFICATE block)")]
    NoCertificate {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key block.
    #[error(
        "the TLS private key file {path} holds no private key (no PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a kind the TLS library cannot sign with.
    #[error("the TLS private key in {path} cannot be used: {reason}")]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// The library's reason (it names the key's kind, never its bytes).
        reason: String,
    },
    /// The private key is not the one of the certificate's public key.
    #[error("the TLS private key {key} does not match the certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A certificate is not a well-formed X.509 certificate.
    #[error("the TLS {what} file {path} holds a malformed certificate: {reason}")]
    BadCertificate {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The node's certificate is past its notAfter.
    #[error("the TLS certificate {path} expired at {not_after} (notAfter); renew it")]
    Expired {
        /// The file.
        path: PathBuf,
        /// Its notAfter, as written in the certificate (UTC).
        not_after: String,
    },
    /// The client CA could not be turned into a verifier.
    #[error("the TLS client CA file {path} cannot verify clients: {reason}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// The library's reason.
        reason: String,
    },
    /// The TLS library refused the configuration as a whole.
    #[error("TLS configuration refused: {0}")]
    Config(String),
}
