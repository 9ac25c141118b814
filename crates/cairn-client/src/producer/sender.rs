//! The producer's background task: it owns every partition queue, turns `send` calls into
//! records of open batches, sends what the queues release as pre-encoded `Produce` requests
//! (one task per request), and feeds the answers back. Everything that changes queue state
//! happens on this one task, so the queues need no locks.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_codec::batch::RecordInput;
use cairn_codec::{StickyPartitioner, XorShift64, partition_for_key};
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{ErrorCode, ProduceRequest, produce_request::Payload};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::config::ProducerConfig;
use super::partition_queue::{PartitionQueue, Reply, SendTicket};
use super::{OutgoingRecord, ProducerIdentity, init_producer_id};
use crate::error::ClientError;
use crate::routing::Router;

/// Largest produce answer decoded: far above any real one (a partition result per partition).
const MAX_PRODUCE_RESPONSE_BYTES: usize = 64 << 20;

/// Commands from producer handles.
pub(crate) enum Command {
    /// Add a record.
    Send {
        topic: Arc<str>,
        partition_count: u32,
        record: OutgoingRecord,
        size: usize,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    },
    /// Answer once nothing is queued or in flight.
    Flush(oneshot::Sender<()>),
}

/// Answers coming back from request tasks.
enum Event {
    Produced {
        topic: Arc<str>,
        partition: i32,
        batch_id: u64,
        result: Result<i64, ClientError>,
    },
    Identity(Result<ProducerIdentity, ClientError>),
}

/// Most commands handled in one go before queues are polled, so a burst of sends fills
/// batches instead of being polled record by record.
const COMMANDS_PER_ROUND: usize = 4096;

/// A topic's queues and its sticky partitioner for keyless records.
struct TopicQueues {
    partitions: HashMap<i32, PartitionQueue>,
    sticky: StickyPartitioner<XorShift64>,
}

/// The background task's state.
pub(crate) struct Sender {
    router: Router,
    config: Arc<ProducerConfig>,
    identity: Option<ProducerIdentity>,
    topics: HashMap<Arc<str>, TopicQueues>,
    events: mpsc::UnboundedSender<Event>,
    event_receiver: mpsc::UnboundedReceiver<Event>,
    flushes: Vec<oneshot::Sender<()>>,
    identity_request: bool,
    identity_retry_at: Option<Instant>,
    identity_attempts: u32,
    seed: u64,
}

impl Sender {
    /// A task that sends each batch to its partition's leader through `router`; `identity`
    /// is `Some` for an idempotent producer.
    pub fn new(
        router: Router,
        config: Arc<ProducerConfig>,
        identity: Option<ProducerIdentity>,
    ) -> Sender {
        let (events, event_receiver) = mpsc::unbounded_channel();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
        Sender {
            router,
            config,
            identity,
            topics: HashMap::new(),
            events,
            event_receiver,
            flushes: Vec::new(),
            identity_request: false,
            identity_retry_at: None,
            identity_attempts: 0,
            seed,
        }
    }

    /// Runs until every handle is gone and everything held has its answer.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut closing = false;
        loop {
            let now = Instant::now();
            self.poll_queues(now);
            self.answer_flushes();
            if closing && self.is_idle() {
                return;
            }
            let wake = self
                .next_wakeup()
                .unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                biased;
                Some(event) = self.event_receiver.recv() => self.on_event(event),
                command = commands.recv(), if !closing => match command {
                    Some(command) => {
                        self.on_command(command);
                        for _ in 1..COMMANDS_PER_ROUND {
                            match commands.try_recv() {
                                Ok(command) => self.on_command(command),
                                Err(_) => break,
                            }
                        }
                    }
                    None => {
                        closing = true;
                        self.seal_all();
                    }
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                topic,
                partition_count,
                record,
                size,
                reply,
                permit,
            } => self.append(topic, partition_count, record, size, reply, permit),
            Command::Flush(done) => {
                self.seal_all();
                self.flushes.push(done);
            }
        }
    }

    fn append(
        &mut self,
        topic: Arc<str>,
        partition_count: u32,
        record: OutgoingRecord,
        size: usize,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    ) {
        let count = NonZeroU32::new(partition_count).unwrap_or(NonZeroU32::MIN);
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let seed = self.seed;
        let queues = self.topics.entry(topic).or_insert_with(|| TopicQueues {
            partitions: HashMap::new(),
            sticky: StickyPartitioner::new(XorShift64::new(seed)),
        });
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
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        } else {
            record.timestamp_ms
        };
        let input = RecordInput {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
            timestamp_ms,
        };
        let identity = self.identity;
        let config = &self.config;
        let queue = queues
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionQueue::new(partition, Arc::clone(config), identity));
        let sealed = queue.append(&input, size, reply, permit, Instant::now());
        if keyless && sealed {
            queues.sticky.on_new_batch(partition as u32, count);
        }
    }

    fn seal_all(&mut self) {
        for queues in self.topics.values_mut() {
            for queue in queues.partitions.values_mut() {
                queue.seal();
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Produced {
                topic,
                partition,
                batch_id,
                result,
            } => {
                let Some(queue) = self
                    .topics
                    .get_mut(&topic)
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
            Event::Identity(result) => {
                self.identity_request = false;
                match result {
                    Ok(identity) => {
                        self.identity_attempts = 0;
                        self.identity = Some(identity);
                        for queues in self.topics.values_mut() {
                            for queue in queues.partitions.values_mut() {
                                if queue.needs_identity() {
                                    queue.set_identity(identity);
                                }
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not get a new producer id; retrying");
                        self.identity_attempts += 1;
                        self.identity_retry_at =
                            Some(now + self.config.backoff(self.identity_attempts));
                    }
                }
            }
        }
    }

    fn poll_queues(&mut self, now: Instant) {
        let mut needs_identity = false;
        let mut tickets = Vec::new();
        for (topic, queues) in &mut self.topics {
            for (&partition, queue) in &mut queues.partitions {
                for ticket in queue.poll_send(now) {
                    tickets.push((Arc::clone(topic), partition, ticket));
                }
                needs_identity |= queue.needs_identity();
            }
        }
        for (topic, partition, ticket) in tickets {
            self.spawn_request(topic, partition, ticket);
        }
        if needs_identity
            && !self.identity_request
            && self.identity_retry_at.is_none_or(|at| now >= at)
        {
            self.identity_request = true;
            self.identity_retry_at = None;
            let router = self.router.clone();
            let events = self.events.clone();
            tokio::spawn(async move {
                let _ = events.send(Event::Identity(init_producer_id(&router).await));
            });
        }
    }

    fn spawn_request(&self, topic: Arc<str>, partition: i32, ticket: SendTicket) {
        let router = self.router.clone();
        let events = self.events.clone();
        let acks = self.config.acks;
        tokio::spawn(async move {
            // Routing may read metadata first: the ticket's deadline covers it too.
            let started = tokio::time::Instant::now();
            let route = tokio::time::timeout(ticket.timeout, router.route(&topic, partition)).await;
            let timeout = ticket.timeout.saturating_sub(started.elapsed());
            let mut request = tonic::Request::new(ProduceRequest {
                topic: topic.to_string(),
                partition: Some(partition),
                acks: acks as i32,
                payload: Some(Payload::RecordBatch(ticket.bytes)),
                producer: None,
                compression: String::new(),
            });
            let timed_out = || ClientError::Broker {
                code: ErrorCode::RequestTimedOut,
                status: tonic::Code::DeadlineExceeded,
                message: format!("no answer within {:?}", ticket.timeout),
                leader: None,
            };
            let result = match route {
                Ok(route) if !timeout.is_zero() => {
                    request.set_timeout(timeout);
                    let mut client = ProducerClient::new(route.channel)
                        .max_decoding_message_size(MAX_PRODUCE_RESPONSE_BYTES);
                    // The grpc-timeout header makes the broker give up; this bounds a broker
                    // that never answers at all.
                    let answer = tokio::time::timeout(timeout, client.produce(request)).await;
                    let result = match answer {
                        Ok(Ok(response)) => first_partition_result(response.into_inner()),
                        Ok(Err(status)) => Err(ClientError::from(status)),
                        Err(_) => Err(timed_out()),
                    };
                    if let Err(error) = &result {
                        // Tells the router where the retry should go; the queue decides whether
                        // there is one.
                        router.on_error(&topic, partition, &route.address, error);
                    }
                    result
                }
                Ok(_) | Err(_) => Err(timed_out()),
            };
            let _ = events.send(Event::Produced {
                topic,
                partition,
                batch_id: ticket.batch_id,
                result,
            });
        });
    }

    fn answer_flushes(&mut self) {
        if !self.flushes.is_empty() && self.is_idle() {
            for done in self.flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.topics
            .values()
            .all(|q| q.partitions.values().all(PartitionQueue::is_idle))
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let queues = self
            .topics
            .values()
            .flat_map(|q| q.partitions.values())
            .filter_map(PartitionQueue::next_wakeup);
        queues.chain(self.identity_retry_at).min()
    }
}

/// The one partition result of a single-partition produce answer, as an offset or an error.
fn first_partition_result(response: cairn_proto::v1::ProduceResponse) -> Result<i64, ClientError> {
    let Some(result) = response.results.first() else {
        return Err(ClientError::local(
            ErrorCode::Internal,
            "the broker answered a produce request without a partition result",
        ));
    };
    if result.error_code != ErrorCode::None as i32 {
        return Err(ClientError::Broker {
            code: ErrorCode::try_from(result.error_code).unwrap_or(ErrorCode::Internal),
            status: tonic::Code::Ok,
            message: result.error_message.clone(),
            leader: None,
        });
    }
    Ok(result.base_offset)
}
