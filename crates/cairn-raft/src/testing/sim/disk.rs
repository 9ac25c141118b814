//! A simulated disk for one node's Raft log: what openraft has appended is visible at once, but
//! durable only after a flush that completes a seeded delay later, in order. A crash keeps the
//! vote (saved synchronously, as openraft requires), every flushed entry, and a seeded prefix of
//! the unflushed tail (the part of a torn write that happened to reach the platter); the rest is
//! gone. Truncation and purge are modelled as durable when they return, as `cairn-log` makes them.
//!
//! Invariant: the durable log is the visible log below `dirty_from` (everything, if `None`);
//! entries at or past it were appended after the last completed flush.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogReader, StorageError, Vote};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::rng::SimRng;
use crate::types::NodeId;
use crate::wire::CairnRaftConfig;

/// A planted storage bug, to show that the checker catches a disk that breaks its promise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiskBug {
    /// The disk keeps its promises.
    #[default]
    None,
    /// A crash also loses the last flushed entry (a flush acknowledged before it was durable).
    ForgetsFlushedTail,
}

struct DiskState<C: CairnRaftConfig> {
    vote: Option<Vote<NodeId>>,
    entries: BTreeMap<u64, Entry<C>>,
    last_purged: Option<LogId<NodeId>>,
    dirty_from: Option<u64>,
    /// Bumped by each crash, so a flush of an earlier life completes nothing.
    life: u64,
    flusher: Option<JoinHandle<()>>,
    rng: SimRng,
    bug: DiskBug,
    /// Flushes wait while set; a crash then keeps none of the unflushed entries.
    stalled: bool,
}

/// One node's disk; it outlives the node's crashes. Clones share it.
pub struct SimDisk<C: CairnRaftConfig> {
    state: Arc<Mutex<DiskState<C>>>,
}

impl<C: CairnRaftConfig> Clone for SimDisk<C> {
    fn clone(&self) -> Self {
        SimDisk {
            state: Arc::clone(&self.state),
        }
    }
}

/// The log storage openraft uses in one life of a node (a handle on its disk).
pub struct SimLog<C: CairnRaftConfig> {
    disk: SimDisk<C>,
    flushes: mpsc::UnboundedSender<LogFlushed<C>>,
    /// The disk's life this handle writes in; after a crash its writes go nowhere.
    life: u64,
}

impl<C: CairnRaftConfig> Clone for SimLog<C> {
    fn clone(&self) -> Self {
        SimLog {
            disk: self.disk.clone(),
            flushes: self.flushes.clone(),
            life: self.life,
        }
    }
}

impl<C: CairnRaftConfig> SimLog<C> {
    /// The disk, if this handle's life is the current one: an openraft that is still stopping
    /// after its node crashed must not write to the disk of the node's next life.
    fn live_disk(&self) -> Option<std::sync::MutexGuard<'_, DiskState<C>>> {
        let state = self.disk.lock();
        (state.life == self.life).then_some(state)
    }
}

impl<C: CairnRaftConfig> SimDisk<C> {
    /// An empty disk whose flush delays and torn tails are drawn from `rng`.
    pub fn new(rng: SimRng, bug: DiskBug) -> SimDisk<C> {
        SimDisk {
            state: Arc::new(Mutex::new(DiskState {
                vote: None,
                entries: BTreeMap::new(),
                last_purged: None,
                dirty_from: None,
                life: 0,
                flusher: None,
                rng,
                bug,
                stalled: false,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState<C>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log storage for a new life of the node; starts the task that completes its flushes
    /// (one at a time, in the order they were asked for, as one fsync queue would).
    pub fn open(&self) -> SimLog<C> {
        let (flushes, mut queue) = mpsc::unbounded_channel::<LogFlushed<C>>();
        let disk = self.clone();
        let life = self.lock().life;
        let flusher = tokio::spawn(async move {
            while let Some(callback) = queue.recv().await {
                // Mostly quick, sometimes a latency spike: a slow fsync widens the window in
                // which an entry is readable (and replicated) but not yet durable.
                let delay = {
                    let rng = &mut disk.lock().rng;
                    if rng.chance(50) {
                        rng.range(8, 150)
                    } else {
                        rng.range(0, 8)
                    }
                };
                tokio::time::sleep(Duration::from_millis(delay)).await;
                while disk.lock().stalled {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                {
                    let mut state = disk.lock();
                    if state.life != life {
                        return;
                    }
                    // An fsync covers every write made before it completes.
                    state.dirty_from = None;
                }
                callback.log_io_completed(Ok(()));
            }
        });
        if let Some(old) = self.lock().flusher.replace(flusher) {
            old.abort();
        }
        SimLog {
            disk: self.clone(),
            flushes,
            life,
        }
    }

    /// The node lost power: unflushed entries are gone, except a seeded prefix of them.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.life += 1;
        if let Some(flusher) = state.flusher.take() {
            flusher.abort();
        }
        if let Some(dirty_from) = state.dirty_from.take() {
            let unflushed = state.entries.range(dirty_from..).count();
            let kept = match state.bug {
                DiskBug::None if !state.stalled => state
                    .rng
                    .range(0, u64::try_from(unflushed).unwrap_or(0) + 1),
                DiskBug::None | DiskBug::ForgetsFlushedTail => 0,
            };
            state.entries.split_off(&(dirty_from + kept));
        }
        if state.bug == DiskBug::ForgetsFlushedTail {
            state.entries.pop_last();
        }
    }

    /// Holds every flush back (`true`) until released (`false`): a disk whose fsync hangs. A
    /// crash while held loses every unflushed entry.
    pub fn stall_flushes(&self, stalled: bool) {
        self.lock().stalled = stalled;
    }

    /// The entries on the disk now (visible ones, flushed or not), for the checker.
    pub fn entries(&self) -> Vec<Entry<C>> {
        self.lock().entries.values().cloned().collect()
    }
}

impl<C: CairnRaftConfig> RaftLogReader<C> for SimLog<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<NodeId>> {
        Ok(self
            .disk
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl<C: CairnRaftConfig> RaftLogStorage<C> for SimLog<C> {
    type LogReader = SimLog<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<NodeId>> {
        let state = self.disk.lock();
        let last = state.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: last.or(state.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> SimLog<C> {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        if let Some(mut state) = self.live_disk() {
            state.vote = Some(*vote);
        }
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.disk.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + Send,
        I::IntoIter: Send,
    {
        if let Some(mut state) = self.live_disk() {
            for entry in entries {
                let index = entry.log_id.index;
                if let Some(last) = state.entries.keys().next_back() {
                    assert!(
                        index == last + 1,
                        "append at {index} after {last}: openraft truncates before overwriting"
                    );
                }
                state.dirty_from = Some(state.dirty_from.map_or(index, |d| d.min(index)));
                state.entries.insert(index, entry);
            }
        }
        // The flusher is gone only after a crash; openraft of that life is shut down.
        let _ = self.flushes.send(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let Some(mut state) = self.live_disk() else {
            return Ok(());
        };
        state.entries.split_off(&log_id.index);
        if state.dirty_from.is_some_and(|d| d >= log_id.index) {
            state.dirty_from = None;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let Some(mut state) = self.live_disk() else {
            return Ok(());
        };
        let kept = state.entries.split_off(&(log_id.index + 1));
        state.entries = kept;
        state.last_purged = Some(log_id);
        Ok(())
    }
}
