//! Kafka's RecordBatch v2, byte for byte: the header, records, compression, CRC-32C, the
//! encoder, the zero-copy validator, Cairn's meta entries (control batches with no records), and
//! the one walk of records as a consumer sees them (`consumer_view`).
//! Normative layout: `segments-format.md`, "Record batches".
//!
//! Nothing in this module does I/O or knows about segments; every function is pure over bytes.

mod compression;
mod consumer_view;
mod crc;
mod decode;
mod encode;
mod error;
mod header;
mod record;
mod varint;

pub use compression::{Compression, MAX_DECOMPRESSED_BATCH_BYTES, compress, decompress};
pub use consumer_view::{ConsumerBatch, ConsumerRecord, ConsumerRecords, WalkPosition};
pub use crc::batch_crc;
pub use decode::{Batch, MAX_BATCH_BYTES, Records, frame_len, rewrite_assigned_fields};
pub use encode::{
    BatchBuilder, HandBatch, ProducerFields, encode_hand_batch, encode_meta_entry,
    rewrite_producer_fields,
};
pub use error::BatchError;
pub use header::{
    Attributes, BATCH_HEADER_BYTES, BatchHeader, LOG_OVERHEAD_BYTES, MAGIC_V2, MIN_BATCH_LENGTH,
    field,
};
pub use record::{Headers, Record, RecordInput, RecordIter, read_record};
pub use varint::{read_varint, read_varlong, write_varint, write_varlong};

pub use decode::is_meta_header;

#[cfg(test)]
mod tests;
