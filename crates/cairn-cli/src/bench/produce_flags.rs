//! The range of every `cairn bench produce` flag, checked before the benchmark touches the disk
//! or the broker: a run that cannot work must not leave a topic or a scratch file behind (issue
//! 15: `--in-flight 6` used to create the topic and then fail in the producer).
//!
//! Two steps, because one limit lives on the broker: [`check_flags`] needs nothing but the flags
//! (and builds the producer's own config and runs its `validate`), and [`check_batch_fits`]
//! compares the request's batch with the topic's `max.message.bytes` once the topic has been
//! looked up (a read that creates nothing). Both fail with a [`UsageError`], so `cairn` exits 2.
//!
//! [`UsageError`]: crate::usage_error::UsageError

use std::time::Duration;

use bytes::Bytes;

use cairn_client::{Acks, MAX_IN_FLIGHT_IDEMPOTENT, OutgoingRecord, ProducerConfig};
use cairn_log::batch::BATCH_HEADER_BYTES;
use cairn_log::{FlushPolicy, LogConfig};

use super::produce::BenchProduceArgs;
use crate::produce::AckArg;
use crate::usage_error::{usage, usage_bail};

/// Most partitions a topic the benchmark creates may have: the broker's own per-topic limit.
pub const MAX_PARTITIONS: u32 = cairn_broker::MAX_PARTITIONS_PER_TOPIC;
/// Most records one run sends. Far past any useful run, and it keeps `records * record_size`
/// (the byte counts) inside `u64`.
pub const MAX_RECORDS: u64 = 1_000_000_000_000;
/// Most requests in flight per partition with `--acks none`. The producer has no limit there
/// (nothing is retried, so nothing can be reordered), but each request in flight holds a batch
/// in the producer's memory; past this the figure says nothing a smaller one would not.
pub const MAX_IN_FLIGHT_UNACKNOWLEDGED: usize = 1024;
/// Highest `--rate`, records per second. Above this no broker here keeps up and the schedule
/// is the same as `--rate 0` (as fast as the broker takes them), so say that instead.
pub const MAX_RATE: u64 = 10_000_000;
/// Longest `--linger-ms`. A batch that waits longer than a minute to fill measures the timer.
pub const MAX_LINGER_MS: u64 = 60_000;
/// Bytes of a produce request beyond its batch: the topic name, partition, acks and producer
/// fields of the protobuf message, generously rounded up.
pub const REQUEST_OVERHEAD_BYTES: u64 = 1024;
/// Largest produce request the broker decodes.
pub const MAX_REQUEST_BYTES: u64 = cairn_server::MAX_REQUEST_BYTES as u64;
/// Bytes a record's timestamp delta is allowed in [`batch_bytes`]: three varint bytes cover a
/// batch whose records span up to 17 minutes, far past any `--linger-ms` allowed here.
const TIMESTAMP_DELTA_BYTES: u64 = 3;

/// Checks every flag that needs no broker, and returns the producer config they make, already
/// accepted by [`ProducerConfig::validate`].
///
/// # Errors
/// A [`UsageError`](crate::usage_error::UsageError) naming the first flag out of range and its
/// allowed range.
pub fn check_flags(args: &BenchProduceArgs) -> anyhow::Result<ProducerConfig> {
    if let Err(err) = cairn_broker::validate_topic_name(&args.topic) {
        usage_bail!("--topic {:?}: {err}", args.topic);
    }
    let partitions = u32::try_from(args.partitions).unwrap_or(0);
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        usage_bail!(
            "--partitions {} is out of range: 1..={MAX_PARTITIONS} (the broker's limit per topic)",
            args.partitions
        );
    }
    if let Err(why) = args.flush_policy.parse::<FlushPolicy>() {
        usage_bail!("--flush-policy {:?}: {why}", args.flush_policy);
    }
    if !(1..=MAX_RECORDS).contains(&args.records) {
        usage_bail!(
            "--records {} is out of range: 1..={MAX_RECORDS}",
            args.records
        );
    }
    if args.record_size == 0 {
        usage_bail!(
            "--record-size 0 is out of range: at least 1 byte, and a whole request must fit the broker's limits"
        );
    }
    if args.records_per_request == 0 {
        usage_bail!(
            "--records-per-request 0 is out of range: at least 1, and a whole request must fit the broker's limits"
        );
    }
    let request = batch_bytes(args.records_per_request, args.record_size)
        .saturating_add(REQUEST_OVERHEAD_BYTES)
        .saturating_add(args.topic.len() as u64);
    if request > MAX_REQUEST_BYTES {
        usage_bail!(
            "--records-per-request {} x --record-size {} makes requests of about {request} bytes; the broker takes at most {MAX_REQUEST_BYTES}",
            args.records_per_request,
            args.record_size
        );
    }
    let in_flight_max = match args.acks {
        AckArg::None => MAX_IN_FLIGHT_UNACKNOWLEDGED,
        AckArg::Leader | AckArg::All => MAX_IN_FLIGHT_IDEMPOTENT,
    };
    if !(1..=in_flight_max).contains(&args.in_flight) {
        let why = match args.acks {
            AckArg::None => "with --acks none",
            AckArg::Leader | AckArg::All => {
                "the producer is idempotent, and the broker remembers its last 5 batches"
            }
        };
        usage_bail!(
            "--in-flight {} is out of range: 1..={in_flight_max} ({why})",
            args.in_flight
        );
    }
    if args.rate > MAX_RATE {
        usage_bail!(
            "--rate {} is out of range: 0..={MAX_RATE} records/s (0: as fast as the broker takes them)",
            args.rate
        );
    }
    if args.linger_ms > MAX_LINGER_MS {
        usage_bail!(
            "--linger-ms {} is out of range: 0..={MAX_LINGER_MS}",
            args.linger_ms
        );
    }
    super::flag_within(
        "producers-held",
        args.producers_held,
        0,
        super::producers_held::MAX_PRODUCERS_HELD,
    )?;
    let config = producer_config(args);
    // The producer's own rules are the last word: a rule added there is enforced here too.
    config
        .validate()
        .map_err(|err| usage(format!("the producer refuses these flags: {err}")))?;
    Ok(config)
}

/// The producer config of a run, from flags [`check_flags`] accepted (the arithmetic saturates
/// instead of overflowing on others, and `validate` then refuses them).
fn producer_config(args: &BenchProduceArgs) -> ProducerConfig {
    // The producer fills a batch by its own accounting of record size, so a batch holds
    // exactly --records-per-request records.
    let batch_size = args
        .records_per_request
        .saturating_mul(template_buffered_size(args.record_size));
    ProducerConfig {
        acks: match args.acks {
            AckArg::None => Acks::None,
            AckArg::Leader => Acks::Leader,
            AckArg::All => Acks::All,
        },
        batch_size,
        linger: Duration::from_millis(args.linger_ms),
        max_in_flight: args.in_flight,
        // The producer's own default (32 MiB, Kafka's), or room for four rounds of requests
        // in flight when the batches are larger. A run without `--rate` fills the buffer, and
        // each page of it is faulted in and zeroed once: 64 MiB, the figure before this one,
        // cost about 0.1 CPU-s per run in faults alone (30,000 of them, 3 us each on this
        // VM), a tenth of the client's CPU per GB in a 1 GB run.
        buffer_memory: ProducerConfig::default()
            .buffer_memory
            .max(batch_size.saturating_mul(args.in_flight).saturating_mul(4)),
        ..ProducerConfig::default()
    }
}

/// The record every send of a run carries: no key, a `record_size`-byte value.
///
/// The value is leaked to give it a `'static` lifetime (one buffer per run, at most
/// `--record-size`): cloning a static `Bytes` touches no reference count, where cloning one
/// made from a `Vec` took an atomic increment per send and a decrement per drop, a cost of the
/// benchmark's record source that its CPU figure, meant for the producer, would carry.
pub fn record_template(record_size: usize) -> OutgoingRecord {
    let value: &'static [u8] = Vec::leak(vec![b'x'; record_size]);
    OutgoingRecord {
        value: Some(Bytes::from_static(value)),
        ..OutgoingRecord::default()
    }
}

/// What [`record_template`]'s record takes of the producer's buffer, without making it: an
/// empty value's figure plus the value's length.
fn template_buffered_size(record_size: usize) -> usize {
    let empty = OutgoingRecord {
        value: Some(Bytes::new()),
        ..OutgoingRecord::default()
    };
    empty.buffered_size().saturating_add(record_size)
}

/// Checks that one request's batch fits the topic's `max.message.bytes`: the topic's own
/// setting when it exists (`existing`), else Cairn's default, which a topic the benchmark
/// creates gets unless the broker was started with another `--topic-default`.
///
/// # Errors
/// A [`UsageError`](crate::usage_error::UsageError) naming the flags and the limit.
pub fn check_batch_fits(args: &BenchProduceArgs, existing: Option<u64>) -> anyhow::Result<()> {
    let limit = existing.unwrap_or(u64::from(LogConfig::default().max_message_bytes));
    let batch = batch_bytes(args.records_per_request, args.record_size);
    if batch > limit {
        let whose = if existing.is_some() {
            format!("topic {}'s max.message.bytes", args.topic)
        } else {
            "max.message.bytes of a new topic".to_string()
        };
        usage_bail!(
            "--records-per-request {} x --record-size {} makes batches of up to {batch} bytes, above {whose} ({limit}); send fewer or smaller records per request",
            args.records_per_request,
            args.record_size
        );
    }
    Ok(())
}

/// Bytes of the RecordBatch holding `records` records of `record_size`-byte values and no key
/// or headers, as the format lays it out (`segments-format.md`, "Record batches"): the header,
/// then per record its varint length, attributes, timestamp delta (counted at
/// [`TIMESTAMP_DELTA_BYTES`], an upper bound), offset delta, key length -1, value length, value
/// and a header count of 0. Saturates instead of overflowing.
pub fn batch_bytes(records: usize, record_size: usize) -> u64 {
    let records = records as u64;
    let value = record_size as u64;
    // Attributes, key length and header count take a byte each.
    let fixed = (3 + TIMESTAMP_DELTA_BYTES + varint_bytes(value)).saturating_add(value);
    // The offset delta's varint grows at these record indexes (zig-zag doubles the value).
    let mut total = BATCH_HEADER_BYTES as u64;
    let mut start = 0_u64;
    for (delta_bytes, end) in [
        (1, 64),
        (2, 8192),
        (3, 1 << 20),
        (4, 1 << 27),
        (5, u64::MAX),
    ] {
        let count = records.min(end).saturating_sub(start);
        let body = fixed.saturating_add(delta_bytes);
        let record = body.saturating_add(varint_bytes(body));
        total = total.saturating_add(count.saturating_mul(record));
        start = end;
    }
    total
}

/// Bytes of `value` as a zig-zag varint (a non-negative value doubles).
fn varint_bytes(value: u64) -> u64 {
    let zigzag = value.saturating_mul(2);
    u64::from((64 - zigzag.max(1).leading_zeros()).div_ceil(7))
}

#[cfg(test)]
#[path = "produce_flags_tests.rs"]
mod tests;
