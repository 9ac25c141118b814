//! Test certificates, made when a test runs (rcgen): a CA, and node and client certificates it
//! signs, written as PEM files in the test's directory. No key is checked in.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
};

/// A test CA.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Where its certificate is written (PEM).
    pub cert: PathBuf,
}

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/name.crt`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        std::fs::write(&cert, issuer.pem()).unwrap();
        TestCa { issuer, cert }
    }

    /// A certificate for `name` (its CN) valid for 127.0.0.1 and localhost, with serial
    /// `serial`, written to `dir/file_name.crt` and `.key` (replacing what is there).
    pub fn issue(&self, dir: &Path, file_name: &str, name: &str, serial: u64) -> CertFiles {
        self.issue_for(dir, file_name, name, serial, &["127.0.0.1", "localhost"])
    }

    /// [`TestCa::issue`], valid for the names and addresses `sans` only.
    pub fn issue_for(
        &self,
        dir: &Path,
        file_name: &str,
        name: &str,
        serial: u64,
        sans: &[&str],
    ) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|san| san.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = CertFiles {
            cert: dir.join(format!("{file_name}.crt")),
            key: dir.join(format!("{file_name}.key")),
        };
        // The key first, then the certificate, each written whole by a rename: a reload that
        // sees the new certificate sees its key too.
        replace(&files.key, &key.serialize_pem());
        replace(&files.cert, &cert.pem());
        files
    }
}

/// Writes `path` whole: to a temporary name, then renamed over it.
fn replace(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// `serve` arguments for TLS with `node`'s files, and mTLS under `client_ca` when given.
pub fn serve_tls_args(node: &CertFiles, client_ca: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "--tls-cert".to_string(),
        node.cert.display().to_string(),
        "--tls-key".to_string(),
        node.key.display().to_string(),
    ];
    if let Some(ca) = client_ca {
        args.extend(["--tls-client-ca".to_string(), ca.display().to_string()]);
    }
    args
}

/// Client arguments: `--tls-ca ca`, and the client certificate when given.
pub fn client_tls_args(ca: &Path, client: Option<&CertFiles>) -> Vec<String> {
    let mut args = vec!["--tls-ca".to_string(), ca.display().to_string()];
    if let Some(client) = client {
        args.extend([
            "--tls-cert".to_string(),
            client.cert.display().to_string(),
            "--tls-key".to_string(),
            client.key.display().to_string(),
        ]);
    }
    args
}
