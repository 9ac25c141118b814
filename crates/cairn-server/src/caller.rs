//! What the transport proved about the caller of a request, as request extensions: the contract
//! between the listener (which terminates TLS and verifies a client certificate) and the
//! authentication and authorization layers above it (which turn that proof, or a password, into
//! a principal). Kept in its own module so that either side can change without the other.
//! The result of that, the request's [`Principal`], is defined here too, for the layers after
//! authentication (authorization, quotas) to read.

use std::sync::Arc;

mod principal;

pub use principal::{ANONYMOUS_PRINCIPAL, Principal, Proof};

/// The request arrived over TLS. Absent on a plaintext connection: a password is only accepted
/// where this is present (or on a listener the operator declared plaintext-permitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverTls;

/// The client's certificate as verified by the listener under mTLS: the DER bytes of the
/// end-entity certificate, which chained to a trusted client CA during the handshake. Absent
/// when the client presented none (or the connection is plaintext).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate(pub Arc<[u8]>);
