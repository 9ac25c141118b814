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

    /// A self-signed certificate (made with openssl for this test) whose subject is
    /// `O=Cairn tests, CN=alice`, with the SANs `DNS:alice.example` and
    /// `URI:spiffe://cairn/alice`, as base64 of its DER.
    const ALICE_CERT_DER_BASE64: &str = concat!(
        "MIIB0zCCAXmgAwIBAgIUIkhABnevq2dVfOdUuUWmr+b5dyYwCgYIKoZIzj0EAwIwJjEUMBIGA1UECgwLQ2Fpcm4g",
        "dGVzdHMxDjAMBgNVBAMMBWFsaWNlMB4XDTI2MTIwNTA0MTY0M1oXDTM2MTIwMjA0MTY0M1owJjEUMBIGA1UECgwL",
        "Q2Fpcm4gdGVzdHMxDjAMBgNVBAMMBWFsaWNlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEwJDm+PlHdPrcz0F",
        "rYrBiJFYdrfAZfcwfesvuDgdQjOsqzwMX4AdgHULWIcK22inOZAlrKpKQ0Z7bAdLts/Xi6OBhDCBgTAdBgNVHQ4E",
        "FgQUFkZkYK6p5wWDUczRGaLu1wmHIrAwHwYDVR0jBBgwFoAUFkZkYK6p5wWDUczRGaLu1wmHIrAwDwYDVR0TAQH/",
        "BAUwAwEB/zAuBgNVHREEJzAlgg1hbGljZS5leGFtcGxlhhRzcGlmZmU6Ly9jYWlybi9hbGljZTAKBggqhkjOPQQD",
        "AgNIADBFAiEA48gt/OTGrIINKEjHprAI0jomq0CBgQ/W6ZuRmN1FvLECIARjn5bv139XmcrOgemZcNmwXRV0oOTj",
        "cLaI6JoTTlBh",
    );

    #[test]
    fn each_mapping_picks_its_name() {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(ALICE_CERT_DER_BASE64)
            .unwrap();
        assert_eq!(
            principal_name(&der, CertPrincipalFrom::Cn).unwrap(),
            "alice"
        );
        assert_eq!(
            principal_name(&der, CertPrincipalFrom::SanDns).unwrap(),
            "alice.example"
        );
        assert_eq!(
            principal_name(&der, CertPrincipalFrom::SanUri).unwrap(),
            "spiffe://cairn/alice"
        );
        // A cut certificate does not parse.
        assert!(principal_name(&der[..der.len() / 2], CertPrincipalFrom::Cn).is_err());
    }

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
