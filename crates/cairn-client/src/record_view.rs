//! [`RecordView`]: one consumed record read in place, whichever way it was fetched. Key, value
//! and headers borrow the fetched bytes (a raw batch's records section, or the broker's decoded
//! record), so handing a record to the caller allocates nothing; [`RecordView::to_record`]
//! makes an owned [`ConsumedRecord`] that shares those bytes instead of copying them.
//!
//! It does not parse anything: `batches` and the replay cursor build views from records they
//! have already checked.

use bytes::Bytes;
use cairn_codec::batch::Headers;
use cairn_proto::v1 as api;

use crate::consumer::ConsumedRecord;

/// A consumed record, borrowed from the fetched data it came in.
///
/// The fields are public for reading; views are only made by this crate.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// Create (or log append) time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The headers, in order.
    pub headers: RecordHeaders<'a>,
    /// What the slices point into, so that `to_record` can share rather than copy them.
    pub(crate) backing: Backing<'a>,
}

/// Where a view's slices live.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backing<'a> {
    /// A raw batch's (decompressed) records section: every slice is inside it.
    Batch(&'a Bytes),
    /// A record the broker decoded.
    Decoded(&'a api::Record),
}

impl RecordView<'_> {
    /// The key and value together, in bytes (what progress reports count as payload).
    pub fn payload_bytes(&self) -> usize {
        self.key.map_or(0, <[u8]>::len) + self.value.map_or(0, <[u8]>::len)
    }

    /// An owned copy of this record for `topic`. Key, value and header values share the
    /// fetched buffer (a reference count, not a copy); header keys are decoded as UTF-8,
    /// lossily, as the decoded fetch path does.
    pub fn to_record(&self, topic: &str) -> ConsumedRecord {
        let (key, value) = match self.backing {
            Backing::Batch(data) => (
                self.key.map(|k| data.slice_ref(k)),
                self.value.map(|v| data.slice_ref(v)),
            ),
            Backing::Decoded(record) => (record.key.clone(), record.value.clone()),
        };
        let headers = match self.backing {
            Backing::Batch(data) => self
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        v.map(|v| data.slice_ref(v)),
                    )
                })
                .collect(),
            Backing::Decoded(record) => record
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        };
        ConsumedRecord {
            topic: topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key,
            value,
            headers,
        }
    }
}

/// The headers of a [`RecordView`], iterated in place.
#[derive(Clone, Copy, Debug)]
pub struct RecordHeaders<'a>(HeadersInner<'a>);

#[derive(Clone, Copy, Debug)]
enum HeadersInner<'a> {
    Batch(Headers<'a>),
    Decoded(&'a [api::Header]),
}

impl<'a> RecordHeaders<'a> {
    pub(crate) fn from_batch(headers: Headers<'a>) -> RecordHeaders<'a> {
        RecordHeaders(HeadersInner::Batch(headers))
    }

    pub(crate) fn from_decoded(headers: &'a [api::Header]) -> RecordHeaders<'a> {
        RecordHeaders(HeadersInner::Decoded(headers))
    }

    /// How many headers the record has.
    pub fn len(&self) -> usize {
        match self.0 {
            HeadersInner::Batch(headers) => headers.len(),
            HeadersInner::Decoded(headers) => headers.len(),
        }
    }

    /// True when the record has no headers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates `(key, value)` pairs in order; a null value is `None`.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + use<'a> {
        // One of the two is empty; chaining them keeps the iterator type nameable-free without
        // boxing.
        let (batch, decoded) = match self.0 {
            HeadersInner::Batch(headers) => (Some(headers.iter()), None),
            HeadersInner::Decoded(headers) => (None, Some(headers.iter())),
        };
        batch.into_iter().flatten().chain(
            decoded
                .into_iter()
                .flatten()
                .map(|h| (h.key.as_bytes(), h.value.as_deref())),
        )
    }
}
