//! [`Replay`]: event-sourcing catch-up. Reads every partition of a topic from its earliest
//! offset (or a [`Checkpoint`]) to the high watermarks captured at start, and hands the caller
//! each record once, in offset order within its partition, with progress and a checkpoint to
//! resume from; optionally it then keeps following new records.
//!
//! Code map:
//! - `plan`: each partition's `[start, end)` from the offset lookups and the checkpoint (pure);
//! - `fetcher`: one task per partition streaming its range (`Subscribe`), checking and trimming
//!   each answer into a `chunk`, and queueing it;
//! - `chunk`: a queued answer in either format and the cursor that walks it;
//! - [`Checkpoint`], [`ReplayConfig`], [`ReplayProgress`]: the public values.
//!
//! Invariants: a partition's chunks enter the shared queue in offset order and the caller
//! takes them in queue order, so per-partition order holds while partitions interleave. A
//! partition's position (what [`Replay::checkpoint`] reports) moves only when the caller is
//! handed a record, or finishes a chunk (past control batches and compacted gaps), so a
//! checkpoint never claims a record the caller has not seen. The replay does not interpret
//! records, commit anything to the broker, or notice partitions added after it started.

mod checkpoint;
mod chunk;
mod config;
mod fetcher;
mod plan;
mod progress;

use std::sync::Arc;
use std::time::Instant;

use cairn_proto::v1::OffsetSpec;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

pub use checkpoint::{CHECKPOINT_FORMAT_LINE, Checkpoint, MAX_CHECKPOINT_PARTITIONS};
pub use config::{
    DEFAULT_FETCH_MAX_BYTES, DEFAULT_MAX_PARTITIONS_IN_FLIGHT, DEFAULT_PREFETCH_CHUNKS,
    MAX_FETCH_MAX_BYTES, ReplayConfig, ReplayFormat,
};
pub use fetcher::{RETRY_ATTEMPTS, RETRY_BACKOFF_INITIAL, RETRY_BACKOFF_MAX};
pub use progress::{PartitionProgress, ReplayProgress};

use self::chunk::{Chunk, ChunkCursor};
use self::fetcher::{ChunkResult, PartitionFetch};
use crate::consumer::list_offsets;
use crate::error::ClientError;
use crate::record_view::RecordView;
use crate::routing::Router;

/// A replay of one topic. Create it with [`Replay::start`], then call [`Replay::next`] until
/// it returns `None`.
///
/// ```no_run
/// # async fn rebuild() -> Result<(), cairn_client::ClientError> {
/// use std::collections::HashMap;
/// use cairn_client::{Replay, ReplayConfig};
///
/// let mut replay = Replay::start("127.0.0.1:7070", "orders", ReplayConfig::default()).await?;
/// let mut orders_per_customer: HashMap<Vec<u8>, u64> = HashMap::new();
/// while let Some(event) = replay.next().await {
///     let event = event?;
///     *orders_per_customer.entry(event.key.unwrap_or_default().to_vec()).or_default() += 1;
/// }
/// let resume_from = replay.checkpoint(); // store it with the read model
/// # Ok(()) }
/// ```
///
/// Speed: every received HTTP/2 frame (up to a MiB) lands in a buffer of its own. With glibc's
/// default settings those buffers are mapped fresh or trimmed once freed, and a replay spends
/// a large share of its CPU faulting in and zeroing pages; the `cairn` binary therefore raises
/// glibc's mmap and trim thresholds at start, and a program replaying large topics can do the
/// same, e.g. with `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=67108864`
/// (BENCHMARKS.md has the figures).
#[derive(Debug)]
pub struct Replay {
    topic: String,
    queue: mpsc::Receiver<ChunkResult>,
    current: Option<Chunk>,
    cursor: ChunkCursor,
    /// Index in `partitions` of the current chunk's partition, looked up once per chunk
    /// rather than per record.
    current_idx: usize,
    /// In partition order.
    partitions: Vec<PartitionProgress>,
    records: u64,
    payload_bytes: u64,
    started: Instant,
    follow: bool,
    failed: bool,
    tasks: Vec<JoinHandle<()>>,
}

impl Replay {
    /// Connects, looks up every partition's earliest offset and high watermark (the captured
    /// end), applies `config.checkpoint`, and starts fetching.
    ///
    /// # Errors
    /// - [`ClientError::InvalidArgument`] for a setting out of range;
    /// - [`ClientError::Connect`] when no broker answers;
    /// - [`ClientError::Broker`] with code `UnknownTopicOrPartition` for an unknown topic;
    /// - [`ClientError::CheckpointTopicMismatch`], [`ClientError::CheckpointUnknownPartition`]
    ///   or [`ClientError::CheckpointOffsetOutOfRange`] for a checkpoint that does not fit.
    pub async fn start(
        brokers: &str,
        topic: &str,
        config: ReplayConfig,
    ) -> Result<Replay, ClientError> {
        config.validate().map_err(ClientError::InvalidArgument)?;
        let router = Router::connect(brokers, config.timeouts).await?;
        let earliest = list_offsets(&router, topic, &[], OffsetSpec::Earliest, 0).await?;
        let latest = list_offsets(&router, topic, &[], OffsetSpec::Latest, 0).await?;
        let plans = plan::plan(topic, &earliest, &latest, config.checkpoint.as_ref())?;
        let (sender, queue) = mpsc::channel(config.prefetch_chunks);
        let turns = Arc::new(Semaphore::new(config.max_partitions_in_flight));
        let mut tasks = Vec::new();
        for plan in &plans {
            if plan.start >= plan.end && !config.follow {
                continue;
            }
            let fetch = PartitionFetch {
                router: router.clone(),
                topic: topic.to_string(),
                partition: plan.partition,
                start: plan.start,
                end: plan.end,
                follow: config.follow,
                format: config.format,
                max_bytes: config.fetch_max_bytes,
            };
            tasks.push(tokio::spawn(fetch.run(Arc::clone(&turns), sender.clone())));
        }
        // The tasks hold the only senders: the queue closes when the last one finishes.
        drop(sender);
        let partitions = plans
            .iter()
            .map(|plan| PartitionProgress {
                partition: plan.partition,
                start_offset: plan.start,
                position: plan.start,
                end_offset: plan.end,
            })
            .collect();
        Ok(Replay {
            topic: topic.to_string(),
            queue,
            current: None,
            cursor: ChunkCursor::default(),
            current_idx: 0,
            partitions,
            records: 0,
            payload_bytes: 0,
            started: Instant::now(),
            follow: config.follow,
            failed: false,
            tasks,
        })
    }

    /// The next record: of some partition, after every earlier record of that partition.
    /// `None` once every partition has reached its captured end (never, in follow mode) or
    /// after an error was returned. The record borrows the replay's buffers until the next
    /// call; [`RecordView::to_record`] keeps one.
    ///
    /// One call per record costs an `await` per record; [`Replay::next_chunk`] hands out a
    /// whole fetched chunk per call, which is what a replay at full speed wants.
    ///
    /// Cancel safe: dropping the future (in a `select!`, say) loses nothing.
    ///
    /// # Errors
    /// A fetch failure that retrying did not cure (e.g. `OffsetOutOfRange` after retention
    /// deleted the records being read), or [`ClientError::CorruptBatch`]. The replay stops:
    /// its checkpoint still names the last record handed out.
    pub async fn next(&mut self) -> Option<Result<RecordView<'_>, ClientError>> {
        if let Err(err) = self.ready_chunk().await? {
            return Some(Err(err));
        }
        self.current_records()?.next()
    }

    /// The records of the next fetched chunk: one partition's, in offset order, each after
    /// every earlier record of that partition. Iterate them without awaiting; records the
    /// iterator was not asked for stay for the next call (of this or of [`Replay::next`]).
    /// `None` and errors as for [`Replay::next`].
    ///
    /// ```no_run
    /// # async fn count(mut replay: cairn_client::Replay) -> Result<u64, cairn_client::ClientError> {
    /// let mut events = 0_u64;
    /// while let Some(chunk) = replay.next_chunk().await {
    ///     for record in chunk? {
    ///         let _event = record?;
    ///         events += 1;
    ///     }
    /// }
    /// # Ok(events) }
    /// ```
    ///
    /// Cancel safe, as [`Replay::next`] is.
    pub async fn next_chunk(&mut self) -> Option<Result<ReplayChunk<'_>, ClientError>> {
        if let Err(err) = self.ready_chunk().await? {
            return Some(Err(err));
        }
        self.current_records().map(Ok)
    }

    /// Makes `current` a chunk with a record left to take, waiting for the queue if needed.
    /// `None` at the end (or after a failure); an error when a fetch task failed.
    async fn ready_chunk(&mut self) -> Option<Result<(), ClientError>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(chunk) = &self.current {
                if chunk.has_record_at(&self.cursor) {
                    return Some(Ok(()));
                }
                let (partition, next_offset) = (chunk.partition(), chunk.next_offset());
                self.current = None;
                self.advance_past_chunk(partition, next_offset);
            }
            match self.queue.recv().await {
                Some(Ok(chunk)) => {
                    self.current_idx = index_of(&self.partitions, chunk.partition());
                    self.current = Some(chunk);
                    self.cursor = ChunkCursor::default();
                }
                Some(Err(err)) => return Some(Err(self.fail(err))),
                None => return None,
            }
        }
    }

    /// The records left in the current chunk, as an iterator that keeps the replay's place.
    fn current_records(&mut self) -> Option<ReplayChunk<'_>> {
        Some(ReplayChunk {
            chunk: self.current.as_ref()?,
            cursor: &mut self.cursor,
            progress: self.partitions.get_mut(self.current_idx),
            records: &mut self.records,
            payload_bytes: &mut self.payload_bytes,
            failed: &mut self.failed,
            tasks: &self.tasks,
        })
    }

    /// The topic being replayed.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Where a later replay should start to continue exactly after the last record handed
    /// out: the next offset per partition, for every partition.
    pub fn checkpoint(&self) -> Checkpoint {
        let offsets = self
            .partitions
            .iter()
            .map(|p| (p.partition, p.position))
            .collect();
        Checkpoint::from_positions(&self.topic, offsets)
    }

    /// How far the replay is.
    pub fn progress(&self) -> ReplayProgress {
        ReplayProgress {
            records: self.records,
            payload_bytes: self.payload_bytes,
            elapsed: self.started.elapsed(),
            partitions: self.partitions.clone(),
        }
    }

    /// True when every partition has reached the end captured at start (in follow mode the
    /// replay goes on reading new records after that).
    pub fn caught_up(&self) -> bool {
        self.partitions.iter().all(|p| p.position >= p.end_offset)
    }

    /// A chunk has been handed out to its end: the partition's position moves past all it
    /// covered, but not past the captured end unless following (a batch may straddle it).
    fn advance_past_chunk(&mut self, partition: i32, next_offset: i64) {
        let follow = self.follow;
        let idx = index_of(&self.partitions, partition);
        if let Some(progress) = self.partitions.get_mut(idx) {
            let reached = if follow {
                next_offset
            } else {
                next_offset.min(progress.end_offset)
            };
            progress.position = progress.position.max(reached);
        }
    }

    fn fail(&mut self, err: ClientError) -> ClientError {
        self.failed = true;
        for task in &self.tasks {
            task.abort();
        }
        err
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        // The fetch tasks would otherwise keep their subscriptions (forever, in follow mode).
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The records of one fetched chunk, from [`Replay::next_chunk`]: an iterator over one
/// partition's records in offset order. Each record handed out moves the replay's position
/// (and so its [`Checkpoint`]) past it; records not taken stay in the replay. A malformed
/// record is an error item, after which the iterator and the replay end.
#[derive(Debug)]
pub struct ReplayChunk<'a> {
    chunk: &'a Chunk,
    cursor: &'a mut ChunkCursor,
    /// `None` only if the broker answered for a partition not asked for.
    progress: Option<&'a mut PartitionProgress>,
    records: &'a mut u64,
    payload_bytes: &'a mut u64,
    failed: &'a mut bool,
    tasks: &'a [JoinHandle<()>],
}

impl ReplayChunk<'_> {
    /// The partition all of this chunk's records belong to.
    pub fn partition(&self) -> i32 {
        self.chunk.partition()
    }
}

impl<'a> Iterator for ReplayChunk<'a> {
    type Item = Result<RecordView<'a>, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if *self.failed {
            return None;
        }
        match self.chunk.record_at(self.cursor)? {
            Ok(record) => {
                if let Some(progress) = self.progress.as_deref_mut() {
                    progress.position = progress.position.max(record.offset.saturating_add(1));
                }
                *self.records += 1;
                *self.payload_bytes += record.payload_bytes() as u64;
                Some(Ok(record))
            }
            Err(err) => {
                *self.failed = true;
                for task in self.tasks {
                    task.abort();
                }
                Some(Err(err))
            }
        }
    }
}

/// The index of `partition`'s entry (the list is in partition order, as `plan` made it), or
/// one past the end, which no entry has, if the broker sent a partition not asked for.
fn index_of(partitions: &[PartitionProgress], partition: i32) -> usize {
    partitions
        .binary_search_by_key(&partition, |p| p.partition)
        .unwrap_or(partitions.len())
}
