//! How `consume` and `replay` print a record: its value on a line (text), one JSON object per
//! line, or a `--template`; keys, values and header values in their `--*-encoding`.
//!
//! JSON output never loses a byte: a field that is not UTF-8 under the `text` encoding is an
//! error naming the record and the flag that carries it (`base64` or `hex`). A null key or
//! value is JSON `null` (an empty one is `""`), and `(null)` in text and template output.

use std::io::Write;

use bytes::Bytes;
use cairn_client::ConsumedRecord;
use serde::Serialize;

use crate::encoding::Encoding;
use crate::template::{NULL_TEXT, Template};
use crate::topic::Format;

/// How records are printed.
#[derive(Clone, Debug)]
pub struct RecordOutput {
    /// Text or JSON (ignored when `template` is set).
    pub format: Format,
    /// Overrides `format` when set.
    pub template: Option<Template>,
    /// How keys are written.
    pub key_encoding: Encoding,
    /// How values and header values are written.
    pub value_encoding: Encoding,
}

impl RecordOutput {
    /// `format` with text encodings and no template (as `replay` prints).
    pub fn plain(format: Format) -> RecordOutput {
        RecordOutput {
            format,
            template: None,
            key_encoding: Encoding::Text,
            value_encoding: Encoding::Text,
        }
    }

    /// Prints one record and flushes, so a pipe or file sees each record as soon as it is read.
    ///
    /// # Errors
    /// A failed write, or (JSON with text encoding) a field that is not UTF-8.
    pub fn print(&self, out: &mut impl Write, record: &ConsumedRecord) -> anyhow::Result<()> {
        if let Some(template) = &self.template {
            template.write(out, record, self.key_encoding, self.value_encoding)?;
        } else {
            match self.format {
                Format::Text => {
                    match &record.value {
                        Some(value) => out.write_all(&self.value_encoding.encode_raw(value))?,
                        None => out.write_all(NULL_TEXT)?,
                    }
                    out.write_all(b"\n")?;
                }
                Format::Json => {
                    let json = self.json(record)?;
                    serde_json::to_writer(&mut *out, &json)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        out.flush()?;
        Ok(())
    }

    fn json<'a>(&self, record: &'a ConsumedRecord) -> anyhow::Result<RecordJson<'a>> {
        let field = |what: &str, bytes: &Option<Bytes>, encoding: Encoding, flag: &str| {
            bytes
                .as_ref()
                .map(|b| encoding.encode_string(b))
                .transpose()
                .map_err(|_| {
                    crate::usage_error::usage(format!(
                        "{what} of the record at {}/{} offset {} is not UTF-8, which JSON text cannot carry: use {flag} base64 or hex",
                        record.topic, record.partition, record.offset
                    ))
                })
        };
        let headers = record
            .headers
            .iter()
            .map(|(key, value)| {
                Ok(HeaderJson {
                    key,
                    value: field(
                        &format!("header {key:?}"),
                        value,
                        self.value_encoding,
                        "--value-encoding",
                    )?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(RecordJson {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp_ms,
            key: field("the key", &record.key, self.key_encoding, "--key-encoding")?,
            value: field(
                "the value",
                &record.value,
                self.value_encoding,
                "--value-encoding",
            )?,
            headers,
        })
    }
}

/// The JSON shape of a consumed record; `produce --format json` reads it back.
#[derive(Serialize)]
struct RecordJson<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<HeaderJson<'a>>,
}

#[derive(Serialize)]
struct HeaderJson<'a> {
    key: &'a str,
    value: Option<String>,
}
