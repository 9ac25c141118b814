//! An in-memory Raft log and a state machine that only records what it applied.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership, Vote,
};

use crate::types::{AppliedBatch, BatchData, NodeId, PartitionRaft, PeerNode};
use crate::wire::CairnRaftConfig;

struct LogInner<C: CairnRaftConfig> {
    vote: Option<Vote<NodeId>>,
    entries: BTreeMap<u64, Entry<C>>,
    last_purged: Option<LogId<NodeId>>,
}

/// An in-memory log of any Cairn group; clones share it (openraft's reader is a clone).
pub struct MemLog<C: CairnRaftConfig = PartitionRaft> {
    inner: Arc<Mutex<LogInner<C>>>,
}

impl<C: CairnRaftConfig> Clone for MemLog<C> {
    fn clone(&self) -> Self {
        MemLog {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: CairnRaftConfig> Default for MemLog<C> {
    fn default() -> Self {
        MemLog {
            inner: Arc::new(Mutex::new(LogInner {
                vote: None,
                entries: BTreeMap::new(),
                last_purged: None,
            })),
        }
    }
}

impl<C: CairnRaftConfig> MemLog<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner<C>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: CairnRaftConfig> RaftLogReader<C> for MemLog<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<NodeId>> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl<C: CairnRaftConfig> RaftLogStorage<C> for MemLog<C> {
    type LogReader = MemLog<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> MemLog<C> {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
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
        {
            let mut inner = self.lock();
            for entry in entries {
                inner.entries.insert(entry.log_id.index, entry);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        let kept = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = kept;
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct SmInner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerNode>,
    applied_batches: u64,
    /// CRC-32C over every applied batch's bytes, in order: equal on replicas that applied the
    /// same batches.
    applied_crc: u32,
    snapshot: Option<(SnapshotMeta<NodeId, PeerNode>, Vec<u8>)>,
}

/// A state machine that counts applied batches and checksums them in order; snapshots hold only
/// metadata.
#[derive(Clone, Debug, Default)]
pub struct MemStateMachine {
    inner: Arc<Mutex<SmInner>>,
}

impl MemStateMachine {
    fn lock(&self) -> std::sync::MutexGuard<'_, SmInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many record batches were applied.
    pub fn applied_batches(&self) -> u64 {
        self.lock().applied_batches
    }

    /// How many batches were applied and the CRC-32C over their bytes in apply order: two
    /// replicas that applied the same batches in the same order report the same pair.
    pub fn applied_digest(&self) -> (u64, u32) {
        let inner = self.lock();
        (inner.applied_batches, inner.applied_crc)
    }
}

impl RaftSnapshotBuilder<PartitionRaft> for MemStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<PartitionRaft>, StorageError<NodeId>> {
        let mut inner = self.lock();
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: format!("{:?}", inner.last_applied.map(|l| l.index)),
        };
        inner.snapshot = Some((meta.clone(), Vec::new()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

impl RaftStateMachine<PartitionRaft> for MemStateMachine {
    type SnapshotBuilder = MemStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>), StorageError<NodeId>>
    {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<AppliedBatch>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<PartitionRaft>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let mut answers = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Normal(BatchData(bytes)) => {
                    inner.applied_batches += 1;
                    inner.applied_crc = crc32c::crc32c_append(inner.applied_crc, &bytes);
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                }
                EntryPayload::Blank => {}
            }
            answers.push(AppliedBatch::default());
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> MemStateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), snapshot.into_inner()));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<PartitionRaft>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
