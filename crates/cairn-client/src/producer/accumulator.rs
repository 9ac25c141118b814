//! The producer's record accumulator: every partition queue, behind one lock that
//! [`Producer::send`](super::Producer::send) and the background task share.
//!
//! `send` encodes its record straight into the partition's open batch under the lock, as
//! Kafka's `RecordAccumulator` does, instead of passing it to the task through a channel: the
//! channel cost an allocation and a task wake-up per record, more than the encoding itself. The
//! task is woken only when there is something for it to do: a batch was sealed, or a batch was
//! opened and must either go at once or have its linger timed.
//!
//! It also keeps each topic's partition count, read from the router's metadata at most every
//! [`METADATA_MAX_AGE`] and aged by the wall clock `send` reads anyway for the record's
//! timestamp: asking the router per record cost a lock, a monotonic clock read and a hash of
//! the topic (4-5% of the producer's CPU at 1 KiB records), for a number that changes only when
//! partitions are added. The maps use foldhash rather than SipHash: their keys are the
//! caller's own topic names and partition numbers, hashed once per record.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use foldhash::fast::RandomState;

use cairn_codec::batch::RecordInput;
use cairn_codec::{StickyPartitioner, XorShift64, partition_for_key};
use tokio::sync::Semaphore;

use super::config::ProducerConfig;
use super::delivery::DeliveryFuture;
use super::partition_queue::{PartitionQueue, SendTicket};
use super::{OutgoingRecord, ProducerIdentity};
use crate::error::ClientError;
use crate::routing::METADATA_MAX_AGE;

/// A hash map keyed by the caller's topics or partitions (see the module docs).
type FastMap<K, V> = HashMap<K, V, RandomState>;

/// A topic's queues, its sticky partitioner for keyless records, and its partition count.
struct TopicQueues {
    partitions: FastMap<i32, PartitionQueue>,
    sticky: StickyPartitioner<XorShift64>,
    /// The partition count as last read from the router, and when (wall clock, ms).
    partition_count: Option<(u32, i64)>,
}

/// A batch to send: the topic and partition it goes to, and the request's contents.
pub(crate) struct Outgoing {
    pub topic: Arc<str>,
    pub partition: i32,
    pub ticket: SendTicket,
}

impl TopicQueues {
    /// The partition count, if read less than [`METADATA_MAX_AGE`] before `now_ms` (a wall
    /// clock that went back also asks again).
    fn fresh_partition_count(&self, now_ms: i64) -> Option<u32> {
        let (count, read_at) = self.partition_count?;
        let max_age = i64::try_from(METADATA_MAX_AGE.as_millis()).unwrap_or(i64::MAX);
        (read_at <= now_ms && now_ms - read_at < max_age).then_some(count)
    }
}

/// What [`Accumulator::append_known`] did.
pub(crate) enum KnownAppend {
    /// Appended: the record's result and, when it sealed or opened a batch, its partition.
    Appended(DeliveryFuture, Option<i32>),
    /// The topic's partition count is not held, or is too old: read it and `append`.
    CountUnknown,
    /// The record names a partition the topic does not have; the topic has this many.
    NoSuchPartition(u32),
}

/// The accumulator's fields an append reads besides the topic's queues, borrowed apart from
/// them so that both can be held at once.
struct AppendInto<'a> {
    config: &'a Arc<ProducerConfig>,
    buffer: &'a Arc<Semaphore>,
    identity: Option<ProducerIdentity>,
}

impl AppendInto<'_> {
    /// Appends `record` to its partition's queue among `queues` (see [`Accumulator::append`]).
    fn append(
        &self,
        queues: &mut TopicQueues,
        partition_count: u32,
        record: &OutgoingRecord,
        size: usize,
        now_ms: i64,
    ) -> (DeliveryFuture, Option<i32>) {
        let count = NonZeroU32::new(partition_count).unwrap_or(NonZeroU32::MIN);
        let keyless = record.partition.is_none() && record.key.is_none();
        let partition = match (record.partition, &record.key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, count) as i32,
            (None, None) => queues.sticky.partition(count) as i32,
        };
        let headers: Vec<(&[u8], Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()))
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
        let queue = queues.partitions.entry(partition).or_insert_with(|| {
            PartitionQueue::new(partition, Arc::clone(self.config), self.identity)
        });
        let appended = queue.append(&input, size, self.buffer, Instant::now);
        if keyless {
            // A batch sent before it filled does not move the partitioner (KIP-794): at low
            // load every record leaves alone, and moving per batch would scatter them one by
            // one, while never moving (the rule before this one) kept every keyless record on
            // one partition until some batch filled.
            let batch_full = !queue.is_filling();
            queues.sticky.on_keyless_append(
                partition as u32,
                size,
                batch_full,
                self.config.batch_size,
                count,
            );
        }
        let changed = (appended.sealed || appended.opened).then_some(partition);
        (appended.delivery, changed)
    }
}

/// The wall clock in milliseconds since the Unix epoch: a record's default timestamp, and the
/// clock partition counts age by.
pub(crate) fn wall_clock_ms() -> i64 {
    // Seconds and milliseconds apart rather than `as_millis`, whose u128 arithmetic was most
    // of this function's cost, which `send` pays per record.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        i64::try_from(d.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_mul(1000)
            .saturating_add(i64::from(d.subsec_millis()))
    })
}

/// Every partition queue of one producer.
pub(crate) struct Accumulator {
    config: Arc<ProducerConfig>,
    /// The producer's buffer, which records' bytes are taken from and batches give back to.
    buffer: Arc<Semaphore>,
    identity: Option<ProducerIdentity>,
    topics: FastMap<Arc<str>, TopicQueues>,
    seed: u64,
    /// When the background task plans to wake next: a queue that needs it sooner wakes it.
    task_wakes_at: Option<Instant>,
    /// The background task waits for every queue to go idle (a flush or close).
    task_waits_for_idle: bool,
}

impl Accumulator {
    /// No queues yet; `identity` is `Some` for an idempotent producer; `buffer` the producer's
    /// buffer.
    pub fn new(
        config: Arc<ProducerConfig>,
        identity: Option<ProducerIdentity>,
        buffer: Arc<Semaphore>,
    ) -> Accumulator {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
        Accumulator {
            config,
            buffer,
            identity,
            topics: FastMap::default(),
            seed,
            task_wakes_at: None,
            task_waits_for_idle: false,
        }
    }

    /// `topic`'s partition count, if read from the router less than [`METADATA_MAX_AGE`]
    /// before `now_ms` (a wall clock that went back also asks again).
    pub fn partition_count(&self, topic: &str, now_ms: i64) -> Option<u32> {
        self.topics.get(topic)?.fresh_partition_count(now_ms)
    }

    /// Records `topic`'s partition count as read from the router at `now_ms`.
    pub fn set_partition_count(&mut self, topic: &str, count: u32, now_ms: i64) {
        topic_queues(&mut self.topics, &mut self.seed, topic).partition_count =
            Some((count, now_ms));
    }

    /// Adds `record` (of `size` bytes by the buffer's accounting, which the caller took from
    /// the buffer and forgot) to its partition's open batch, stamped `now_ms` unless it carries
    /// its own timestamp. Returns its result and, when the record sealed or opened a batch, its
    /// partition: that queue may have something to send now.
    pub fn append(
        &mut self,
        topic: &str,
        partition_count: u32,
        record: &OutgoingRecord,
        size: usize,
        now_ms: i64,
    ) -> (DeliveryFuture, Option<i32>) {
        let (topics, seed, into) = self.split_for_append();
        into.append(
            topic_queues(topics, seed, topic),
            partition_count,
            record,
            size,
            now_ms,
        )
    }

    /// The topics' queues and the sticky partitioners' seed, borrowed apart from what an
    /// append reads besides them.
    fn split_for_append(
        &mut self,
    ) -> (
        &mut FastMap<Arc<str>, TopicQueues>,
        &mut u64,
        AppendInto<'_>,
    ) {
        let into = AppendInto {
            config: &self.config,
            buffer: &self.buffer,
            identity: self.identity,
        };
        (&mut self.topics, &mut self.seed, into)
    }

    /// [`Accumulator::append`] for a topic whose partition count this accumulator read less
    /// than [`METADATA_MAX_AGE`] before `now_ms`, checking the record's partition against it:
    /// one lookup of the topic, where `send`'s general path takes three and a second lock.
    pub fn append_known(
        &mut self,
        topic: &str,
        record: &OutgoingRecord,
        size: usize,
        now_ms: i64,
    ) -> KnownAppend {
        let (topics, _, into) = self.split_for_append();
        let Some(queues) = topics.get_mut(topic) else {
            return KnownAppend::CountUnknown;
        };
        let Some(count) = queues.fresh_partition_count(now_ms) else {
            return KnownAppend::CountUnknown;
        };
        if record.names_partition_beyond(count) {
            return KnownAppend::NoSuchPartition(count);
        }
        let (delivery, changed) = into.append(queues, count, record, size, now_ms);
        KnownAppend::Appended(delivery, changed)
    }

    /// Adds to `outgoing` what `topic`/`partition`'s queue can send now. Returns whether the
    /// background task must look: the queue needs a fresh producer id, has something due
    /// before the task planned to wake, or went idle while the task waits for that.
    pub fn poll_partition(
        &mut self,
        topic: &str,
        partition: i32,
        now: Instant,
        outgoing: &mut Vec<Outgoing>,
    ) -> bool {
        let Some(queue) = self
            .topics
            .get_mut(topic)
            .and_then(|queues| queues.partitions.get_mut(&partition))
        else {
            return false;
        };
        let tickets = queue.poll_send(now);
        let attention = queue.needs_identity()
            || (self.task_waits_for_idle && queue.is_idle())
            || queue
                .next_wakeup()
                .is_some_and(|at| self.task_wakes_at.is_none_or(|planned| at < planned));
        if !tickets.is_empty()
            && let Some((name, _)) = self.topics.get_key_value(topic)
        {
            outgoing.extend(tickets.into_iter().map(|ticket| Outgoing {
                topic: Arc::clone(name),
                partition,
                ticket,
            }));
        }
        attention
    }

    /// The background task will sleep until `at`, or until all is idle if `waits_for_idle`.
    pub fn plan_wakeup(&mut self, at: Instant, waits_for_idle: bool) {
        self.task_wakes_at = Some(at);
        self.task_waits_for_idle = waits_for_idle;
    }

    /// Seals every open batch (flush and close send what they hold regardless of linger).
    pub fn seal_all(&mut self) {
        for queue in self.queues_mut() {
            queue.seal();
        }
    }

    /// The batches to send now, and whether a queue waits for a fresh producer id.
    pub fn poll(&mut self, now: Instant) -> (Vec<Outgoing>, bool) {
        let mut needs_identity = false;
        let mut outgoing = Vec::new();
        for (topic, queues) in &mut self.topics {
            for (&partition, queue) in &mut queues.partitions {
                for ticket in queue.poll_send(now) {
                    outgoing.push(Outgoing {
                        topic: Arc::clone(topic),
                        partition,
                        ticket,
                    });
                }
                needs_identity |= queue.needs_identity();
            }
        }
        (outgoing, needs_identity)
    }

    /// The broker's answer to batch `batch_id` of `topic`/`partition`.
    pub fn on_produced(
        &mut self,
        topic: &str,
        partition: i32,
        batch_id: u64,
        result: Result<i64, ClientError>,
        now: Instant,
    ) {
        let Some(queue) = self
            .topics
            .get_mut(topic)
            .and_then(|q| q.partitions.get_mut(&partition))
        else {
            return;
        };
        match result {
            Ok(base_offset) => queue.on_success(batch_id, base_offset),
            Err(error) => {
                tracing::debug!(%topic, partition, %error, "produce request failed");
                queue.on_failure(batch_id, error, now);
            }
        }
    }

    /// A fresh producer id: the queues that waited for one start over under it.
    pub fn set_identity(&mut self, identity: ProducerIdentity) {
        self.identity = Some(identity);
        for queue in self.queues_mut() {
            if queue.needs_identity() {
                queue.set_identity(identity);
            }
        }
    }

    /// Nothing open, queued or in flight anywhere.
    pub fn is_idle(&self) -> bool {
        self.queues().all(PartitionQueue::is_idle)
    }

    /// The earliest instant at which a queue has something to do without an answer arriving.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.queues().filter_map(PartitionQueue::next_wakeup).min()
    }

    fn queues(&self) -> impl Iterator<Item = &PartitionQueue> {
        self.topics.values().flat_map(|q| q.partitions.values())
    }

    fn queues_mut(&mut self) -> impl Iterator<Item = &mut PartitionQueue> {
        self.topics
            .values_mut()
            .flat_map(|q| q.partitions.values_mut())
    }
}

/// `topic`'s queues, made (with a sticky partitioner seeded from `seed`) on its first record.
/// A function of the two fields rather than a method, so that the caller can hold the
/// accumulator's other fields at the same time.
fn topic_queues<'a>(
    topics: &'a mut FastMap<Arc<str>, TopicQueues>,
    seed: &mut u64,
    topic: &str,
) -> &'a mut TopicQueues {
    if !topics.contains_key(topic) {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let sticky = StickyPartitioner::new(XorShift64::new(*seed));
        topics.insert(
            Arc::from(topic),
            TopicQueues {
                partitions: FastMap::default(),
                sticky,
                partition_count: None,
            },
        );
    }
    topics
        .get_mut(topic)
        .expect("the topic's queues were inserted above")
}
