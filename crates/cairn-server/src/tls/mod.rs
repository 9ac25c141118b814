//! TLS 1.3 for the node: the certificate, key and client CA files an operator names, loaded and
//! checked at start-up (a bad file stops the node rather than leaving it open), turned into the
//! rustls configurations of the gRPC listener, the HTTP admin listener and the outgoing peer
//! links, and reloaded when the files change or on SIGHUP.
//!
//! Code map:
//! - `error`: [`TlsError`], one variant per way a file can be wrong, each naming the file;
//! - `pem_files`: reads certificates, a private key and a CA bundle from PEM files;
//! - `validity`: the certificate's notAfter, read from its DER, so an expired certificate is
//!   refused at load rather than by every client at handshake;
//! - `configs`: [`TlsFiles`] (what the operator configured) into [`TlsConfigs`] (the rustls
//!   server and client configurations);
//! - `reload`: [`TlsState`], the configurations in force, swapped whole when the files change;
//! - `peer_connector`: the TLS connector the peer links dial through.
//!
//! The invariant: only TLS 1.3 is offered, with the `ring` provider, and a configuration is
//! replaced only by one that loaded whole, so a half-written or wrong new file never takes a
//! working listener down.

mod configs;
mod error;
mod peer_connector;
mod pem_files;
mod reload;
mod validity;

pub use configs::{TlsConfigs, TlsFiles};
pub use error::TlsError;
pub(crate) use peer_connector::PeerConnector;
pub use reload::TlsState;
