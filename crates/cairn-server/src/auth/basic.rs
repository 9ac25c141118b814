//! The `authorization: Basic base64(user:password)` request header (RFC 7617), the way a
//! password travels with each call: a stock gRPC client (Python's grpcio among them) can send
//! it as call metadata with no code of Cairn's. Parsing only; the check is the authenticator's.

use base64::Engine;

/// Longest header value accepted, so a hostile header costs nothing to refuse.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// A user name and password from a Basic header. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user name.
    pub user: String,
    /// The password, as sent.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Parses a header value: `Basic ` (any case) then base64 of `user:password`, the user without
/// a colon.
///
/// # Errors
/// A short reason (never containing the value): too long, not Basic, not base64, no colon,
/// a user name that is not UTF-8 or is empty.
pub fn parse(value: &[u8]) -> Result<BasicCredentials, &'static str> {
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err("the authorization header is too long");
    }
    let text = std::str::from_utf8(value).map_err(|_| "the authorization header is not text")?;
    let (scheme, encoded) = text
        .trim()
        .split_once(' ')
        .ok_or("the authorization header is not `Basic <base64>`")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("only the Basic authorization scheme is accepted");
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the Basic credentials are not base64")?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or("the Basic credentials have no `user:password` colon")?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let user = std::str::from_utf8(user).map_err(|_| "the user name is not UTF-8")?;
    if user.is_empty() {
        return Err("the user name is empty");
    }
    Ok(BasicCredentials {
        user: user.to_string(),
        password: password.to_vec(),
    })
}

/// The header value for `user` and `password` (what clients send).
pub fn header_value(user: &str, password: &[u8]) -> String {
    let mut plain = Vec::with_capacity(user.len() + 1 + password.len());
    plain.extend_from_slice(user.as_bytes());
    plain.push(b':');
    plain.extend_from_slice(password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(plain)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_colons_in_the_password() {
        let value = header_value("alice", b"pa:ss word");
        let parsed = parse(value.as_bytes()).unwrap();
        assert_eq!(parsed.user, "alice");
        assert_eq!(parsed.password, b"pa:ss word");
        assert!(!format!("{parsed:?}").contains("pa:ss"));
        assert_eq!(parse(b"basic YWxpY2U6cHc=").unwrap().user, "alice");
    }

    #[test]
    fn malformed_values_are_refused_without_panicking() {
        let long = "a".repeat(MAX_AUTHORIZATION_BYTES + 1);
        for value in [
            &b""[..],
            b"Basic",
            b"Bearer abc",
            b"Basic !!!",
            b"Basic YWxpY2U=",
            b"Basic OnB3",
            b"\xff\xfe",
            long.as_bytes(),
        ] {
            assert!(
                parse(value).is_err(),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
