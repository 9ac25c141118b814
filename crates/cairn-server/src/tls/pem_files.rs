//! Reads PEM files: a certificate chain, a private key, a CA bundle. Each function reads the
//! file once and returns DER, or a [`TlsError`] naming the file and what is wrong with it.

use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::TlsError;

/// The certificates of `path` in file order (the end-entity certificate first, for a chain).
///
/// # Errors
/// [`TlsError::Read`], [`TlsError::Pem`], or [`TlsError::NoCertificate`] for a file without a
/// `CERTIFICATE` block.
pub(crate) fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            reason: describe(&err),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of `path` (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// [`TlsError::Read`], [`TlsError::Pem`], or [`TlsError::NoPrivateKey`].
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("private key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => TlsError::Pem {
            what: "private key",
            path: path.to_path_buf(),
            reason: describe(&other),
        },
    })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// What is wrong with a PEM file, by kind only: the parser's own messages can quote the file's
/// bytes, which in a key file would put key material in a log.
fn describe(err: &pem::Error) -> String {
    match err {
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line".to_string(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_string(),
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64".to_string(),
        pem::Error::Io(err) => format!("read failed: {err}"),
        pem::Error::NoItemsFound => "no PEM block of the expected kind".to_string(),
        pem::Error::SectionTooLarge => "a PEM block is larger than 256 MB".to_string(),
        _ => "unreadable PEM".to_string(),
    }
}
