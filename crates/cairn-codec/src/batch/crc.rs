//! CRC-32C (Castagnoli) of a batch, computed as Kafka does: over `attributes` to the end, so the
//! broker can rewrite `baseOffset` and `partitionLeaderEpoch` without recomputing it.

use super::header::field;

/// The CRC-32C a batch should carry. `batch` is the whole batch; bytes before `attributes` are
/// excluded. Returns `None` if `batch` is shorter than the header.
pub fn batch_crc(batch: &[u8]) -> Option<u32> {
    batch.get(field::ATTRIBUTES..).map(crc32c::crc32c)
}
