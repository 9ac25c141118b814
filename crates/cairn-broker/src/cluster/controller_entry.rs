//! A controller command as a Raft entry: a record batch of one record whose value is the
//! command's versioned JSON (`cairn_controller::Command::encode`). The metadata log is therefore
//! an ordinary segment log (`__cluster_metadata`), readable with the same tools as any topic, as
//! Kafka's KRaft keeps its metadata in a topic-shaped log.

use bytes::Bytes;
use cairn_codec::batch::{Batch, BatchBuilder, Compression, RecordInput};
use cairn_controller::Command;
use cairn_raft::BatchData;

/// Why an entry of the metadata log is not a command.
#[derive(Debug, thiserror::Error)]
pub enum ControllerEntryError {
    /// The batch bytes are not a valid record batch.
    #[error("controller entry is not a record batch: {0}")]
    Batch(String),
    /// The batch does not hold exactly one record with a value.
    #[error("controller entry holds {0} records; exactly one with a value expected")]
    Shape(usize),
    /// The record's value is not a command this version reads.
    #[error("controller entry: {0}")]
    Command(#[from] cairn_controller::ControllerError),
}

/// The largest batch a controller entry may decompress to; commands are a few KiB.
const MAX_ENTRY_BYTES: usize = 16 << 20;

/// Encodes `command` as the payload of a Raft entry.
///
/// # Errors
/// [`ControllerEntryError::Batch`] if the encoder refuses (it does not for a single record of a
/// JSON value).
pub fn encode_command(command: &Command, now_ms: i64) -> Result<BatchData, ControllerEntryError> {
    let value = command.encode();
    let mut builder = BatchBuilder::new(Compression::None);
    builder
        .push(&RecordInput {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp_ms: now_ms,
        })
        .map_err(|e| ControllerEntryError::Batch(e.to_string()))?;
    let bytes = builder
        .build()
        .map_err(|e| ControllerEntryError::Batch(e.to_string()))?;
    Ok(BatchData(bytes))
}

/// Decodes the command an entry's batch holds.
///
/// # Errors
/// [`ControllerEntryError`] naming what is wrong; never panics on any bytes.
pub fn decode_command(batch: &Bytes) -> Result<Command, ControllerEntryError> {
    let batch =
        Batch::validate(batch.clone()).map_err(|e| ControllerEntryError::Batch(e.to_string()))?;
    let records = batch
        .records(MAX_ENTRY_BYTES)
        .map_err(|e| ControllerEntryError::Batch(e.to_string()))?;
    let mut values = Vec::with_capacity(1);
    for record in records.iter() {
        let record = record.map_err(|e| ControllerEntryError::Batch(e.to_string()))?;
        values.push(record.value);
    }
    match values.as_slice() {
        [Some(value)] => Ok(Command::decode(value)?),
        other => Err(ControllerEntryError::Shape(other.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_round_trips_through_a_batch() {
        let command = Command::DeleteTopic {
            name: "orders".to_string(),
        };
        let BatchData(bytes) = encode_command(&command, 1_700_000_000_000).expect("encodes");
        assert_eq!(decode_command(&bytes).expect("decodes"), command);
    }

    #[test]
    fn damaged_or_foreign_batches_are_typed_errors() {
        let BatchData(bytes) = encode_command(
            &Command::DeleteTopic {
                name: "orders".to_string(),
            },
            0,
        )
        .expect("encodes");
        let mut flipped = bytes.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(decode_command(&Bytes::from(flipped)).is_err());
        assert!(decode_command(&Bytes::from_static(b"not a batch")).is_err());
        for len in 0..bytes.len() {
            assert!(decode_command(&bytes.slice(..len)).is_err());
        }
    }
}
