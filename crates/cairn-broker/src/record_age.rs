//! The age of the next record a consumer group has not consumed: the figure behind "lag in
//! seconds". Lag in records says how far behind a group is; the age says how stale what it
//! acts on is, which is what an operator alerts on when producers are bursty.
//!
//! It costs one read of one batch per call (the batch holding the offset, decoded to find that
//! record's timestamp), so a caller bounds the calls it makes, for example one per committed
//! partition per metrics scrape.

use cairn_codec::Offset;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::fetch::decode_records;
use crate::group::TopicPartition;

/// Largest records section decompressed to find one record's timestamp: one batch, and a batch
/// is at most `max.message.bytes`, well under this.
const AGE_DECOMPRESS_LIMIT_BYTES: usize = 64 << 20;

/// Batches skipped (control batches, meta entries) before the lookup gives up and reports the
/// partition caught up: a bound on the work of one call.
const MAX_BATCHES_SKIPPED: usize = 8;

impl Broker {
    /// How old, in milliseconds by the broker's clock, the next record to consume at `offset`
    /// is: now minus the timestamp of the first record at or after `offset` (or after the log
    /// start, when `offset` fell below it). 0 when nothing is left to consume up to the high
    /// watermark, and never negative (a producer's clock may run ahead of the broker's).
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`], and a read or decode
    /// error of the batch holding the offset (`CorruptBatch`).
    pub fn next_record_age_ms(
        &self,
        partition: &TopicPartition,
        offset: i64,
    ) -> Result<i64, BrokerError> {
        let part = self
            .topic(&partition.topic)?
            .partition(i64::from(partition.partition))?;
        let offsets = part.offsets()?;
        let mut from = Offset::from_i64(offset)
            .unwrap_or_default()
            .max(offsets.log_start_offset);
        for _ in 0..MAX_BATCHES_SKIPPED {
            if from >= part.offsets()?.high_watermark {
                return Ok(0);
            }
            // One byte asks for the one batch holding `from`: reads never split a batch.
            let read = part.read(from.as_i64(), 1)?;
            if let Some(record) = decode_records(&read, from, AGE_DECOMPRESS_LIMIT_BYTES)?.first() {
                return Ok(self
                    .clock
                    .now_ms()
                    .saturating_sub(record.timestamp_ms)
                    .max(0));
            }
            if read.next_offset() <= from {
                return Ok(0);
            }
            from = read.next_offset();
        }
        Ok(0)
    }
}
