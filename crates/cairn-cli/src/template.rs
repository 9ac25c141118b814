//! `consume --template`: one record's text output from a pattern, in kcat's style:
//!
//! | code | field |
//! |------|-------|
//! | `%t` | topic |
//! | `%p` | partition |
//! | `%o` | offset |
//! | `%T` | timestamp, ms since the epoch |
//! | `%k` `%v` | key, value (in `--key-encoding` / `--value-encoding`) |
//! | `%K` `%S` | key length, value size in bytes (-1 for null) |
//! | `%h` | headers, `k=v` joined by `,` (values in the value encoding) |
//! | `%%` | a `%` |
//!
//! and the escapes `\n`, `\t`, `\r`, `\\`. A null key or value prints as `(null)` (`%K`/`%S`
//! tell it from the text "(null)"). The pattern is checked when the command starts: an unknown
//! code is a usage error, never a literal surprise in the middle of the output.

use std::io::Write;

use bytes::Bytes;
use cairn_client::ConsumedRecord;

use crate::encoding::Encoding;

/// What a null key, value or header value prints as in text and template output.
pub const NULL_TEXT: &[u8] = b"(null)";

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    KeyLength,
    ValueSize,
    Headers,
}

/// A checked template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    /// An unknown `%` code or `\` escape, or one cut off at the end, with its position.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '%' => {
                    let code = chars.next().map(|(_, c)| c);
                    let piece = match code {
                        Some('%') => {
                            literal.push(b'%');
                            continue;
                        }
                        Some('t') => Piece::Topic,
                        Some('p') => Piece::Partition,
                        Some('o') => Piece::Offset,
                        Some('T') => Piece::Timestamp,
                        Some('k') => Piece::Key,
                        Some('v') => Piece::Value,
                        Some('K') => Piece::KeyLength,
                        Some('S') => Piece::ValueSize,
                        Some('h') => Piece::Headers,
                        Some(other) => {
                            return Err(format!(
                                "unknown code %{other} at position {at}; use %t %p %o %T %k %v %K %S %h or %%"
                            ));
                        }
                        None => return Err(format!("a lone % at position {at}; write %% for a %")),
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                }
                '\\' => {
                    let byte = match chars.next().map(|(_, c)| c) {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('r') => b'\r',
                        Some('\\') => b'\\',
                        Some(other) => {
                            return Err(format!(
                                "unknown escape \\{other} at position {at}; use \\n \\t \\r or \\\\"
                            ));
                        }
                        None => {
                            return Err(format!("a lone \\ at position {at}; write \\\\ for a \\"));
                        }
                    };
                    literal.push(byte);
                }
                other => {
                    let mut buf = [0_u8; 4];
                    literal.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    /// Writes `record` through the template.
    ///
    /// # Errors
    /// A failed write.
    pub fn write(
        &self,
        out: &mut impl Write,
        record: &ConsumedRecord,
        key_encoding: Encoding,
        value_encoding: Encoding,
    ) -> std::io::Result<()> {
        let field = |out: &mut dyn Write, bytes: &Option<Bytes>, encoding: Encoding| match bytes {
            Some(bytes) => out.write_all(&encoding.encode_raw(bytes)),
            None => out.write_all(NULL_TEXT),
        };
        let length = |bytes: &Option<Bytes>| {
            bytes
                .as_ref()
                .map_or(-1, |b| i64::try_from(b.len()).unwrap_or(i64::MAX))
        };
        for piece in &self.pieces {
            match piece {
                Piece::Literal(bytes) => out.write_all(bytes)?,
                Piece::Topic => out.write_all(record.topic.as_bytes())?,
                Piece::Partition => write!(out, "{}", record.partition)?,
                Piece::Offset => write!(out, "{}", record.offset)?,
                Piece::Timestamp => write!(out, "{}", record.timestamp_ms)?,
                Piece::Key => field(out, &record.key, key_encoding)?,
                Piece::Value => field(out, &record.value, value_encoding)?,
                Piece::KeyLength => write!(out, "{}", length(&record.key))?,
                Piece::ValueSize => write!(out, "{}", length(&record.value))?,
                Piece::Headers => {
                    for (i, (key, value)) in record.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(key.as_bytes())?;
                        out.write_all(b"=")?;
                        field(out, value, value_encoding)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn record() -> ConsumedRecord {
        ConsumedRecord {
            topic: "orders".to_string(),
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k\xff")),
            value: None,
            headers: vec![
                ("a".to_string(), Some(Bytes::from_static(b"1"))),
                ("b".to_string(), None),
            ],
        }
    }

    fn render(template: &str, key: Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        Template::parse(template)
            .unwrap()
            .write(&mut out, &record(), key, Encoding::Text)
            .unwrap();
        out
    }

    #[test]
    fn every_code_and_escape_renders() {
        assert_eq!(
            render("%t/%p@%o %T %k=>%v [%K %S] {%h} 100%%\\n", Encoding::Hex),
            b"orders/2@41 1700000000000 6bff=>(null) [2 -1] {a=1,b=(null)} 100%\n"
        );
        assert_eq!(render("%k|\\t\\\\", Encoding::Text), b"k\xff|\t\\");
    }

    #[test]
    fn unknown_codes_and_escapes_are_refused_with_their_position() {
        for (text, why) in [
            ("%x", "unknown code %x at position 0"),
            ("ab%", "lone % at position 2"),
            ("\\q", "unknown escape \\q"),
            ("x\\", "lone \\ at position 1"),
        ] {
            let err = Template::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
