//! [`ScramCredential`]: how a user's password is stored, SCRAM-SHA-256 style (RFC 5802, RFC 7677):
//! a random salt, an iteration count, and the StoredKey and ServerKey derived from the salted
//! password. The password itself is never stored, and neither is anything from which it can be
//! read back without a brute-force search through PBKDF2.
//!
//! The salt is chosen by whoever derives the credential (the proposing node); this module draws
//! no random numbers, so applying a committed credential stays deterministic. Verifying a
//! password repeats the derivation (PBKDF2 with the stored iteration count), which is slow on
//! purpose: callers that verify per request keep a cache of successful checks.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The one mechanism this build stores, by its IANA SASL name.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Fewest PBKDF2 iterations a credential may have (RFC 7677's minimum, Kafka's default).
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;

/// Most PBKDF2 iterations a credential may have, so one login cannot be made to cost seconds.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// Iterations for new credentials.
pub const DEFAULT_SCRAM_ITERATIONS: u32 = MIN_SCRAM_ITERATIONS;

/// Bytes of salt for new credentials (accepted: 8 to 64).
pub const SCRAM_SALT_BYTES: usize = 16;

const SALT_BYTES_MIN: usize = 8;
const SALT_BYTES_MAX: usize = 64;
const KEY_BYTES: usize = 32;

/// One user's SCRAM-SHA-256 credential. `Debug` shows the mechanism and iterations only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramCredential {
    /// Always [`SCRAM_SHA_256`] today; kept so another mechanism can be added beside it.
    pub mechanism: String,
    /// The salt, as lowercase hex.
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`, as lowercase hex.
    #[serde(with = "hex_bytes")]
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`, as lowercase hex.
    #[serde(with = "hex_bytes")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs: with the salt, a StoredKey is an offline-guessing target.
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the credential of `password` with `salt` and `iterations` (RFC 5802 section 3).
    /// The caller picks a fresh random salt per credential.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramCredential {
        let salted = salted_password(password, salt, iterations);
        ScramCredential {
            mechanism: SCRAM_SHA_256.to_string(),
            salt: salt.to_vec(),
            iterations,
            stored_key: stored_key(&salted).to_vec(),
            server_key: hmac(&salted, b"Server Key").to_vec(),
        }
    }

    /// True if `password` is the one this credential was derived from. Costs one PBKDF2 run;
    /// the comparison takes the same time wherever the keys differ.
    pub fn verify(&self, password: &[u8]) -> bool {
        let salted = salted_password(password, &self.salt, self.iterations);
        constant_time_eq(&stored_key(&salted), &self.stored_key)
    }

    /// Checks the shape: the mechanism, the iteration bounds, the salt and key lengths.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.mechanism != SCRAM_SHA_256 {
            return Err(format!(
                "mechanism {:?} is not supported (only {SCRAM_SHA_256})",
                self.mechanism
            ));
        }
        if !(MIN_SCRAM_ITERATIONS..=MAX_SCRAM_ITERATIONS).contains(&self.iterations) {
            return Err(format!(
                "iterations {} not in {MIN_SCRAM_ITERATIONS}..={MAX_SCRAM_ITERATIONS}",
                self.iterations
            ));
        }
        if !(SALT_BYTES_MIN..=SALT_BYTES_MAX).contains(&self.salt.len()) {
            return Err(format!(
                "salt of {} bytes not in {SALT_BYTES_MIN}..={SALT_BYTES_MAX}",
                self.salt.len()
            ));
        }
        if self.stored_key.len() != KEY_BYTES || self.server_key.len() != KEY_BYTES {
            return Err(format!("keys must be {KEY_BYTES} bytes"));
        }
        Ok(())
    }
}

fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

fn stored_key(salted: &[u8]) -> [u8; KEY_BYTES] {
    Sha256::digest(hmac(salted, b"Client Key")).into()
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; KEY_BYTES] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bytes as a lowercase hex string in JSON (readable in a snapshot, unlike an array of numbers).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(serde::de::Error::custom("hex of odd length"));
        }
        digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc7677_example_gives_its_server_signature() {
        // RFC 7677 section 3: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096
        // iterations; its ServerSignature (v=6rriTRBi...) is HMAC(ServerKey, AuthMessage).
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let credential = ScramCredential::derive(b"pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,\
            i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        assert_eq!(
            hex(&hmac(&credential.server_key, auth_message.as_bytes())),
            "eabae24d1062db75a9451ff0b6ea7e98c8546549ff741e672d3251b2397de46e"
        );
        assert!(credential.verify(b"pencil"));
        assert!(!credential.verify(b"pencil "));
        assert!(!credential.verify(b""));
        assert_eq!(credential.check(), Ok(()));
    }

    #[test]
    fn credential_keeps_no_password_and_debug_shows_no_key() {
        let credential = ScramCredential::derive(b"hunter2", b"saltsalt", 4096);
        let json = serde_json::to_string(&credential).unwrap();
        assert!(!json.contains("hunter2"));
        let debug = format!("{credential:?}");
        assert!(!debug.contains("stored_key") && !debug.contains(&hex(&credential.salt)));
        assert_eq!(
            serde_json::from_str::<ScramCredential>(&json).unwrap(),
            credential
        );
    }

    #[test]
    fn same_password_different_salt_gives_different_keys() {
        let a = ScramCredential::derive(b"pw", b"salt-one", 4096);
        let b = ScramCredential::derive(b"pw", b"salt-two", 4096);
        assert_ne!(a.stored_key, b.stored_key);
        assert!(a.verify(b"pw") && b.verify(b"pw"));
    }

    #[test]
    fn bad_shapes_are_refused_by_check() {
        let good = ScramCredential::derive(b"pw", b"saltsalt", 4096);
        let mut few = good.clone();
        few.iterations = 4095;
        let mut short_salt = good.clone();
        short_salt.salt = vec![1; 4];
        let mut other = good.clone();
        other.mechanism = "PLAIN".into();
        let mut short_key = good;
        short_key.stored_key.pop();
        for bad in [few, short_salt, other, short_key] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_hex_does_not_decode() {
        for text in [
            r#"{"mechanism":"SCRAM-SHA-256","salt":"abc","iterations":4096,"stored_key":"","server_key":""}"#,
            r#"{"mechanism":"SCRAM-SHA-256","salt":"zz","iterations":4096,"stored_key":"","server_key":""}"#,
        ] {
            assert!(serde_json::from_str::<ScramCredential>(text).is_err());
        }
    }
}
