//! The admission filter that enforces idempotent producers' sequences on a partition's writer
//! thread (see `cairn_log::AppendFilter`): it keeps the committed [`ProducerStates`] and, during a
//! group commit, a working copy that also holds what the group admitted so far.

use std::sync::Arc;

use cairn_log::batch::Batch;
use cairn_log::{Admission, AppendFilter, AppendInfo, EntryIndex, LogError, LogReader, Offset};

use crate::producer_state::{ProducerBatch, ProducerStates, SequenceCheck};

/// Why an idempotent batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// The batch's sequence does not follow the last one written (Kafka's
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("out-of-order sequence for producer {producer_id}: expected {expected}, got {found}")]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// The sequence expected.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },
    /// A newer epoch of the producer exists (Kafka's `INVALID_PRODUCER_EPOCH`).
    #[error("producer {producer_id} epoch {found} is fenced by epoch {current}")]
    FencedEpoch {
        /// The producer.
        producer_id: i64,
        /// The current epoch.
        current: i16,
        /// The batch's epoch.
        found: i16,
    },
    /// The broker knows nothing of this producer (Kafka's `UNKNOWN_PRODUCER_ID`).
    #[error("unknown producer {producer_id}: its first batch must start at sequence 0")]
    UnknownProducer {
        /// The producer.
        producer_id: i64,
    },
    /// An idempotent request must hold exactly one batch.
    #[error("an idempotent request must hold exactly one batch")]
    SeveralBatches,
}

/// Sequence enforcement for one partition.
#[derive(Debug, Default)]
pub(crate) struct ProducerFilter {
    committed: ProducerStates,
    working: Option<ProducerStates>,
}

impl ProducerFilter {
    /// Rebuilds the producer states by reading the partition's log from its start: every
    /// batch's producer fields are in its header.
    pub(crate) fn rebuild(reader: &LogReader) -> Result<ProducerFilter, LogError> {
        let mut states = ProducerStates::default();
        let mut offset = reader.log_start_offset();
        loop {
            let read = reader.read(offset.as_i64(), 8 << 20)?;
            if read.is_empty() {
                break;
            }
            for batch in read.batches() {
                if let Some(producer) = producer_batch(&batch)
                    && producer.is_idempotent()
                {
                    let last = batch
                        .base_offset()
                        .plus(batch.offset_count().saturating_sub(1));
                    states.record(&producer, batch.base_offset().0, last.0);
                }
            }
            offset = read.next_offset;
        }
        Ok(ProducerFilter {
            committed: states,
            working: None,
        })
    }
}

fn producer_batch(batch: &Batch) -> Option<ProducerBatch> {
    let header = batch.header();
    (!batch.is_meta()).then_some(ProducerBatch {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        // Sequences span the batch's offsets, as in Kafka (baseSequence + lastOffsetDelta):
        // compaction removes records from a batch but keeps its lastOffsetDelta, so the record
        // count would undercount the last sequence after a clean.
        record_count: header.last_offset_delta.saturating_add(1),
    })
}

fn reject(err: SequenceError) -> Admission {
    Admission::Reject(LogError::Rejected(Arc::new(err)))
}

impl AppendFilter for ProducerFilter {
    fn admit(&mut self, batches: &[Batch], next_offset: Offset) -> Admission {
        let idempotent: Vec<ProducerBatch> = batches
            .iter()
            .filter_map(producer_batch)
            .filter(|p| p.is_idempotent())
            .collect();
        if idempotent.is_empty() {
            return Admission::Append;
        }
        let ([producer], [batch]) = (idempotent.as_slice(), batches) else {
            return reject(SequenceError::SeveralBatches);
        };
        let working = self.working.get_or_insert_with(|| self.committed.clone());
        match working.check(producer) {
            SequenceCheck::Append => {
                let last = next_offset.plus(batch.offset_count().saturating_sub(1));
                working.record(producer, next_offset.0, last.0);
                Admission::Append
            }
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } => Admission::Duplicate(vec![AppendInfo {
                base_offset: Offset(base_offset),
                next_offset: Offset(last_offset.saturating_add(1)),
                // A duplicate's entry index is not kept; producers only use its offsets.
                entry: EntryIndex(0),
                leader_epoch: batch.leader_epoch(),
            }]),
            SequenceCheck::OutOfOrder { expected, found } => reject(SequenceError::OutOfOrder {
                producer_id: producer.producer_id,
                expected,
                found,
            }),
            SequenceCheck::FencedEpoch { current, found } => reject(SequenceError::FencedEpoch {
                producer_id: producer.producer_id,
                current,
                found,
            }),
            SequenceCheck::UnknownProducer => reject(SequenceError::UnknownProducer {
                producer_id: producer.producer_id,
            }),
        }
    }

    fn commit(&mut self) {
        if let Some(working) = self.working.take() {
            self.committed = working;
        }
    }

    fn rollback(&mut self) {
        self.working = None;
    }
}
