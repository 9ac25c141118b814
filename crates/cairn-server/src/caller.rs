//! What the transport proved about the caller of a request, as request extensions: the contract
//! between the listener (which terminates TLS and verifies a client certificate) and the
//! authentication and authorization layers above it (which turn that proof, or a password, into
//! a principal). Kept in its own module so that either side can change without the other.
//! The result of that, the request's [`Principal`], is defined here too, for the layers after
//! authentication (authorization, quotas) to read.

use std::sync::{Arc, OnceLock};

mod principal;

pub use principal::{ANONYMOUS_PRINCIPAL, Principal, Proof};

/// The request arrived over TLS. Absent on a plaintext connection: a password is only accepted
/// where this is present (or on a listener the operator declared plaintext-permitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverTls;

/// The client's certificate as verified by the listener under mTLS: the DER bytes of the
/// end-entity certificate, which chained to a trusted client CA during the handshake. Absent
/// when the client presented none (or the connection is plaintext).
///
/// One value per connection, cloned into each of its requests, so what authentication derives
/// from the certificate (its principal) is worked out once per connection, not parsed out of
/// the DER again for every call.
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    der: Arc<[u8]>,
    principal: Arc<OnceLock<Result<Principal, &'static str>>>,
}

impl ClientCertificate {
    /// The certificate whose DER bytes are `der`.
    pub fn new(der: Arc<[u8]>) -> ClientCertificate {
        ClientCertificate {
            der,
            principal: Arc::new(OnceLock::new()),
        }
    }

    /// The DER bytes.
    pub fn der(&self) -> &Arc<[u8]> {
        &self.der
    }

    /// The principal `derive` makes of the DER, derived on this connection's first call and
    /// remembered for the rest (the mapping from certificate to name is fixed for the process).
    pub fn principal(
        &self,
        derive: impl FnOnce(&[u8]) -> Result<Principal, &'static str>,
    ) -> Result<Principal, &'static str> {
        self.principal.get_or_init(|| derive(&self.der)).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connections_certificate_is_read_for_its_principal_once() {
        let certificate = ClientCertificate::new(Arc::from(&b"der"[..]));
        let per_request = certificate.clone();
        let mut reads = 0;
        for _ in 0..3 {
            let principal = per_request.principal(|der| {
                reads += 1;
                assert_eq!(der, b"der");
                Ok(Principal::user("alice", Proof::Certificate))
            });
            assert_eq!(
                principal.map(|p| p.name().to_string()),
                Ok("User:alice".into())
            );
        }
        assert_eq!(reads, 1);
        assert_eq!(certificate.der().as_ref(), b"der");
    }
}
