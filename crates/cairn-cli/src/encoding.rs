//! How keys, values and header values are written on the command line's input and output:
//! `--key-encoding` and `--value-encoding`, each `text`, `base64` or `hex`. Header values follow
//! the value encoding; header keys are always text (the API makes them strings).
//!
//! The rule that keeps output honest: `base64` and `hex` carry any bytes. `text` writes the
//! bytes as they are where the output is raw (text and template output), and in JSON output,
//! which can only hold UTF-8 strings, a non-UTF-8 key or value is an error naming the record and
//! the flag to use, never a silently replaced byte.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use clap::ValueEnum;

/// One field's encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// The bytes as they are (UTF-8 in JSON).
    #[default]
    Text,
    /// Standard base64 with padding (RFC 4648).
    Base64,
    /// Two lowercase hex digits per byte (either case is read).
    Hex,
}

impl Encoding {
    /// The bytes `text` stands for.
    ///
    /// # Errors
    /// Text that is not valid in this encoding, with the reason.
    pub fn decode(self, text: &[u8]) -> Result<Bytes, String> {
        match self {
            Encoding::Text => Ok(Bytes::copy_from_slice(text)),
            Encoding::Base64 => STANDARD
                .decode(text)
                .map(Bytes::from)
                .map_err(|err| format!("not base64: {err}")),
            Encoding::Hex => decode_hex(text).map(Bytes::from),
        }
    }

    /// `bytes` written in this encoding, for raw output (text stays as it is).
    pub fn encode_raw(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Encoding::Text => bytes.to_vec(),
            Encoding::Base64 => STANDARD.encode(bytes).into_bytes(),
            Encoding::Hex => encode_hex(bytes).into_bytes(),
        }
    }

    /// `bytes` written in this encoding as a string, for JSON output.
    ///
    /// # Errors
    /// With `text`, bytes that are not UTF-8.
    pub fn encode_string(self, bytes: &[u8]) -> Result<String, std::str::Utf8Error> {
        match self {
            Encoding::Text => std::str::from_utf8(bytes).map(str::to_string),
            Encoding::Base64 => Ok(STANDARD.encode(bytes)),
            Encoding::Hex => Ok(encode_hex(bytes)),
        }
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn decode_hex(text: &[u8]) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("not hex: an odd number of digits ({})", text.len()));
    }
    let digit = |at: usize, c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or_else(|| format!("not hex: {:?} at position {at}", char::from(c)))
    };
    text.chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| match pair {
            [high, low] => Ok(digit(2 * i, *high)? << 4 | digit(2 * i + 1, *low)?),
            _ => Err("not hex".to_string()),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_in_every_encoding() {
        let all: Vec<u8> = (0..=255).collect();
        for encoding in [Encoding::Text, Encoding::Base64, Encoding::Hex] {
            let written = encoding.encode_raw(&all);
            assert_eq!(encoding.decode(&written).unwrap(), all, "{encoding:?}");
        }
        assert_eq!(Encoding::Hex.encode_raw(&[0, 0xab, 0xff]), b"00abff");
        assert_eq!(
            Encoding::Hex.decode(b"00ABff").unwrap(),
            vec![0, 0xab, 0xff]
        );
        assert_eq!(Encoding::Base64.encode_string(&[0xff, 0]).unwrap(), "/wA=");
    }

    #[test]
    fn text_in_json_refuses_what_is_not_utf8() {
        assert!(Encoding::Text.encode_string(&[0xff]).is_err());
        assert_eq!(Encoding::Text.encode_string("é".as_bytes()).unwrap(), "é");
    }

    #[test]
    fn bad_input_says_why() {
        assert!(
            Encoding::Hex
                .decode(b"abc")
                .unwrap_err()
                .contains("odd number")
        );
        assert!(
            Encoding::Hex
                .decode(b"zz")
                .unwrap_err()
                .contains("'z' at position 0")
        );
        assert!(
            Encoding::Base64
                .decode(b"***")
                .unwrap_err()
                .contains("not base64")
        );
    }
}
