//! Producing: plain records are routed to partitions (an explicit partition, Kafka's murmur2 of
//! the key, or the sticky partition for keyless records), encoded into one RecordBatch v2 per
//! partition, and appended to every partition concurrently; a pre-encoded batch is validated
//! (header, CRC, every record) and appended without re-encoding.

use std::sync::Arc;

use bytes::Bytes;
use cairn_codec::Offset;
use cairn_codec::batch::{Batch, BatchBuilder, Compression, ProducerFields, RecordInput};
use cairn_log::LogError;

use crate::broker::{Broker, Topic};
use crate::error::BrokerError;
use crate::topic_config::TimestampType;
use cairn_codec::batch::MAX_DECOMPRESSED_BATCH_BYTES;
use cairn_codec::partition_for_key;

/// A record to produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    /// The key; `None` is a null key (the record goes to the sticky partition).
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order; a `None` value is null.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
    /// Create time in milliseconds; 0 means "now" on the broker's clock, -1 "no timestamp"
    /// (stored as -1, Kafka's `NO_TIMESTAMP`). Below -1 is refused.
    pub timestamp_ms: i64,
}

/// What to append.
#[derive(Clone, Debug)]
pub enum ProducePayload {
    /// Plain records, encoded by the broker with `compression`.
    Records {
        /// The records.
        records: Vec<ProduceRecord>,
        /// The codec of the batches the broker builds.
        compression: Compression,
    },
    /// One pre-encoded RecordBatch v2 (the partition must be given).
    Batch(Bytes),
}

/// How many copies must have the records before the broker answers.
///
/// With one replica (a single node, or replication factor 1) `Leader` and `All` are the same
/// event: the one copy met the flush policy, which is also a majority of one. The partition
/// still handles them apart (see `partition/local.rs`), because a replicated partition does not:
/// there `Leader` answers after the leader's own write and `All` after the commit index passes
/// the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckLevel {
    /// A majority of the replicas has the batch, each under the topic's flush policy: it is
    /// committed (readable by consumers) and survives the loss of a minority of nodes.
    #[default]
    All,
    /// This replica (the leader) has the batch under the topic's flush policy; it may be lost
    /// if the leader fails before the followers copy it.
    Leader,
    /// Nothing: the answer comes once the append is queued (no offset is returned).
    None,
}

/// A produce request.
#[derive(Clone, Debug)]
pub struct ProduceRequest {
    /// The topic.
    pub topic: String,
    /// The partition, or `None` to route each record.
    pub partition: Option<i64>,
    /// The acknowledgement level.
    pub acks: AckLevel,
    /// What to append.
    pub payload: ProducePayload,
    /// For plain records: the idempotent producer's id, epoch and base sequence (requires
    /// `partition`). A pre-encoded batch carries its own.
    pub producer: Option<ProducerFields>,
}

/// What happened in one partition.
#[derive(Debug)]
pub struct PartitionProduced {
    /// The partition.
    pub partition: u32,
    /// Offset of its first record (`None` with [`AckLevel::None`] or on error).
    pub base_offset: Option<Offset>,
    /// Records appended.
    pub record_count: u32,
    /// The partition's log start offset.
    pub log_start_offset: Offset,
    /// Why the partition's records were not appended.
    pub error: Option<BrokerError>,
}

/// The outcome of a produce request.
#[derive(Debug, Default)]
pub struct ProduceResult {
    /// One entry per partition written to, ascending.
    pub partitions: Vec<PartitionProduced>,
    /// For plain records: (partition, offset) per record, in request order.
    pub placements: Vec<(u32, Option<Offset>)>,
}

impl Broker {
    /// Appends a produce request; see the module docs.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`], an invalid batch or
    /// record ([`BrokerError::Log`] of kind `InvalidBatch`), [`BrokerError::InvalidRequest`],
    /// [`BrokerError::UnknownProducerId`] for a producer id never issued,
    /// [`BrokerError::TransactionsUnsupported`] for a transactional batch. Errors of single
    /// partitions are reported per partition.
    pub async fn produce(&self, request: ProduceRequest) -> Result<ProduceResult, BrokerError> {
        self.check_open()?;
        crate::broker::refuse_internal(&request.topic)?;
        let topic = self.topic(&request.topic)?;
        let (compacted, timestamp_type) = {
            let config = topic.config.read().unwrap_or_else(|e| e.into_inner());
            (
                config.cleanup_policy.compacts(),
                config.message_timestamp_type,
            )
        };
        // Kafka's LogAppendTime: the broker's clock, read once per request, stamps every batch
        // it appends (the leader stamps, so every replica stores the same bytes).
        let append_time =
            (timestamp_type == TimestampType::LogAppendTime).then(|| self.clock.now_ms());
        match request.payload {
            ProducePayload::Batch(bytes) => {
                let index = request.partition.ok_or_else(|| {
                    BrokerError::InvalidRequest(
                        "a pre-encoded record batch needs a partition".to_string(),
                    )
                })?;
                let batch = Batch::validate(bytes).map_err(LogError::from)?;
                batch.check_producible().map_err(LogError::from)?;
                if batch.header().attributes.is_transactional() {
                    return Err(BrokerError::TransactionsUnsupported);
                }
                self.check_producer_id(batch.header().producer_id).await?;
                batch
                    .check_records(MAX_DECOMPRESSED_BATCH_BYTES)
                    .map_err(LogError::from)?;
                if compacted && has_keyless_record(&batch)? {
                    return Err(BrokerError::KeylessRecordOnCompactedTopic {
                        topic: topic.name.clone(),
                    });
                }
                let partition = topic.partition(index)?.index();
                let produced =
                    append_one(&topic, partition, batch, request.acks, append_time).await?;
                Ok(ProduceResult {
                    partitions: vec![produced],
                    placements: Vec::new(),
                })
            }
            ProducePayload::Records {
                records,
                compression,
            } => {
                if request.producer.is_some() && request.partition.is_none() {
                    return Err(BrokerError::InvalidRequest(
                        "an idempotent produce needs a partition (sequences are per partition)"
                            .to_string(),
                    ));
                }
                if let Some(producer) = request.producer {
                    self.check_producer_id(producer.producer_id).await?;
                }
                check_timestamps(&records)?;
                if compacted && records.iter().any(|r| r.key.is_none()) {
                    return Err(BrokerError::KeylessRecordOnCompactedTopic {
                        topic: topic.name.clone(),
                    });
                }
                let encoding = Encoding {
                    compression,
                    producer: request.producer.unwrap_or(ProducerFields::NONE),
                    append_time,
                };
                self.produce_records(&topic, request.partition, request.acks, &records, encoding)
                    .await
            }
        }
    }

    /// Refuses a producer id this broker never issued (Kafka's `UNKNOWN_PRODUCER_ID`): without
    /// this, a made-up id would be taken at sequence 0 and could collide with an id
    /// `InitProducerId` hands out later, whose batches would then be refused or dropped as
    /// duplicates. A negative id means "not idempotent" and passes.
    async fn check_producer_id(&self, producer_id: i64) -> Result<(), BrokerError> {
        let issued = match self.runtime() {
            // In a cluster any node may have issued it: every id below the controller's next
            // free one was handed to some node (this node's copy of the metadata may trail the
            // allocation by a heartbeat, so it waits a moment for it).
            Some(runtime) => runtime.wait_producer_id_issued(producer_id).await,
            None => self.producer_ids.was_issued(producer_id),
        };
        if producer_id >= 0 && !issued {
            return Err(BrokerError::UnknownProducerId { producer_id });
        }
        Ok(())
    }

    async fn produce_records(
        &self,
        topic: &Arc<Topic>,
        partition: Option<i64>,
        acks: AckLevel,
        records: &[ProduceRecord],
        encoding: Encoding,
    ) -> Result<ProduceResult, BrokerError> {
        if records.is_empty() {
            return Err(BrokerError::InvalidRequest(
                "no records to produce".to_string(),
            ));
        }
        let routes = route(topic, partition, records)?;
        let mut partitions: Vec<u32> = routes.clone();
        partitions.sort_unstable();
        partitions.dedup();
        let now_ms = self.clock.now_ms();
        let mut appends = Vec::with_capacity(partitions.len());
        for &partition in &partitions {
            let mine = records
                .iter()
                .zip(&routes)
                .filter(|(_, p)| **p == partition)
                .map(|(r, _)| r);
            let batch = encode(mine, encoding, now_ms)?;
            let topic = Arc::clone(topic);
            let append_time = encoding.append_time;
            appends.push(tokio::spawn(async move {
                append_one(&topic, partition, batch, acks, append_time).await
            }));
        }
        let mut produced = Vec::with_capacity(appends.len());
        for append in appends {
            let result = append
                .await
                .map_err(|e| BrokerError::InvalidRequest(format!("append task failed: {e}")))?;
            produced.push(result?);
        }
        let mut next_in_partition: Vec<Option<Offset>> =
            produced.iter().map(|p| p.base_offset).collect();
        let placements = routes
            .iter()
            .map(|partition| {
                let slot = partitions
                    .binary_search(partition)
                    .expect("every route has a result");
                let offset = next_in_partition[slot];
                next_in_partition[slot] = offset.map(|o| o.plus(1));
                (*partition, offset)
            })
            .collect();
        Ok(ProduceResult {
            partitions: produced,
            placements,
        })
    }
}

/// Appends records the broker itself writes (to an internal topic) to one partition,
/// uncompressed and waiting for the topic's flush policy.
///
/// # Errors
/// The append's error: nothing is acknowledged then.
pub(crate) async fn append_internal(
    topic: &Topic,
    partition: u32,
    records: &[ProduceRecord],
    now_ms: i64,
) -> Result<Offset, BrokerError> {
    let encoding = Encoding {
        compression: Compression::None,
        producer: ProducerFields::NONE,
        append_time: None,
    };
    let batch = encode(records.iter(), encoding, now_ms)?;
    let produced = append_one(topic, partition, batch, AckLevel::All, None).await?;
    if let Some(err) = produced.error {
        return Err(err);
    }
    produced
        .base_offset
        .ok_or_else(|| BrokerError::InvalidRequest("internal append returned no offset".into()))
}

/// Refuses a plain record whose timestamp is below -1. Here the broker builds the batch, so it
/// checks what Kafka's producer checks before encoding (`ProducerRecord` refuses a negative
/// timestamp; a missing one is sent as -1, `NO_TIMESTAMP`). A pre-encoded batch is the client's
/// encoding and is stored as sent, as Kafka's broker does under its default
/// `message.timestamp.before.max.ms`.
fn check_timestamps(records: &[ProduceRecord]) -> Result<(), BrokerError> {
    let refused = records
        .iter()
        .enumerate()
        .find(|(_, record)| record.timestamp_ms < -1);
    match refused {
        Some((record_idx, record)) => Err(BrokerError::InvalidTimestamp {
            record_idx,
            timestamp_ms: record.timestamp_ms,
        }),
        None => Ok(()),
    }
}

/// True when some record of a (validated) batch has a null key.
fn has_keyless_record(batch: &Batch) -> Result<bool, BrokerError> {
    let records = batch
        .records(MAX_DECOMPRESSED_BATCH_BYTES)
        .map_err(LogError::from)?;
    for record in records.iter() {
        if record.map_err(LogError::from)?.key.is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The partition of each record.
fn route(
    topic: &Topic,
    partition: Option<i64>,
    records: &[ProduceRecord],
) -> Result<Vec<u32>, BrokerError> {
    if let Some(index) = partition {
        let partition = topic.partition(index)?.index();
        return Ok(vec![partition; records.len()]);
    }
    let count = topic.partition_count();
    let mut sticky = topic.sticky.lock().unwrap_or_else(|e| e.into_inner());
    let keyless = sticky.partition(count);
    let routes = records
        .iter()
        .map(|record| match &record.key {
            Some(key) => partition_for_key(key, count),
            None => keyless,
        })
        .collect();
    // A request is a batch boundary: the next keyless records go elsewhere (KIP-480).
    if records.iter().any(|r| r.key.is_none()) {
        sticky.on_new_batch(keyless, count);
    }
    Ok(routes)
}

/// How the broker encodes plain records.
#[derive(Clone, Copy, Debug)]
struct Encoding {
    compression: Compression,
    producer: ProducerFields,
    /// The broker's append time, when the topic's timestamps are LogAppendTime.
    append_time: Option<i64>,
}

fn encode<'a>(
    records: impl Iterator<Item = &'a ProduceRecord>,
    encoding: Encoding,
    now_ms: i64,
) -> Result<Batch, BrokerError> {
    let mut builder = BatchBuilder::new(encoding.compression);
    builder.set_producer(encoding.producer);
    for record in records {
        let headers: Vec<(&[u8], Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_deref()))
            .collect();
        let timestamp_ms = if record.timestamp_ms == 0 {
            now_ms
        } else {
            record.timestamp_ms
        };
        let input = RecordInput {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
            timestamp_ms,
        };
        builder.push(&input).map_err(LogError::from)?;
    }
    let bytes = builder.build().map_err(LogError::from)?;
    Ok(Batch::validate(bytes).map_err(LogError::from)?)
}

/// Appends `batch` to `partition` of `topic`, stamped with `append_time` first when the topic's
/// timestamps are LogAppendTime.
async fn append_one(
    topic: &Topic,
    partition: u32,
    batch: Batch,
    acks: AckLevel,
    append_time: Option<i64>,
) -> Result<PartitionProduced, BrokerError> {
    let batch = match append_time {
        Some(now_ms) => batch.with_log_append_time(now_ms),
        None => batch,
    };
    let part = topic.partition(i64::from(partition))?;
    let mut produced = PartitionProduced {
        partition,
        base_offset: None,
        record_count: batch.record_count(),
        log_start_offset: Offset(0),
        error: None,
    };
    match part.append(batch, acks).await {
        Ok(base_offset) => produced.base_offset = base_offset,
        Err(err) => produced.error = Some(err),
    }
    // Read after the append: retention may have moved the start meanwhile. A stopped
    // partition's start is unknown, and its error says why.
    if let Ok(log_start_offset) = part.log_start_offset() {
        produced.log_start_offset = log_start_offset;
    }
    Ok(produced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(timestamp_ms: i64) -> ProduceRecord {
        ProduceRecord {
            timestamp_ms,
            ..ProduceRecord::default()
        }
    }

    #[test]
    fn timestamps_below_minus_one_are_refused_naming_the_first() {
        let taken = [stamped(0), stamped(-1), stamped(1_700_000_000_000)];
        assert!(check_timestamps(&taken).is_ok());
        let refused = [stamped(1), stamped(-2), stamped(i64::MIN)];
        assert!(matches!(
            check_timestamps(&refused),
            Err(BrokerError::InvalidTimestamp {
                record_idx: 1,
                timestamp_ms: -2
            })
        ));
    }
}
