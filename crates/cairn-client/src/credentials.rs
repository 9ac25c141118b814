//! [`Credentials`]: a user name and password the client sends with every call, as the
//! `authorization: Basic base64(user:password)` header the broker's authentication layer reads
//! (the same header a stock gRPC client can send). The broker accepts passwords only over TLS,
//! or on a loopback-only listener. `Debug` never shows the password.

use std::sync::Arc;

use base64::Engine;
use http::HeaderValue;

/// A user and password, sent on every call of a client built with them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    /// The ready header value: built once, cloned per call.
    header: Arc<HeaderValue>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials of `user` with `password`.
    ///
    /// # Errors
    /// [`crate::ClientError::InvalidArgument`] for an empty user name or one with a colon.
    pub fn new(user: &str, password: &[u8]) -> Result<Credentials, crate::ClientError> {
        if user.is_empty() || user.contains(':') {
            return Err(crate::ClientError::InvalidArgument(format!(
                "user name {user:?} must be non-empty and hold no colon"
            )));
        }
        let mut plain = Vec::with_capacity(user.len() + 1 + password.len());
        plain.extend_from_slice(user.as_bytes());
        plain.push(b':');
        plain.extend_from_slice(password);
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(plain)
        );
        let mut header = HeaderValue::from_str(&value)
            .map_err(|e| crate::ClientError::InvalidArgument(e.to_string()))?;
        header.set_sensitive(true);
        Ok(Credentials {
            user: user.to_string(),
            header: Arc::new(header),
        })
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The `authorization` header value.
    pub(crate) fn header(&self) -> HeaderValue {
        (*self.header).clone()
    }
}

/// Adds the `authorization` header to each tonic call when credentials are set.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallCredentials(pub(crate) Option<Credentials>);

impl tonic::service::Interceptor for CallCredentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(credentials) = &self.0 {
            let value =
                tonic::metadata::AsciiMetadataValue::try_from(credentials.header().as_bytes())
                    .map_err(|_| tonic::Status::internal("credentials are not ASCII"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}
