//! One input line of `cairn produce` as a record: a text line (`KEY SEP VALUE` with a key
//! separator, else the whole line as the value), or a JSON object (`--format json`):
//!
//! ```text
//! {"key": "k", "value": "v", "headers": {"h": "x"}, "partition": 0, "timestamp": 1767225600000}
//! ```
//!
//! - `value` is required; `null` is a tombstone (what deletes a key on a compacted topic).
//! - `key` may be absent or `null` (no key).
//! - `headers` is an object, or a list of `[key, value]` pairs or of `{"key": .., "value": ..}`
//!   objects (repeated keys and order kept); a header value may be `null`.
//! - `partition` (a partition number) overrides `--partition`; `timestamp` is milliseconds
//!   since the epoch or an ISO-8601 time.
//! - `topic` and `offset` are accepted and ignored, so `consume --format json` output can be
//!   produced again as it is; any other field is refused, so a misspelt `"vaule"` is not a
//!   silent tombstone.
//!
//! Keys, values and header values are read in `--key-encoding` / `--value-encoding`.

use bytes::Bytes;
use cairn_client::OutgoingRecord;
use serde_json::{Map, Value};

use crate::encoding::Encoding;
use crate::position::parse_iso8601;

/// How input lines become records.
#[derive(Clone, Debug)]
pub struct RecordInput {
    /// JSON objects instead of text lines.
    pub json: bool,
    /// For text lines: split at the first occurrence into key and value.
    pub key_separator: Option<Vec<u8>>,
    /// How keys are written in the input.
    pub key_encoding: Encoding,
    /// How values and header values are written in the input.
    pub value_encoding: Encoding,
}

impl RecordInput {
    /// The record `line` (without its line break) stands for; `None` for a line to skip (a
    /// blank line of JSON input).
    ///
    /// # Errors
    /// What is wrong with the line, without its number (the caller adds it).
    pub fn parse(&self, line: &[u8]) -> Result<Option<OutgoingRecord>, String> {
        if self.json {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return self.parse_json(line).map(Some);
        }
        let (key, value) = match &self.key_separator {
            Some(sep) => {
                let at = find(line, sep).ok_or_else(|| {
                    format!(
                        "no key separator {:?}",
                        String::from_utf8_lossy(sep).into_owned()
                    )
                })?;
                let (key, rest) = line.split_at(at);
                let value = rest.get(sep.len()..).unwrap_or_default();
                let key = self
                    .key_encoding
                    .decode(key)
                    .map_err(|why| format!("key: {why}"))?;
                (Some(key), value)
            }
            None => (None, line),
        };
        let value = self
            .value_encoding
            .decode(value)
            .map_err(|why| format!("value: {why}"))?;
        Ok(Some(OutgoingRecord {
            key,
            value: Some(value),
            ..OutgoingRecord::default()
        }))
    }

    fn parse_json(&self, line: &[u8]) -> Result<OutgoingRecord, String> {
        let object: Map<String, Value> = match serde_json::from_slice(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err("expected a JSON object".to_string()),
            Err(err) => return Err(format!("not JSON: {err}")),
        };
        let mut record = OutgoingRecord::default();
        let mut has_value = false;
        for (name, field) in &object {
            match name.as_str() {
                "key" => record.key = self.bytes("key", field, self.key_encoding)?,
                "value" => {
                    has_value = true;
                    record.value = self.bytes("value", field, self.value_encoding)?;
                }
                "headers" => record.headers = self.headers(field)?,
                "partition" => {
                    record.partition = Some(
                        field
                            .as_u64()
                            .and_then(|p| i32::try_from(p).ok())
                            .ok_or_else(|| {
                                format!("\"partition\" must be a partition number, not {field}")
                            })?,
                    );
                }
                "timestamp" => record.timestamp_ms = timestamp(field)?,
                "topic" | "offset" => {}
                other => {
                    return Err(format!(
                        "unknown field {other:?}: use key, value, headers, partition, timestamp"
                    ));
                }
            }
        }
        if !has_value {
            return Err("no \"value\" field (write \"value\": null for a tombstone)".to_string());
        }
        Ok(record)
    }

    fn bytes(
        &self,
        what: &str,
        field: &Value,
        encoding: Encoding,
    ) -> Result<Option<Bytes>, String> {
        match field {
            Value::Null => Ok(None),
            Value::String(text) => encoding
                .decode(text.as_bytes())
                .map(Some)
                .map_err(|why| format!("{what}: {why}")),
            other => Err(format!(
                "{what} must be a string or null, not {}",
                kind(other)
            )),
        }
    }

    fn headers(&self, field: &Value) -> Result<Vec<(String, Option<Bytes>)>, String> {
        let header = |key: &Value, value: &Value| -> Result<(String, Option<Bytes>), String> {
            let Value::String(key) = key else {
                return Err(format!("a header key must be a string, not {}", kind(key)));
            };
            let value = self.bytes(&format!("header {key:?}"), value, self.value_encoding)?;
            Ok((key.clone(), value))
        };
        match field {
            Value::Null => Ok(Vec::new()),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| header(&Value::String(k.clone()), v))
                .collect(),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Array(pair) => match pair.as_slice() {
                        [key, value] => header(key, value),
                        _ => Err("a header pair must be [key, value]".to_string()),
                    },
                    Value::Object(entry) => {
                        let key = entry.get("key").unwrap_or(&Value::Null);
                        let value = entry.get("value").unwrap_or(&Value::Null);
                        if entry.keys().any(|k| k != "key" && k != "value") {
                            return Err(
                                "a header object holds only \"key\" and \"value\"".to_string()
                            );
                        }
                        header(key, value)
                    }
                    other => Err(format!(
                        "a header must be [key, value] or {{\"key\", \"value\"}}, not {}",
                        kind(other)
                    )),
                })
                .collect(),
            other => Err(format!(
                "\"headers\" must be an object or a list, not {}",
                kind(other)
            )),
        }
    }
}

/// A JSON `timestamp`: milliseconds since the epoch (above 0, since 0 asks the producer for
/// the current time), or an ISO-8601 time.
fn timestamp(field: &Value) -> Result<i64, String> {
    let ms = match field {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("\"timestamp\" must be whole milliseconds, not {n}"))?,
        Value::String(text) => {
            parse_iso8601(text).map_err(|why| format!("\"timestamp\": {why}"))?
        }
        other => {
            return Err(format!(
                "\"timestamp\" must be milliseconds or an ISO-8601 string, not {}",
                kind(other)
            ));
        }
    };
    if ms <= 0 {
        return Err(format!(
            "\"timestamp\" must be after 1970-01-01T00:00:00Z, not {ms}"
        ));
    }
    Ok(ms)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn json(value: Encoding) -> RecordInput {
        RecordInput {
            json: true,
            key_separator: None,
            key_encoding: Encoding::Text,
            value_encoding: value,
        }
    }

    #[test]
    fn a_json_line_carries_every_field() {
        let record = json(Encoding::Base64)
            .parse(br#"{"key":"k","value":"/wA=","headers":[["h","AQ=="],["h",null]],"partition":2,"timestamp":"2026-01-01T00:00:00Z","topic":"x","offset":5}"#)
            .unwrap()
            .unwrap();
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&[0xff, 0][..]));
        assert_eq!(
            record.headers,
            vec![
                ("h".to_string(), Some(Bytes::from_static(&[1]))),
                ("h".to_string(), None)
            ]
        );
        assert_eq!(record.partition, Some(2));
        assert_eq!(record.timestamp_ms, 1_767_225_600_000);
    }

    #[test]
    fn null_is_a_tombstone_and_empty_is_a_value() {
        let input = json(Encoding::Text);
        let tombstone = input
            .parse(br#"{"key":"k","value":null}"#)
            .unwrap()
            .unwrap();
        assert_eq!(tombstone.value, None);
        let empty = input
            .parse(br#"{"value":"","headers":{"a":"1"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(empty.value, Some(Bytes::new()));
        assert_eq!(empty.key, None);
        assert_eq!(empty.headers.len(), 1);
        assert!(input.parse(b"  ").unwrap().is_none());
    }

    #[test]
    fn bad_json_lines_say_what_is_wrong() {
        let input = json(Encoding::Hex);
        for (line, why) in [
            (&br#"{"key":"k"}"#[..], "no \"value\" field"),
            (br#"{"vaule":"x"}"#, "unknown field \"vaule\""),
            (br#"{"value":"zz"}"#, "value: not hex"),
            (
                br#"{"value":1}"#,
                "value must be a string or null, not a number",
            ),
            (br#"{"value":null,"partition":-1}"#, "partition number"),
            (br#"{"value":null,"timestamp":0}"#, "after 1970"),
            (br#"{"value":null,"timestamp":"soon"}"#, "\"timestamp\""),
            (br#"{"value":null,"headers":[["a"]]}"#, "[key, value]"),
            (br#"{"value":null,"headers":"a=b"}"#, "object or a list"),
            (br#"[1]"#, "expected a JSON object"),
            (b"{nope", "not JSON"),
        ] {
            let err = input.parse(line).unwrap_err();
            assert!(
                err.contains(why),
                "{}: {err}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn text_lines_split_at_the_first_separator_and_keep_any_byte() {
        let input = RecordInput {
            json: false,
            key_separator: Some(b"::".to_vec()),
            key_encoding: Encoding::Text,
            value_encoding: Encoding::Text,
        };
        let record = input.parse(b"k\xff::v::w").unwrap().unwrap();
        assert_eq!(record.key.as_deref(), Some(&b"k\xff"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v::w"[..]));
        assert!(
            input
                .parse(b"no separator")
                .unwrap_err()
                .contains("no key separator")
        );
    }
}
