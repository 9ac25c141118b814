//! The principal a verified client certificate stands for: the subject's common name by
//! default, or its first DNS or URI subject alternative name (`--tls-principal-from`). The
//! listener has already verified the chain; this only reads names out of the DER.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Which name of a client certificate becomes the principal's name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertPrincipalFrom {
    /// The subject's (first) common name: `CN=alice` is `User:alice`.
    #[default]
    Cn,
    /// The first DNS subject alternative name.
    SanDns,
    /// The first URI subject alternative name (a SPIFFE id, say).
    SanUri,
}

impl CertPrincipalFrom {
    /// Parses `cn`, `san-dns` or `san-uri`.
    pub fn parse(text: &str) -> Option<CertPrincipalFrom> {
        match text {
            "cn" => Some(CertPrincipalFrom::Cn),
            "san-dns" => Some(CertPrincipalFrom::SanDns),
            "san-uri" => Some(CertPrincipalFrom::SanUri),
            _ => None,
        }
    }
}

/// The user name `from` picks out of the DER certificate `der`.
///
/// # Errors
/// A short reason: the bytes are not a certificate, or it has no such name (or an empty one).
pub fn principal_name(der: &[u8], from: CertPrincipalFrom) -> Result<String, &'static str> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|_| "the client certificate does not parse")?;
    let name = match from {
        CertPrincipalFrom::Cn => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        CertPrincipalFrom::SanDns | CertPrincipalFrom::SanUri => cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value
                    .general_names
                    .iter()
                    .find_map(|name| match (from, name) {
                        (CertPrincipalFrom::SanDns, GeneralName::DNSName(dns)) => {
                            Some((*dns).to_string())
                        }
                        (CertPrincipalFrom::SanUri, GeneralName::URI(uri)) => {
                            Some((*uri).to_string())
                        }
                        _ => None,
                    })
            }),
    };
    match name {
        Some(name) if !name.is_empty() && !name.chars().any(char::is_control) => Ok(name),
        Some(_) => Err("the client certificate's name is empty or holds control characters"),
        None => Err("the client certificate has no name of the configured kind"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_certificate() {
        for der in [&b""[..], b"\x30\x03\x02\x01\x01", &[0xff; 64]] {
            assert!(principal_name(der, CertPrincipalFrom::Cn).is_err());
        }
    }

    #[test]
    fn mappings_parse() {
        assert_eq!(CertPrincipalFrom::parse("cn"), Some(CertPrincipalFrom::Cn));
        assert_eq!(
            CertPrincipalFrom::parse("san-uri"),
            Some(CertPrincipalFrom::SanUri)
        );
        assert_eq!(CertPrincipalFrom::parse("ou"), None);
    }
}
