//! The node's TLS files: each way a certificate, key or client CA file can be wrong is a typed
//! error naming the file (and never quoting a key), and a reload that fails keeps the
//! configuration in force. Certificates are made here with rcgen; no key is checked in.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_server::tls::{TlsError, TlsFiles, TlsState};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};

/// Now, as the server checks notAfter against it.
fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// A leaf for 127.0.0.1 and localhost: (certificate PEM, key PEM).
    fn leaf(&self, expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "node");
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A directory with a good CA, certificate and key: (dir, files).
fn good() -> (tempfile::TempDir, TlsFiles, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(false);
    let files = TlsFiles {
        cert: write(dir.path(), "node.crt", &cert),
        key: write(dir.path(), "node.key", &key),
        client_ca: Some(write(dir.path(), "ca.crt", &ca.0.pem())),
    };
    (dir, files, ca)
}

#[test]
fn good_files_load_into_all_three_configurations() {
    let (_dir, files, _ca) = good();
    let configs = files.load(now()).unwrap();
    assert_eq!(configs.grpc.alpn_protocols, vec![b"h2".to_vec()]);
    assert!(
        configs.peer.is_some(),
        "a client CA gives the peer links mTLS"
    );
    assert!(configs.not_after_unix_secs > now());
    let without_ca = TlsFiles {
        client_ca: None,
        ..files
    };
    assert!(without_ca.load(now()).unwrap().peer.is_none());
}

/// Whether an error is the one a case expects.
type Expected = fn(&TlsError) -> bool;

#[test]
fn each_bad_file_is_a_typed_error_naming_it() {
    let (dir, files, ca) = good();
    let key_text = std::fs::read_to_string(&files.key).unwrap();
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let (expired_cert, expired_key) = ca.leaf(true);
    let garbage = "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n";
    let cases: Vec<(&str, TlsFiles, Expected)> = vec![
        (
            "missing.crt",
            TlsFiles {
                cert: dir.path().join("missing.crt"),
                ..files.clone()
            },
            |e| {
                matches!(
                    e,
                    TlsError::Read {
                        what: "certificate",
                        ..
                    }
                )
            },
        ),
        (
            "garbage.crt",
            TlsFiles {
                cert: write(dir.path(), "garbage.crt", garbage),
                ..files.clone()
            },
            |e| matches!(e, TlsError::Pem { .. }),
        ),
        (
            "only-key.crt",
            TlsFiles {
                cert: write(dir.path(), "only-key.crt", &key_text),
                ..files.clone()
            },
            |e| {
                matches!(
                    e,
                    TlsError::NoCertificate {
                        what: "certificate",
                        ..
                    }
                )
            },
        ),
        (
            "cert-as.key",
            TlsFiles {
                key: write(dir.path(), "cert-as.key", &ca.0.pem()),
                ..files.clone()
            },
            |e| matches!(e, TlsError::NoPrivateKey { .. }),
        ),
        (
            "other.key",
            TlsFiles {
                key: write(dir.path(), "other.key", &other_key),
                ..files.clone()
            },
            |e| matches!(e, TlsError::KeyMismatch { .. }),
        ),
        (
            "expired.crt",
            TlsFiles {
                cert: write(dir.path(), "expired.crt", &expired_cert),
                key: write(dir.path(), "expired.key", &expired_key),
                ..files.clone()
            },
            |e| matches!(e, TlsError::Expired { not_after, .. } if not_after.starts_with("2001-01-01")),
        ),
        (
            "empty-ca.crt",
            TlsFiles {
                client_ca: Some(write(dir.path(), "empty-ca.crt", "# no certificates\n")),
                ..files.clone()
            },
            |e| {
                matches!(
                    e,
                    TlsError::NoCertificate {
                        what: "client CA",
                        ..
                    }
                )
            },
        ),
    ];
    let key_body: String = key_text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    for (name, bad, expected) in cases {
        let err = bad.load(now()).unwrap_err();
        assert!(expected(&err), "{name}: {err:?}");
        let message = err.to_string();
        assert!(
            message.contains(name),
            "{name}: the message names the file: {message}"
        );
        assert!(
            !message.contains(&key_body[..16]),
            "{name}: key material in {message}"
        );
    }
}

#[test]
fn a_failed_reload_keeps_the_configuration_in_force_and_a_good_one_replaces_it() {
    let (dir, files, ca) = good();
    let state = TlsState::load(files.clone()).unwrap();
    let first = state.current();
    write(dir.path(), "node.crt", "half a file");
    assert!(matches!(
        state.reload(),
        Err(TlsError::NoCertificate { .. })
    ));
    assert!(
        Arc::ptr_eq(&first, &state.current()),
        "the old configuration stays"
    );
    assert!(
        state
            .metrics_text()
            .contains("cairn_tls_reload_failures_total 1"),
        "{}",
        state.metrics_text()
    );
    let (cert, key) = ca.leaf(false);
    write(dir.path(), "node.crt", &cert);
    write(dir.path(), "node.key", &key);
    state.reload().unwrap();
    assert!(!Arc::ptr_eq(&first, &state.current()));
}
