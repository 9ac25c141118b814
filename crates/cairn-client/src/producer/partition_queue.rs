//! One partition's share of the producer: the open batch that records are added to, the sealed
//! batches that wait for an answer, and the rules that keep an idempotent producer's sequence
//! numbers contiguous through retries, refusals and expiries.
//!
//! The broker accepts a producer's batches for a partition only in sequence order (KIP-98), so
//! after any failure the queue stops pipelining, waits for its requests in flight, and resends
//! from its oldest unacknowledged batch one request at a time ("recovery") until one succeeds.
//! A batch that will never be written (refused, or expired before it was ever sent) leaves a
//! hole: the batches behind it get new sequence numbers before they go out again. A batch that
//! expired while its outcome was unknown may or may not be in the log, so no sequence number
//! after it can be trusted: the partition waits for a fresh producer id and starts again at 0.
//!
//! The invariant that keeps an idempotent producer from writing a record twice: a batch that
//! may be in the log (it was sent and met an error that leaves its outcome open) is only ever
//! sent again with the producer id and sequence it had then, which the broker recognises as a
//! duplicate. Under a new producer id it would be a new batch to the broker, so when the
//! partition starts over under one, each such batch fails with the ambiguous error it met
//! instead of going out again; only batches known not to be written move to the new id.
//!
//! Pure state: no I/O and no clock (callers pass `now`), so every path has a unit test.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_codec::batch::{BatchBuilder, ProducerFields, RecordInput, rewrite_producer_fields};
use cairn_proto::v1::ErrorCode;
use tokio::sync::Semaphore;

use super::ProducerIdentity;
use super::buffer_share::BufferShare;
use super::config::ProducerConfig;
use super::delivery::{BatchCompleter, DeliveryFuture};
use crate::error::ClientError;

/// What [`PartitionQueue::append`] did, beyond taking the record.
#[derive(Debug)]
pub(crate) struct Appended {
    /// The record's result.
    pub delivery: DeliveryFuture,
    /// A batch was sealed: the sender has one to send.
    pub sealed: bool,
    /// The record opened a new batch: the sender must send it at once (nothing is in
    /// flight) or time its linger.
    pub opened: bool,
}

/// A batch to send now, handed to the sender.
#[derive(Debug)]
pub(crate) struct SendTicket {
    /// Which batch (echoed back with the result).
    pub batch_id: u64,
    /// The encoded RecordBatch v2.
    pub bytes: Bytes,
    /// How long to wait for the answer: the request timeout, or less when the batch's
    /// delivery deadline is nearer.
    pub timeout: Duration,
}

/// Records being gathered into the next batch (their bytes are in the queue's builder).
struct OpenBatch {
    completer: BatchCompleter,
    records: u32,
    share: BufferShare,
    bytes: usize,
    created: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BatchState {
    /// Waiting to be sent (first time or again).
    Ready,
    /// A request carrying it is out.
    InFlight,
    /// Acknowledged; kept only until it reaches the front, to know the next sequence.
    Acked,
}

/// An encoded batch that has not been acknowledged yet.
struct SealedBatch {
    id: u64,
    bytes: Bytes,
    record_count: i32,
    base_sequence: i32,
    /// Answers the batch's records; `None` once answered.
    completer: Option<BatchCompleter>,
    /// Its bytes of the producer's buffer; `None` once answered.
    share: Option<BufferShare>,
    deadline: Instant,
    attempts: u32,
    state: BatchState,
    last_error: Option<ClientError>,
    /// The last error that left its outcome open, once it was sent at least once without a
    /// definite answer (it may be in the log then): what the batch fails with if it can never
    /// be sent again under its own sequence.
    ambiguous_error: Option<ClientError>,
    /// Its last send went out while an earlier batch was unanswered, so the broker may have
    /// seen it first: a gap in sequence is then no surprise.
    sent_behind_others: bool,
}

impl SealedBatch {
    /// Sent at least once without a definite answer: it may be in the log.
    fn maybe_written(&self) -> bool {
        self.ambiguous_error.is_some()
    }
}

/// Why and until when the queue sends one batch at a time.
#[derive(Debug)]
struct Recovery {
    retry_at: Instant,
    /// A batch before others was dropped without being written: renumber the rest.
    resequence: bool,
    /// A batch that may be in the log was dropped: only a new producer id is safe.
    new_identity: bool,
    /// The batch sent alone during recovery; its success ends recovery.
    probe: Option<u64>,
}

/// One partition's batches.
pub(crate) struct PartitionQueue {
    partition: i32,
    config: Arc<ProducerConfig>,
    identity: Option<ProducerIdentity>,
    /// Encodes the open batch; kept from batch to batch so its buffer is allocated once.
    builder: BatchBuilder,
    open: Option<OpenBatch>,
    sealed: VecDeque<SealedBatch>,
    in_flight: usize,
    /// Sequence of the next batch to seal.
    next_sequence: i32,
    /// Sequence the broker expects for the front of `sealed`, given that everything before
    /// it was acknowledged.
    front_sequence: i32,
    recovery: Option<Recovery>,
    next_batch_id: u64,
}

/// `sequence + count`, wrapping from `i32::MAX` to 0 as Kafka's (and the broker's) do.
fn next_sequence_after(sequence: i32, count: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(count);
    (sum % (i64::from(i32::MAX) + 1)) as i32
}

impl PartitionQueue {
    /// An empty queue for `partition`; `identity` is `Some` for an idempotent producer.
    pub fn new(
        partition: i32,
        config: Arc<ProducerConfig>,
        identity: Option<ProducerIdentity>,
    ) -> Self {
        PartitionQueue {
            partition,
            builder: BatchBuilder::new(config.compression),
            config,
            identity,
            open: None,
            sealed: VecDeque::new(),
            in_flight: 0,
            next_sequence: 0,
            front_sequence: 0,
            recovery: None,
            next_batch_id: 0,
        }
    }

    /// Adds one record of about `size` bytes, which the caller took from `buffer` (the
    /// producer's buffer) and forgot: its batch gives them back once answered, and a record
    /// that cannot be encoded, answered at once, gives them back at once. `now` is read only
    /// when the record opens a batch (a clock read per record is a measurable share of the hot
    /// path).
    pub fn append(
        &mut self,
        record: &RecordInput<'_>,
        size: usize,
        buffer: &Arc<Semaphore>,
        now: impl FnOnce() -> Instant,
    ) -> Appended {
        let mut sealed = false;
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.records > 0 && open.bytes + size > self.config.batch_size)
        {
            self.seal();
            sealed = true;
        }
        if let Err(err) = self.builder.push(record) {
            buffer.add_permits(size);
            return Appended {
                delivery: DeliveryFuture::ready(Err(ClientError::local(
                    ErrorCode::InvalidRecord,
                    format!("cannot encode the record: {err}"),
                ))),
                sealed,
                opened: false,
            };
        }
        let opened = self.open.is_none();
        let partition = self.partition;
        let open = self.open.get_or_insert_with(|| OpenBatch {
            completer: BatchCompleter::new(partition),
            records: 0,
            share: BufferShare::new(buffer),
            bytes: 0,
            created: now(),
        });
        let delivery = open.completer.delivery(open.records);
        open.records += 1;
        open.bytes += size;
        open.share.add(size);
        if open.bytes >= self.config.batch_size {
            self.seal();
            sealed = true;
        }
        Appended {
            delivery,
            sealed,
            opened,
        }
    }

    /// Encodes the open batch, if any, and queues it for sending (also what flush and close
    /// do, regardless of linger).
    pub fn seal(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let count = i32::try_from(open.records).unwrap_or(i32::MAX);
        let base_sequence = match self.identity {
            Some(identity) => {
                self.builder.set_producer(ProducerFields {
                    producer_id: identity.producer_id,
                    producer_epoch: identity.producer_epoch,
                    base_sequence: self.next_sequence,
                });
                self.next_sequence
            }
            None => -1,
        };
        let bytes = match self.builder.build() {
            Ok(bytes) => bytes,
            Err(err) => {
                open.completer.complete(Err(ClientError::local(
                    ErrorCode::InvalidRecord,
                    format!("cannot encode the batch: {err}"),
                )));
                return;
            }
        };
        if self.identity.is_some() {
            self.next_sequence = next_sequence_after(self.next_sequence, count);
        }
        self.next_batch_id += 1;
        self.sealed.push_back(SealedBatch {
            id: self.next_batch_id,
            bytes,
            record_count: count,
            base_sequence,
            completer: Some(open.completer),
            share: Some(open.share),
            deadline: open.created + self.config.delivery_timeout,
            attempts: 0,
            state: BatchState::Ready,
            last_error: None,
            ambiguous_error: None,
            sent_behind_others: false,
        });
    }

    /// The batches to send now: lingered batches are sealed first, expired ones answered.
    pub fn poll_send(&mut self, now: Instant) -> Vec<SendTicket> {
        self.expire(now);
        self.pop_acked_front();
        if let Some(recovery) = &mut self.recovery {
            if self.in_flight > 0 || now < recovery.retry_at || recovery.new_identity {
                return Vec::new();
            }
            let renumber = std::mem::take(&mut recovery.resequence);
            if renumber {
                self.resequence();
            }
            let Some(index) = self
                .sealed
                .iter()
                .position(|b| b.state == BatchState::Ready)
            else {
                self.recovery = None;
                return Vec::new();
            };
            let ticket = self.dispatch(index, now);
            if let Some(recovery) = &mut self.recovery {
                recovery.probe = Some(ticket.batch_id);
            }
            self.in_flight += 1;
            return vec![ticket];
        }
        if self.in_flight < self.config.max_in_flight
            && self
                .open
                .as_ref()
                .is_some_and(|open| now >= open.created + self.linger())
        {
            self.seal();
        }
        let mut tickets = Vec::new();
        for index in 0..self.sealed.len() {
            if self.in_flight >= self.config.max_in_flight {
                break;
            }
            if self.sealed[index].state == BatchState::Ready {
                tickets.push(self.dispatch(index, now));
                self.in_flight += 1;
            }
        }
        tickets
    }

    fn dispatch(&mut self, index: usize, now: Instant) -> SendTicket {
        let behind = self
            .sealed
            .iter()
            .take(index)
            .any(|b| b.state != BatchState::Acked);
        let batch = &mut self.sealed[index];
        batch.state = BatchState::InFlight;
        batch.attempts += 1;
        batch.sent_behind_others = behind;
        let left = batch.deadline.saturating_duration_since(now);
        SendTicket {
            batch_id: batch.id,
            bytes: batch.bytes.clone(),
            timeout: self
                .config
                .request_timeout
                .min(left)
                .max(Duration::from_millis(1)),
        }
    }

    /// The broker appended batch `batch_id` at `base_offset` (-1 when it did not say, as with
    /// acks none).
    pub fn on_success(&mut self, batch_id: u64, base_offset: i64) {
        let Some(batch) = self.sealed.iter_mut().find(|b| b.id == batch_id) else {
            return;
        };
        if batch.state != BatchState::InFlight {
            return;
        }
        batch.state = BatchState::Acked;
        self.in_flight -= 1;
        if let Some(completer) = batch.completer.take() {
            completer.complete(Ok(base_offset));
        }
        batch.share = None;
        if self
            .recovery
            .as_ref()
            .is_some_and(|r| r.probe == Some(batch_id) && !r.resequence && !r.new_identity)
        {
            self.recovery = None;
        }
        self.pop_acked_front();
    }

    /// The request for batch `batch_id` failed with `error`.
    pub fn on_failure(&mut self, batch_id: u64, error: ClientError, now: Instant) {
        let Some(index) = self.sealed.iter().position(|b| b.id == batch_id) else {
            return;
        };
        if self.sealed[index].state != BatchState::InFlight {
            return;
        }
        self.in_flight -= 1;
        let idempotent = self.identity.is_some();
        let code = error.code();
        // A gap is expected when the broker may have seen this batch before an earlier one:
        // requests on one connection can be served out of order, and an earlier batch may have
        // failed. A gap seen by a batch sent as the oldest unanswered one is real.
        // (A broker that has not seen this producer yet calls such a gap an unknown producer.)
        let gap_explained = idempotent
            && matches!(
                code,
                Some(ErrorCode::OutOfOrderSequence | ErrorCode::UnknownProducerId)
            )
            && self.sealed[index].sent_behind_others;
        // Sent as the oldest and still unknown: the broker lost this producer's state (its
        // batches were all deleted by retention, say); only a fresh producer id helps.
        let lost_producer =
            idempotent && !gap_explained && code == Some(ErrorCode::UnknownProducerId);
        // The topic existed when the record was taken (`send` checks the metadata), so an
        // unknown topic now is most likely a node that has just restarted and has not caught up
        // on the cluster metadata yet: retried within the delivery timeout, as Kafka's producer
        // treats UNKNOWN_TOPIC_OR_PARTITION. A topic deleted meanwhile fails at the deadline.
        let unknown_topic = code == Some(ErrorCode::UnknownTopicOrPartition);
        let retriable =
            error.is_retriable() || error.outcome_unknown() || gap_explained || unknown_topic;
        let batch = &mut self.sealed[index];
        // A `NOT_LEADER` naming the new leader sends the retry there at once, as Kafka's
        // producer does since KIP-951: the backoff is for waiting out an election, and this one
        // is over. Only the first such answer in a row skips it, so two nodes naming each other
        // cannot make the batch bounce between them without pause.
        let straight_to_new_leader =
            names_the_leader(&error) && !batch.last_error.as_ref().is_some_and(names_the_leader);
        if error.outcome_unknown() {
            batch.ambiguous_error = Some(error.clone());
        }
        batch.last_error = Some(error.clone());
        let (expired, attempts) = (now >= batch.deadline, batch.attempts);
        if expired {
            self.drop_batch(index, None, now);
        } else if lost_producer && batch.maybe_written() {
            // An earlier attempt may be in the log under this producer id, whatever the node
            // that answered now knows of it (a restarted node's metadata may trail the
            // cluster's): sent again under a new id, it would be written a second time.
            let ambiguous = batch.ambiguous_error.clone();
            self.drop_batch(index, ambiguous, now);
        } else if retriable || lost_producer {
            self.sealed[index].state = BatchState::Ready;
            if straight_to_new_leader {
                self.enter_recovery(now, false, lost_producer);
                // A backoff another batch's answer set gives way: most often it waited out an
                // election, and this answer says it is over, so the queue goes to the new
                // leader now. (On a leadership move the old leader's first answers named no
                // leader yet; their backoff held the records about 0.1 s after the new leader
                // was known.) Were it for something else (a throttle, a full disk), one batch
                // goes now, and its answer sets the backoff again.
                if let Some(recovery) = self.recovery.as_mut() {
                    recovery.retry_at = now;
                }
            } else {
                self.enter_recovery(now + self.config.backoff(attempts), false, lost_producer);
            }
        } else {
            self.drop_batch(index, Some(error), now);
        }
    }

    /// Answers every batch whose delivery deadline passed while it waited to be (re)sent.
    fn expire(&mut self, now: Instant) {
        if self
            .open
            .as_ref()
            .is_some_and(|open| now >= open.created + self.config.delivery_timeout)
        {
            self.seal();
        }
        // Deadlines grow with the queue (each is its batch's creation plus the same timeout),
        // so only the oldest batch waiting to be sent can be the next to expire. Scanning the
        // whole queue here made every send cost as much as the queue is long.
        while let Some(index) = self.first_ready()
            && now >= self.sealed[index].deadline
        {
            self.drop_batch(index, None, now);
        }
    }

    /// Answers batch `index` with `error` (or a delivery timeout) and forgets it; what the
    /// batches behind it need before they can be sent follows from whether it may be written.
    fn drop_batch(&mut self, index: usize, error: Option<ClientError>, now: Instant) {
        let Some(batch) = self.sealed.remove(index) else {
            return;
        };
        let error = error.unwrap_or_else(|| ClientError::DeliveryTimeout {
            timeout: self.config.delivery_timeout,
            attempts: batch.attempts,
            last_error: batch.last_error.clone().map(Box::new),
        });
        let maybe_written = batch.maybe_written();
        fail(batch, &error);
        if self.identity.is_some() {
            self.enter_recovery(now, !maybe_written, maybe_written);
        }
    }

    fn enter_recovery(&mut self, retry_at: Instant, resequence: bool, new_identity: bool) {
        let recovery = self.recovery.get_or_insert(Recovery {
            retry_at,
            resequence: false,
            new_identity: false,
            probe: None,
        });
        recovery.retry_at = recovery.retry_at.max(retry_at);
        recovery.resequence |= resequence;
        recovery.new_identity |= new_identity;
        recovery.probe = None;
    }

    fn pop_acked_front(&mut self) {
        while let Some(front) = self.sealed.front() {
            if front.state != BatchState::Acked {
                break;
            }
            if self.identity.is_some() {
                self.front_sequence = next_sequence_after(front.base_sequence, front.record_count);
            }
            self.sealed.pop_front();
        }
    }

    /// Gives every unacknowledged batch the sequence it must have now, from the one the broker
    /// expects for the front, rewriting the encoded headers that change.
    fn resequence(&mut self) {
        let Some(identity) = self.identity else {
            return;
        };
        let mut sequence = self.front_sequence;
        for batch in &mut self.sealed {
            if batch.state == BatchState::Acked {
                sequence = next_sequence_after(batch.base_sequence, batch.record_count);
                continue;
            }
            let mut bytes = batch.bytes.to_vec();
            rewrite_producer_fields(
                &mut bytes,
                ProducerFields {
                    producer_id: identity.producer_id,
                    producer_epoch: identity.producer_epoch,
                    base_sequence: sequence,
                },
            );
            batch.bytes = Bytes::from(bytes);
            batch.base_sequence = sequence;
            sequence = next_sequence_after(sequence, batch.record_count);
        }
        self.next_sequence = sequence;
    }

    /// Whether the queue waits for a fresh producer id (see the module docs).
    pub fn needs_identity(&self) -> bool {
        self.in_flight == 0 && self.recovery.as_ref().is_some_and(|r| r.new_identity)
    }

    /// Starts over under a fresh producer id: sequences from 0. Every batch that may already
    /// be in the log fails here with the ambiguous error it met (see the module docs); the
    /// others are renumbered under the new id.
    pub fn set_identity(&mut self, identity: ProducerIdentity) {
        debug_assert_eq!(
            self.in_flight, 0,
            "a new producer id while requests are out"
        );
        self.identity = Some(identity);
        self.sealed.retain(|b| b.state != BatchState::Acked);
        let (unsure, sure): (VecDeque<SealedBatch>, VecDeque<SealedBatch>) =
            std::mem::take(&mut self.sealed)
                .into_iter()
                .partition(SealedBatch::maybe_written);
        self.sealed = sure;
        for mut batch in unsure {
            if let Some(error) = batch.ambiguous_error.take() {
                fail(batch, &error);
            }
        }
        self.front_sequence = 0;
        self.next_sequence = 0;
        if let Some(recovery) = &mut self.recovery {
            recovery.new_identity = false;
            recovery.resequence = true;
        }
    }

    /// The oldest batch waiting to be (re)sent. Only acknowledged and in-flight batches (at
    /// most `max_in_flight` of them) can be ahead of it, so this is a short scan however long
    /// the queue is.
    fn first_ready(&self) -> Option<usize> {
        self.sealed
            .iter()
            .position(|b| b.state == BatchState::Ready)
    }

    /// How long the open batch waits for more records: not at all while the partition has
    /// nothing in flight, the configured linger otherwise. Batching only pays when requests
    /// queue behind one another; a record that finds the partition idle goes at once, so low
    /// load gets the round trip's latency and high load still gets full batches (the rule of
    /// Nagle's algorithm, with the acknowledgement as the signal).
    fn linger(&self) -> Duration {
        if self.in_flight == 0 {
            Duration::ZERO
        } else {
            self.config.linger
        }
    }

    /// A batch is open and takes more records: the last record did not fill it.
    pub fn is_filling(&self) -> bool {
        self.open.is_some()
    }

    /// Nothing open, queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.open.is_none() && self.sealed.is_empty()
    }

    /// The next instant at which [`PartitionQueue::poll_send`] may have something new to do
    /// without an answer arriving first. A linger or retry that waits for requests in flight is
    /// not a wake-up: the answer is, and counting it would spin the sender on a past instant.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let can_send = self.in_flight < self.config.max_in_flight && self.recovery.is_none();
        let linger = self
            .open
            .as_ref()
            .filter(|_| can_send)
            .map(|open| open.created + self.linger().min(self.config.delivery_timeout));
        let retry = self
            .recovery
            .as_ref()
            .filter(|r| self.in_flight == 0 && !r.new_identity)
            .map(|r| r.retry_at);
        let expiry = self.first_ready().map(|index| self.sealed[index].deadline);
        [linger, retry, expiry].into_iter().flatten().min()
    }
}

/// Answers every record of `batch` with `error`, releasing its share of the buffer.
fn fail(batch: SealedBatch, error: &ClientError) {
    if let Some(completer) = batch.completer {
        completer.complete(Err(error.clone()));
    }
}

/// Whether `error` is a `NOT_LEADER` that names the partition's leader.
fn names_the_leader(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Broker {
            code: ErrorCode::NotLeader,
            leader: Some(leader),
            ..
        } if !leader.is_empty()
    )
}

#[cfg(test)]
mod tests;
