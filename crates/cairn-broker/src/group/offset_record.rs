//! The records of `__consumer_offsets`, in Kafka's own layout so Kafka tooling can read them:
//! key `OffsetCommitKey` version 1 (group, topic, partition) and value `OffsetCommitValue`
//! version 3 (offset, leader epoch, metadata, commit time), all big-endian with `int16`-length
//! strings. A null value is a tombstone: the group no longer has an offset for that partition,
//! and compaction eventually drops both.
//!
//! Decoding is total: any byte string yields a record or an [`OffsetRecordError`], never a
//! panic, because the topic's bytes come from disk.

use super::assignor::TopicPartition;

/// The key version Cairn writes (Kafka's offset-commit key; versions 0 and 1 share a layout).
const KEY_VERSION: i16 = 1;
/// Key version of Kafka's group-metadata records, which Cairn does not write and skips.
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// The value version Cairn writes.
const VALUE_VERSION: i16 = 3;
/// Most bytes of metadata kept with a committed offset (Kafka's `offset.metadata.max.bytes`).
pub const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// The key of one committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetKey {
    /// The group.
    pub group: String,
    /// The topic and partition.
    pub partition: TopicPartition,
}

/// A committed offset as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset the group consumes.
    pub offset: i64,
    /// The leader epoch of the record before it, or -1 when unknown.
    pub leader_epoch: i32,
    /// Text committed with the offset.
    pub metadata: String,
    /// When it was committed (broker time, milliseconds since the Unix epoch).
    pub commit_timestamp_ms: i64,
}

/// Why a stored record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffsetRecordError {
    /// The record ends before a field does.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A string field is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A version Cairn does not read.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Key or value.
        what: &'static str,
        /// The version found.
        version: i16,
    },
    /// Bytes follow the last field.
    #[error("{0} has trailing bytes")]
    Trailing(&'static str),
    /// A negative partition.
    #[error("negative partition {0}")]
    NegativePartition(i32),
}

/// What a key in `__consumer_offsets` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodedKey {
    /// A committed offset's key.
    Offset(OffsetKey),
    /// Kafka's group metadata, which Cairn neither writes nor needs.
    GroupMetadata,
}

/// Encodes a key.
pub fn encode_key(key: &OffsetKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + key.group.len() + key.partition.topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_string(&mut out, &key.group);
    put_string(&mut out, &key.partition.topic);
    out.extend_from_slice(&(key.partition.partition as i32).to_be_bytes());
    out
}

/// Encodes a value.
pub fn encode_value(value: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + value.metadata.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&value.offset.to_be_bytes());
    out.extend_from_slice(&value.leader_epoch.to_be_bytes());
    put_string(&mut out, &value.metadata);
    out.extend_from_slice(&value.commit_timestamp_ms.to_be_bytes());
    out
}

/// Decodes a key.
///
/// # Errors
/// [`OffsetRecordError`] for bytes that are not a key Cairn reads.
pub fn decode_key(bytes: &[u8]) -> Result<DecodedKey, OffsetRecordError> {
    let mut cursor = Cursor { rest: bytes };
    let version = cursor.i16("key version")?;
    match version {
        0 | KEY_VERSION => {}
        GROUP_METADATA_KEY_VERSION => return Ok(DecodedKey::GroupMetadata),
        other => {
            return Err(OffsetRecordError::UnsupportedVersion {
                what: "key",
                version: other,
            });
        }
    }
    let group = cursor.string("group")?;
    let topic = cursor.string("topic")?;
    let partition = cursor.i32("partition")?;
    cursor.finish("key")?;
    let partition =
        u32::try_from(partition).map_err(|_| OffsetRecordError::NegativePartition(partition))?;
    Ok(DecodedKey::Offset(OffsetKey {
        group,
        partition: TopicPartition { topic, partition },
    }))
}

/// Decodes a value.
///
/// # Errors
/// [`OffsetRecordError`] for bytes that are not a version-3 value.
pub fn decode_value(bytes: &[u8]) -> Result<OffsetValue, OffsetRecordError> {
    let mut cursor = Cursor { rest: bytes };
    let version = cursor.i16("value version")?;
    if version != VALUE_VERSION {
        return Err(OffsetRecordError::UnsupportedVersion {
            what: "value",
            version,
        });
    }
    let value = OffsetValue {
        offset: cursor.i64("offset")?,
        leader_epoch: cursor.i32("leader epoch")?,
        metadata: cursor.string("metadata")?,
        commit_timestamp_ms: cursor.i64("commit timestamp")?,
    };
    cursor.finish("value")?;
    Ok(value)
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    // Callers bound every string (ids 255 characters, metadata 4096 bytes), so this fits.
    let len = i16::try_from(text.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..len as usize]);
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], OffsetRecordError> {
        if self.rest.len() < n {
            return Err(OffsetRecordError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, OffsetRecordError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, OffsetRecordError> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4, what)?);
        Ok(i32::from_be_bytes(buf))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, OffsetRecordError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_be_bytes(buf))
    }

    fn string(&mut self, what: &'static str) -> Result<String, OffsetRecordError> {
        let len = self.i16(what)?;
        // Kafka writes -1 for a null string; Cairn never stores one, so it reads as empty.
        let len = usize::try_from(len).unwrap_or(0);
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| OffsetRecordError::NotUtf8(what))
    }

    fn finish(&self, what: &'static str) -> Result<(), OffsetRecordError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(OffsetRecordError::Trailing(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(group: &str, topic: &str, partition: u32) -> OffsetKey {
        OffsetKey {
            group: group.to_string(),
            partition: TopicPartition {
                topic: topic.to_string(),
                partition,
            },
        }
    }

    #[test]
    fn key_layout_is_kafkas() {
        let bytes = encode_key(&key("g", "t", 3));
        assert_eq!(bytes, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(
            decode_key(&bytes).expect("decodes"),
            DecodedKey::Offset(key("g", "t", 3))
        );
    }

    #[test]
    fn group_metadata_keys_are_recognised_and_unknown_versions_refused() {
        assert_eq!(
            decode_key(&[0, 2, 0, 1, b'g']).expect("decodes"),
            DecodedKey::GroupMetadata
        );
        assert!(matches!(
            decode_key(&[0, 9]),
            Err(OffsetRecordError::UnsupportedVersion { version: 9, .. })
        ));
    }

    proptest! {
        #[test]
        fn keys_and_values_round_trip(
            group in "[a-z -]{1,40}", topic in "[a-z.]{1,40}", partition in 0u32..100_000,
            offset in any::<i64>(), epoch in any::<i32>(), metadata in ".{0,50}", ts in any::<i64>(),
        ) {
            let k = key(&group, &topic, partition);
            prop_assert_eq!(decode_key(&encode_key(&k)).expect("decodes"), DecodedKey::Offset(k));
            let v = OffsetValue { offset, leader_epoch: epoch, metadata, commit_timestamp_ms: ts };
            prop_assert_eq!(decode_value(&encode_value(&v)).expect("decodes"), v);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_key(&bytes);
            let _ = decode_value(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(cut in 0usize..29) {
            let bytes = encode_value(&OffsetValue {
                offset: 7, leader_epoch: -1, metadata: "abc".into(), commit_timestamp_ms: 1,
            });
            prop_assume!(cut < bytes.len());
            prop_assert!(decode_value(&bytes[..cut]).is_err());
        }
    }
}
