//! The queue's batching, pipelining, retry and sequence rules, driven with a fake clock and
//! fake broker answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_codec::batch::{Batch, RecordInput};
use cairn_proto::v1::ErrorCode;
use tokio::sync::Semaphore;

use std::future::Future;

use super::super::Placement;
use super::*;

const PID: ProducerIdentity = ProducerIdentity {
    producer_id: 7,
    producer_epoch: 0,
};

type Results = Vec<DeliveryFuture>;

fn config() -> Arc<ProducerConfig> {
    Arc::new(ProducerConfig {
        batch_size: 100,
        linger: Duration::from_millis(5),
        max_in_flight: 3,
        retry_backoff: Duration::from_millis(100),
        delivery_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(2),
        ..ProducerConfig::default()
    })
}

struct Fixture {
    queue: PartitionQueue,
    buffer: Arc<Semaphore>,
    results: Results,
    start: Instant,
}

impl Fixture {
    fn new(identity: Option<ProducerIdentity>) -> Fixture {
        Fixture {
            queue: PartitionQueue::new(3, config(), identity),
            buffer: Arc::new(Semaphore::new(1 << 20)),
            results: Vec::new(),
            start: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Appends one record of `size` bytes (as the buffer counts it) at `ms`.
    fn append(&mut self, size: usize, ms: u64) -> bool {
        let value = vec![b'v'; 8];
        let record = RecordInput {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp_ms: 1,
        };
        self.buffer
            .try_acquire_many(size as u32)
            .expect("buffer room")
            .forget();
        let at = self.at(ms);
        let appended = self.queue.append(&record, size, &self.buffer, || at);
        self.results.push(appended.delivery);
        appended.sealed
    }

    /// The record's result if it has one (it is taken: ask once per record).
    fn result(&mut self, index: usize) -> Option<Result<Placement, ClientError>> {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(&mut self.results[index]).poll(&mut context) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        }
    }
}

fn sequence_of(ticket: &SendTicket) -> (i64, i32, i32) {
    let batch = Batch::validate(ticket.bytes.clone()).expect("a valid batch");
    let header = batch.header();
    (
        header.producer_id,
        header.base_sequence,
        header.record_count,
    )
}

fn refused(code: ErrorCode) -> ClientError {
    ClientError::Broker {
        code,
        status: tonic::Code::InvalidArgument,
        message: format!("{code:?}"),
        leader: None,
    }
}

fn timed_out() -> ClientError {
    ClientError::Broker {
        code: ErrorCode::RequestTimedOut,
        status: tonic::Code::DeadlineExceeded,
        message: "no answer".into(),
        leader: None,
    }
}

/// Appends `count` full batches (one 100-byte record each) at time 0.
fn full_batches(fixture: &mut Fixture, count: usize) {
    full_batches_at(fixture, count, 0);
}

/// Appends `count` full batches at `ms`.
fn full_batches_at(fixture: &mut Fixture, count: usize, ms: u64) {
    for _ in 0..count {
        assert!(fixture.append(100, ms), "a full batch is sealed at once");
    }
}

#[test]
fn a_record_that_finds_the_partition_idle_goes_at_once() {
    let mut f = Fixture::new(Some(PID));
    assert!(!f.append(40, 0));
    assert_eq!(
        f.queue.next_wakeup(),
        Some(f.at(0)),
        "nothing in flight: no linger"
    );
    let tickets = f.queue.poll_send(f.at(0));
    assert_eq!(tickets.len(), 1);
    assert_eq!(sequence_of(&tickets[0]), (7, 0, 1));
}

#[test]
fn behind_a_request_in_flight_records_wait_for_linger_or_a_full_batch() {
    let mut f = Fixture::new(Some(PID));
    f.append(40, 0);
    let first = f.queue.poll_send(f.at(0));
    assert_eq!(first.len(), 1);
    assert!(!f.append(40, 1));
    assert!(!f.append(40, 2));
    assert!(
        f.queue.poll_send(f.at(5)).is_empty(),
        "neither full nor lingered"
    );
    assert_eq!(f.queue.next_wakeup(), Some(f.at(6)));
    let tickets = f.queue.poll_send(f.at(6));
    assert_eq!(tickets.len(), 1);
    assert_eq!(sequence_of(&tickets[0]), (7, 1, 2));
    // A record that would overflow the open batch seals it and starts the next one.
    assert!(!f.append(60, 10));
    assert!(f.append(60, 10));
    let third = f.queue.poll_send(f.at(10)).remove(0);
    assert_eq!(sequence_of(&third), (7, 3, 1));
    // Once every request is answered, what is open goes without waiting out its linger.
    f.queue.on_success(first[0].batch_id, 0);
    f.queue.on_success(tickets[0].batch_id, 1);
    assert!(
        f.queue.poll_send(f.at(11)).is_empty(),
        "one still in flight"
    );
    f.queue.on_success(third.batch_id, 3);
    let last = f.queue.poll_send(f.at(11));
    assert_eq!(
        last.len(),
        1,
        "sent at 11 ms, before its linger ends at 15 ms"
    );
    assert_eq!(sequence_of(&last[0]), (7, 4, 1));
}

#[test]
fn acknowledged_records_get_consecutive_offsets_and_free_the_buffer() {
    let mut f = Fixture::new(Some(PID));
    f.append(30, 0);
    f.append(30, 0);
    let ticket = f.queue.poll_send(f.at(5)).remove(0);
    assert_eq!(f.buffer.available_permits(), (1 << 20) - 60);
    f.queue.on_success(ticket.batch_id, 40);
    assert_eq!(f.result(0).unwrap().unwrap().offset, 40);
    assert_eq!(
        f.result(1).unwrap().unwrap(),
        Placement {
            partition: 3,
            offset: 41
        }
    );
    assert_eq!(f.buffer.available_permits(), 1 << 20);
    assert!(f.queue.is_idle());
}

#[test]
fn at_most_max_in_flight_requests_per_partition() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 5);
    let tickets = f.queue.poll_send(f.at(0));
    let sequences: Vec<_> = tickets.iter().map(|t| sequence_of(t).1).collect();
    assert_eq!(sequences, [0, 1, 2]);
    assert!(f.queue.poll_send(f.at(0)).is_empty());
    f.queue.on_success(tickets[0].batch_id, 0);
    let next = f.queue.poll_send(f.at(0));
    assert_eq!(next.len(), 1);
    assert_eq!(sequence_of(&next[0]).1, 3);
}

#[test]
fn a_retriable_failure_drains_backs_off_then_resends_in_order_one_at_a_time() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 3);
    let t = f.queue.poll_send(f.at(0));
    f.queue
        .on_failure(t[0].batch_id, refused(ErrorCode::DiskFull), f.at(1));
    // The later ones come back as gaps: expected while batch 0 is retried.
    f.queue.on_failure(
        t[1].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(2),
    );
    f.queue.on_failure(
        t[2].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(2),
    );
    assert!(
        f.result(1).is_none() && f.result(2).is_none(),
        "gaps are not failures"
    );
    assert!(f.queue.poll_send(f.at(50)).is_empty(), "backing off");
    // The backoff counts from the last failure (at 2 ms).
    let probe = f.queue.poll_send(f.at(102));
    assert_eq!(probe.len(), 1, "recovery sends one batch at a time");
    assert_eq!(
        sequence_of(&probe[0]).1,
        0,
        "same sequence: a duplicate would be recognised"
    );
    f.queue.on_success(probe[0].batch_id, 0);
    let rest: Vec<_> = f
        .queue
        .poll_send(f.at(103))
        .iter()
        .map(|t| sequence_of(t).1)
        .collect();
    assert_eq!(rest, [1, 2], "pipelining resumes after the probe succeeds");
}

/// A `NOT_LEADER` answer, naming the leader when `hint` is set.
fn not_leader(hint: Option<&str>) -> ClientError {
    ClientError::Broker {
        code: ErrorCode::NotLeader,
        status: tonic::Code::FailedPrecondition,
        message: "not the leader".into(),
        leader: hint.map(Into::into),
    }
}

#[test]
fn a_not_leader_naming_the_new_leader_is_retried_at_once_but_only_once_in_a_row() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 2);
    let t = f.queue.poll_send(f.at(0));
    f.queue
        .on_failure(t[0].batch_id, not_leader(Some("10.0.0.2:7070")), f.at(1));
    f.queue
        .on_failure(t[1].batch_id, not_leader(Some("10.0.0.2:7070")), f.at(1));
    let probe = f.queue.poll_send(f.at(1));
    assert_eq!(probe.len(), 1, "no backoff: the new leader is known");
    assert_eq!(sequence_of(&probe[0]).1, 0, "same sequence");
    // The named node does not lead either (it named another): now the backoff waits.
    f.queue.on_failure(
        probe[0].batch_id,
        not_leader(Some("10.0.0.3:7070")),
        f.at(2),
    );
    assert!(f.queue.poll_send(f.at(50)).is_empty(), "backing off");
    assert_eq!(
        f.queue.poll_send(f.at(202)).len(),
        1,
        "second attempt's backoff"
    );
}

#[test]
fn a_not_leader_naming_the_new_leader_ends_the_backoff_another_batch_set() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 2);
    let t = f.queue.poll_send(f.at(0));
    // The old leader's first answer comes while the election runs, the next once it is over.
    f.queue.on_failure(t[0].batch_id, not_leader(None), f.at(1));
    assert!(f.queue.poll_send(f.at(5)).is_empty(), "backing off");
    f.queue
        .on_failure(t[1].batch_id, not_leader(Some("10.0.0.2:7070")), f.at(10));
    let probe = f.queue.poll_send(f.at(10));
    assert_eq!(probe.len(), 1, "the new leader is known: no more backoff");
    assert_eq!(
        sequence_of(&probe[0]).1,
        0,
        "resent from the front, same sequence"
    );
}

#[test]
fn a_not_leader_naming_no_leader_waits_the_backoff() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 1);
    let t = f.queue.poll_send(f.at(0));
    f.queue.on_failure(t[0].batch_id, not_leader(None), f.at(1));
    assert!(
        f.queue.poll_send(f.at(50)).is_empty(),
        "an election may be under way"
    );
    assert_eq!(f.queue.poll_send(f.at(101)).len(), 1);
}

#[test]
fn an_unknown_topic_from_a_node_that_lags_the_metadata_is_retried_with_the_same_sequence() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 1);
    let t = f.queue.poll_send(f.at(0));
    f.queue.on_failure(
        t[0].batch_id,
        refused(ErrorCode::UnknownTopicOrPartition),
        f.at(1),
    );
    assert!(
        f.result(0).is_none(),
        "not failed: the node may be catching up"
    );
    let retry = f.queue.poll_send(f.at(200));
    assert_eq!(retry.len(), 1);
    assert_eq!(sequence_of(&retry[0]), sequence_of(&t[0]));
    f.queue.on_success(retry[0].batch_id, 0);
    assert_eq!(f.result(0).unwrap().unwrap().offset, 0);
}

#[test]
fn a_refused_batch_fails_alone_and_the_batches_behind_it_are_renumbered() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 3);
    let t = f.queue.poll_send(f.at(0));
    f.queue.on_success(t[0].batch_id, 0);
    f.queue
        .on_failure(t[1].batch_id, refused(ErrorCode::RecordTooLarge), f.at(1));
    let failure = f.result(1).unwrap().unwrap_err();
    assert_eq!(failure.code(), Some(ErrorCode::RecordTooLarge));
    f.queue.on_failure(
        t[2].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(1),
    );
    assert!(f.result(2).is_none());
    let resent = f.queue.poll_send(f.at(200));
    assert_eq!(
        sequence_of(&resent[0]),
        (7, 1, 1),
        "takes the refused batch's sequence"
    );
    f.queue.on_success(resent[0].batch_id, 1);
    assert_eq!(f.result(2).unwrap().unwrap().offset, 1);
    full_batches(&mut f, 1);
    assert_eq!(sequence_of(&f.queue.poll_send(f.at(200))[0]).1, 2);
}

#[test]
fn an_unexplained_gap_is_a_failure() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 1);
    let t = f.queue.poll_send(f.at(0));
    f.queue.on_failure(
        t[0].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(1),
    );
    let failure = f.result(0).unwrap().unwrap_err();
    assert_eq!(failure.code(), Some(ErrorCode::OutOfOrderSequence));
}

#[test]
fn a_batch_never_sent_expires_and_the_rest_move_up() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 1);
    let first = f.queue.poll_send(f.at(0)).remove(0);
    f.queue
        .on_failure(first.batch_id, refused(ErrorCode::Throttled), f.at(1));
    // Retries keep failing until the delivery deadline passes while the batch waits.
    let mut now = 101;
    loop {
        let tickets = f.queue.poll_send(f.at(now));
        if let Some(ticket) = tickets.first() {
            f.queue
                .on_failure(ticket.batch_id, refused(ErrorCode::Throttled), f.at(now));
        }
        if let Some(result) = f.result(0) {
            let err = result.unwrap_err();
            assert!(matches!(err, ClientError::DeliveryTimeout { .. }), "{err}");
            assert!(
                err.to_string().contains("Throttled"),
                "names the last error: {err}"
            );
            break;
        }
        now += 1000;
        assert!(now < 20_000, "the delivery timeout must end the retries");
    }
    assert!(
        !f.queue.needs_identity(),
        "refusals wrote nothing: no new producer id needed"
    );
    full_batches_at(&mut f, 1, now);
    let next = f.queue.poll_send(f.at(now));
    assert_eq!(
        sequence_of(&next[0]).1,
        0,
        "the expired batch's sequence is reused"
    );
}

#[test]
fn expiry_with_an_unknown_outcome_waits_for_a_new_producer_id() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 2);
    let t = f.queue.poll_send(f.at(0));
    f.queue.on_success(t[1].batch_id, 5); // the broker took batch 1 ...
    f.queue.on_failure(t[0].batch_id, timed_out(), f.at(10_001)); // ... and maybe batch 0.
    assert!(matches!(
        f.result(0).unwrap().unwrap_err(),
        ClientError::DeliveryTimeout { .. }
    ));
    assert_eq!(f.result(1).unwrap().unwrap().offset, 5);
    full_batches_at(&mut f, 1, 10_001);
    assert!(f.queue.needs_identity());
    assert!(
        f.queue.poll_send(f.at(10_002)).is_empty(),
        "nothing goes out under the old id"
    );
    f.queue.set_identity(ProducerIdentity {
        producer_id: 8,
        producer_epoch: 0,
    });
    let resent = f.queue.poll_send(f.at(10_003));
    assert_eq!(sequence_of(&resent[0]), (8, 0, 1));
}

#[test]
fn an_ambiguous_failure_is_retried_with_the_same_sequence() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 1);
    let t = f.queue.poll_send(f.at(0));
    f.queue.on_failure(t[0].batch_id, timed_out(), f.at(2_000));
    let again = f.queue.poll_send(f.at(2_100));
    assert_eq!(sequence_of(&again[0]).1, 0);
    assert_eq!(again[0].timeout, Duration::from_secs(2));
    f.queue.on_success(again[0].batch_id, 9);
    assert_eq!(f.result(0).unwrap().unwrap().offset, 9);
}

#[test]
fn without_idempotence_batches_carry_no_producer_fields() {
    let mut f = Fixture::new(None);
    full_batches(&mut f, 1);
    let t = f.queue.poll_send(f.at(0));
    assert_eq!(sequence_of(&t[0]), (-1, -1, 1));
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(next_sequence_after(i32::MAX - 1, 2), 0);
    assert_eq!(next_sequence_after(5, 3), 8);
    let _ = Bytes::new();
}

#[test]
fn a_gap_from_requests_served_out_of_order_is_retried_even_after_the_earlier_one_succeeded() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 2);
    let t = f.queue.poll_send(f.at(0));
    // The broker served batch 1 first (a gap), then batch 0; the answers arrive in that
    // order or the other, and either way batch 1 is resent, not failed.
    f.queue.on_success(t[0].batch_id, 0);
    f.queue.on_failure(
        t[1].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(1),
    );
    assert!(f.result(1).is_none());
    let again = f.queue.poll_send(f.at(200));
    assert_eq!(sequence_of(&again[0]).1, 1);
    // Sent as the oldest this time, a gap would be real.
    f.queue.on_failure(
        again[0].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(201),
    );
    assert_eq!(
        f.result(1).unwrap().unwrap_err().code(),
        Some(ErrorCode::OutOfOrderSequence)
    );
}

#[test]
fn unknown_producer_is_a_gap_when_sent_behind_others_and_a_lost_state_otherwise() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 2);
    let t = f.queue.poll_send(f.at(0));
    // The broker saw batch 1 first, before it knew the producer at all.
    f.queue.on_failure(
        t[1].batch_id,
        refused(ErrorCode::UnknownProducerId),
        f.at(1),
    );
    f.queue.on_success(t[0].batch_id, 0);
    assert!(!f.queue.needs_identity());
    let again = f.queue.poll_send(f.at(200));
    assert_eq!(sequence_of(&again[0]), (7, 1, 1));
    // Sent as the oldest and still unknown: a new producer id, sequences from 0.
    f.queue.on_failure(
        again[0].batch_id,
        refused(ErrorCode::UnknownProducerId),
        f.at(201),
    );
    assert!(f.queue.needs_identity());
    f.queue.set_identity(ProducerIdentity {
        producer_id: 9,
        producer_epoch: 0,
    });
    let fresh = f.queue.poll_send(f.at(2_000));
    assert_eq!(sequence_of(&fresh[0]), (9, 0, 1));
}

#[test]
fn no_wake_up_is_due_while_the_queue_can_only_wait_for_answers() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 3);
    let t = f.queue.poll_send(f.at(0));
    assert_eq!(t.len(), 3);
    f.append(10, 1); // lingers, but every request slot is taken
    let far = f.at(10_000);
    let not_soon = |wake: Option<Instant>| wake.is_none_or(|w| w >= far);
    assert!(
        not_soon(f.queue.next_wakeup()),
        "only the delivery deadline can be due, not the linger"
    );
    f.queue
        .on_failure(t[0].batch_id, refused(ErrorCode::DiskFull), f.at(2));
    assert!(
        not_soon(f.queue.next_wakeup()),
        "the retry waits for the answers in flight"
    );
    f.queue.on_failure(
        t[1].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(3),
    );
    f.queue.on_failure(
        t[2].batch_id,
        refused(ErrorCode::OutOfOrderSequence),
        f.at(3),
    );
    assert_eq!(
        f.queue.next_wakeup(),
        Some(f.at(103)),
        "now the backoff is what waits"
    );
}

/// A transport failure mid-request (the leader was SIGKILLed): the batch may be in the log.
fn connection_lost() -> ClientError {
    ClientError::Broker {
        code: ErrorCode::BrokerNotAvailable,
        status: tonic::Code::Unavailable,
        message: "connection reset".into(),
        leader: None,
    }
}

#[test]
fn a_batch_that_may_be_written_is_never_resent_under_a_new_producer_id() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 2);
    let t = f.queue.poll_send(f.at(0));
    // The leader dies with both batches out: the next leader may commit either.
    f.queue
        .on_failure(t[0].batch_id, connection_lost(), f.at(10));
    f.queue
        .on_failure(t[1].batch_id, connection_lost(), f.at(10));
    let probe = f.queue.poll_send(f.at(200));
    assert_eq!(sequence_of(&probe[0]), (7, 0, 1));
    // The probe reaches a node that calls the producer unknown (a restarted node whose
    // metadata trails the cluster's). Sent again as producer 9, sequence 0, either batch would
    // be a new batch to the leader, written a second time if its first attempt committed.
    f.queue.on_failure(
        probe[0].batch_id,
        refused(ErrorCode::UnknownProducerId),
        f.at(201),
    );
    // Records sent after this start over under the new producer id.
    full_batches_at(&mut f, 1, 300);
    assert!(f.queue.needs_identity());
    f.queue.set_identity(ProducerIdentity {
        producer_id: 9,
        producer_epoch: 0,
    });
    for record in 0..2 {
        let failure = f.result(record).unwrap().unwrap_err();
        assert!(
            failure.outcome_unknown(),
            "record {record} fails as indeterminate, not as refused: {failure}"
        );
    }
    let sent: Vec<_> = f
        .queue
        .poll_send(f.at(2_000))
        .iter()
        .map(sequence_of)
        .collect();
    assert_eq!(sent, [(9, 0, 1)], "only the batch never sent goes out");
}

#[test]
fn a_new_producer_id_fails_the_batches_behind_that_may_be_written_and_renumbers_the_rest() {
    let mut f = Fixture::new(Some(PID));
    full_batches(&mut f, 3);
    let t = f.queue.poll_send(f.at(0));
    f.queue
        .on_failure(t[0].batch_id, connection_lost(), f.at(10));
    f.queue
        .on_failure(t[1].batch_id, connection_lost(), f.at(10));
    // Batch 2 was refused outright: not written.
    f.queue
        .on_failure(t[2].batch_id, refused(ErrorCode::NotLeader), f.at(10));
    let probe = f.queue.poll_send(f.at(200));
    // Refused for good, though an earlier attempt may be in the log: only a new id is safe
    // for what follows (as after an expiry).
    f.queue.on_failure(
        probe[0].batch_id,
        refused(ErrorCode::RecordTooLarge),
        f.at(201),
    );
    assert_eq!(
        f.result(0).unwrap().unwrap_err().code(),
        Some(ErrorCode::RecordTooLarge)
    );
    assert!(f.queue.needs_identity());
    f.queue.set_identity(ProducerIdentity {
        producer_id: 9,
        producer_epoch: 0,
    });
    assert!(
        f.result(1).unwrap().unwrap_err().outcome_unknown(),
        "batch 1 may be in the log under producer 7: it fails, as indeterminate"
    );
    assert!(f.result(2).is_none(), "batch 2 is still to be sent");
    let resent = f.queue.poll_send(f.at(2_000));
    assert_eq!(sequence_of(&resent[0]), (9, 0, 1));
    f.queue.on_success(resent[0].batch_id, 4);
    assert_eq!(f.result(2).unwrap().unwrap().offset, 4);
}
