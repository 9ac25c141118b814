//! The state machine of a replicated partition ([`PartitionStateMachine`]). The data is already
//! in the log when an entry commits, so applying is small: it moves the log's high watermark to
//! the offset after the applied entries (consumers read only committed data) and answers each
//! entry with where its records are ([`AppliedBatch`]).
//!
//! Snapshots are metadata only ([`SnapshotPayload`]): a log id and the membership in force
//! there, and where the log continues after it (entry index and offset). A snapshot ends at
//! the log's purge point, not at the last applied entry (see `RaftLog::snapshot_request`): a
//! follower far behind installs one by starting its log over right after it, which is the
//! leader's log start, so its offsets stay the leader's and it is then sent every entry the
//! leader keeps.
//!
//! Retention and Raft: a segment goes only when retention wants it gone *and* Raft has purged
//! every entry in it. The log's entry floor (the first unpurged entry) keeps its retention pass
//! (and compaction, which renumbers entries) off every segment holding an unpurged entry, so
//! openraft never finds an entry missing that it still counts on; each purge raises the floor
//! and runs a retention pass. So that retention is not held back for long, the broker asks how
//! far retention would go (`RaftLog::retention_purge_index`), triggers a snapshot and a purge
//! up to there. A purge never passes the last snapshot, and a snapshot never passes what was
//! applied, so every purged entry was committed and applied.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use cairn_log::{EntryHeader, EntryIndex, Offset};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::applied_file::{APPLIED_CHECKPOINT_ENTRIES, AppliedState, write_applied};
use crate::durable::DurableEnd;
use crate::error::RaftStorageError;
use crate::raft_log::RaftLog;
use crate::snapshot_file::{read_snapshot, write_snapshot};
use crate::types::{AppliedBatch, NodeId, PartitionRaft, PeerNode};

/// The largest snapshot payload accepted: it is a few hundred bytes of JSON; a larger one is
/// refused before it is parsed.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024;

/// What a partition snapshot carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPayload {
    /// The last log id the snapshot covers.
    pub last_log_id: Option<LogId<NodeId>>,
    /// The entry index after the last covered entry: where the log continues.
    pub next_entry: u64,
    /// The offset after the last covered entry's records: the high watermark it gives.
    pub next_offset: u64,
}

/// A built or installed snapshot, kept in memory: it is rebuilt from the applied state on
/// demand, so nothing of it needs to be on disk.
#[derive(Clone, Debug)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, PeerNode>,
    data: Vec<u8>,
}

/// The state machine of one replicated partition, over the group's [`RaftLog`].
#[derive(Debug)]
pub struct PartitionStateMachine {
    raft_log: RaftLog,
    applied: AppliedState,
    /// Entries applied since the applied state was last saved.
    unsaved_entries: u64,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    /// Held by an install and by a build's saving: openraft builds on a task of its own, so a
    /// build may finish while an install runs, and must not put an older snapshot (or applied
    /// state) back over what the install saved.
    snapshots: Arc<tokio::sync::Mutex<()>>,
}

/// Builds a partition snapshot at the log's snapshot point, or from the applied state at the
/// time it was asked for (see [`RaftLog::snapshot_request`]).
#[derive(Debug)]
pub struct PartitionSnapshotBuilder {
    raft_log: RaftLog,
    applied: AppliedState,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    snapshots: Arc<tokio::sync::Mutex<()>>,
}

impl PartitionStateMachine {
    /// The state machine of the group stored in `raft_log`, starting from the applied state it
    /// recovered at open. A log purged before holds its snapshot again, ending at the purge
    /// point, so that a follower that needs the purged entries can be sent it at once.
    pub fn new(raft_log: RaftLog) -> Self {
        let applied = raft_log.recovered_applied().cloned().unwrap_or_default();
        let current = match read_snapshot(raft_log.dir()) {
            // One below the purge point was left by a crash inside an install, which saves it
            // last: the purge point says more.
            Ok(Some((meta, data))) if meta.last_log_id >= raft_log.purged() => {
                Some(StoredSnapshot { meta, data })
            }
            found => {
                if let Err(err) = found {
                    tracing::warn!(dir = %raft_log.dir().display(), %err, "the saved snapshot is unreadable; rebuilding it from the purge point");
                }
                // A directory from before snapshots were saved: rebuilt at the purge point
                // when the log can tell where that is.
                raft_log
                    .purged()
                    .and_then(|purged| snapshot_end(&raft_log, &applied, purged.index, None))
                    .and_then(|(last, next_offset, membership)| {
                        stored_snapshot(Some(last), next_offset, &membership).ok()
                    })
            }
        };
        PartitionStateMachine {
            raft_log,
            applied,
            unsaved_entries: 0,
            current: Arc::new(Mutex::new(current)),
            snapshots: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The applied state (last applied log id, the high watermark it gave, membership).
    pub fn applied(&self) -> &AppliedState {
        &self.applied
    }

    async fn apply_entries(
        &mut self,
        entries: Vec<Entry<PartitionRaft>>,
    ) -> Result<Vec<AppliedBatch>, RaftStorageError> {
        let (Some(first), Some(last)) = (
            entries.first().map(|e| e.log_id.index),
            entries.last().map(|e| e.log_id.index),
        ) else {
            return Ok(Vec::new());
        };
        // Applied only once durable here: a leader reports its appends flushed to openraft
        // before they are (`CairnLogStorage::shipping_before_flush`), so openraft may call an
        // entry committed that only one follower holds durably. Nothing of it is made visible
        // or answered until this node holds it too. (A follower's entries are durable by the
        // time openraft can apply them; this passes at once.) An entry this log does not hold
        // has nothing to wait for.
        let held_end = self.raft_log.reader().entry_bounds().1;
        let durable_end = EntryIndex(last.saturating_add(1)).min(held_end);
        self.raft_log.wait_entries_durable(durable_end).await?;
        let headers = self.headers_from(first, entries.len())?;
        let headers_from = headers.first().map_or(0, |h| h.entry.0);
        let mut replies = Vec::with_capacity(entries.len());
        let mut next_offset = self.applied.next_offset;
        for entry in &entries {
            // Headers are contiguous from their first entry, as the entries are.
            let header = entry
                .log_id
                .index
                .checked_sub(headers_from)
                .and_then(|k| headers.get(usize::try_from(k).ok()?))
                .filter(|h| h.entry.0 == entry.log_id.index && same_term(h, entry.log_id));
            match header {
                Some(h) => {
                    replies.push(AppliedBatch {
                        base_offset: h.base_offset.as_i64(),
                        next_offset: h.next_offset.as_i64(),
                    });
                    next_offset = next_offset.max(h.next_offset.0);
                }
                None => {
                    // Openraft applies only committed entries this log holds; one it does not
                    // hold (or holds with another term) carries no records of ours.
                    tracing::warn!(dir = %self.raft_log.dir().display(), log_id = %entry.log_id, "applied entry is not in the log; the high watermark stays");
                    let at = Offset(next_offset).as_i64();
                    replies.push(AppliedBatch {
                        base_offset: at,
                        next_offset: at,
                    });
                }
            }
            if let EntryPayload::Membership(membership) = &entry.payload {
                self.applied.membership =
                    StoredMembership::new(Some(entry.log_id), membership.clone());
            }
            self.applied.last_applied = Some(entry.log_id);
        }
        self.move_high_watermark(next_offset).await?;
        self.unsaved_entries += entries.len() as u64;
        if self.unsaved_entries >= APPLIED_CHECKPOINT_ENTRIES {
            self.save_applied().await?;
        }
        Ok(replies)
    }

    /// The headers of `count` entries from `first` that the Raft log holds.
    fn headers_from(&self, first: u64, count: usize) -> Result<Vec<EntryHeader>, RaftStorageError> {
        let from = EntryIndex(first).max(self.raft_log.first_entry());
        let skipped = usize::try_from(from.0 - first).unwrap_or(usize::MAX);
        Ok(self
            .raft_log
            .reader()
            .entry_headers(from, count.saturating_sub(skipped))?)
    }

    async fn move_high_watermark(&mut self, next_offset: u64) -> Result<(), RaftStorageError> {
        let target = Offset(next_offset);
        // Memory only (no I/O), so it may run on this task's thread when the writer is idle:
        // at low load that saves two thread wake-ups on the path of every acks=all answer.
        self.raft_log
            .with_log_inline_if_idle(move |log, _| {
                if target > log.high_watermark() {
                    log.set_high_watermark(target)
                } else {
                    Ok(())
                }
            })
            .await??;
        self.applied.next_offset = next_offset;
        Ok(())
    }

    async fn save_applied(&mut self) -> Result<(), RaftStorageError> {
        save_applied(&self.raft_log, self.applied.clone()).await?;
        self.unsaved_entries = 0;
        Ok(())
    }

    async fn install(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        data: Vec<u8>,
    ) -> Result<(), RaftStorageError> {
        let snapshots = Arc::clone(&self.snapshots);
        let _saving = snapshots.lock().await;
        let payload = decode_snapshot(&data)?;
        if payload.last_log_id != meta.last_log_id {
            return Err(RaftStorageError::Snapshot {
                reason: format!(
                    "payload covers {:?} but the metadata says {:?}",
                    payload.last_log_id, meta.last_log_id
                ),
            });
        }
        let mut applied = AppliedState {
            last_applied: meta.last_log_id,
            next_offset: payload.next_offset,
            membership: meta.last_membership.clone(),
        };
        if let Some(last) = meta.last_log_id {
            let first_entry = self.raft_log.first_entry();
            let local = match self.raft_log.reader().entry_header(EntryIndex(last.index)) {
                Ok(Some(h)) if h.entry >= first_entry && same_term(&h, last) => Some(h),
                _ => None,
            };
            match local {
                Some(header) => {
                    // The log already holds the snapshot's last entry: keep what follows it
                    // (openraft still counts on those entries) and commit up to it, at this
                    // log's own boundary (the same as the leader's, offsets being a function of
                    // the log).
                    if header.next_offset.0 != payload.next_offset {
                        tracing::warn!(dir = %self.raft_log.dir().display(), local = %header.next_offset, leader = payload.next_offset, "snapshot's next offset differs from this log's");
                    }
                    applied.next_offset = header.next_offset.0;
                    save_applied(&self.raft_log, applied.clone()).await?;
                    self.move_high_watermark(header.next_offset.0).await?;
                }
                None => {
                    // The applied state and the purge point first: a crash before the reset
                    // leaves a log that ends before the purge point, which the next open
                    // starts over.
                    save_applied(&self.raft_log, applied.clone()).await?;
                    self.raft_log.save_purged(last).await?;
                    let (entry, offset) =
                        (EntryIndex(payload.next_entry), Offset(payload.next_offset));
                    self.raft_log
                        .with_log(move |log, now_ms| log.reset(entry, offset, now_ms))
                        .await??;
                    self.raft_log.note_restarted(DurableEnd { offset, entry });
                }
            }
        }
        self.applied = applied;
        self.unsaved_entries = 0;
        let installed = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        // Kept for when this node leads: it ends at its leader's purge point, where this log
        // now starts.
        save_snapshot(&self.raft_log, &installed).await?;
        *lock(&self.current) = Some(installed);
        Ok(())
    }
}

impl RaftStateMachine<PartitionRaft> for PartitionStateMachine {
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>), StorageError<NodeId>>
    {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<AppliedBatch>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<PartitionRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        self.apply_entries(entries)
            .await
            .map_err(|e| e.write_state_machine())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        PartitionSnapshotBuilder {
            raft_log: self.raft_log.clone(),
            applied: self.applied.clone(),
            current: Arc::clone(&self.current),
            snapshots: Arc::clone(&self.snapshots),
        }
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
        self.install(meta, snapshot.into_inner())
            .await
            .map_err(|e| e.snapshot())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<PartitionRaft>>, StorageError<NodeId>> {
        Ok(lock(&self.current).clone().map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

impl RaftSnapshotBuilder<PartitionRaft> for PartitionSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<PartitionRaft>, StorageError<NodeId>> {
        self.build().await.map_err(|e| e.snapshot())
    }
}

impl PartitionSnapshotBuilder {
    async fn build(&mut self) -> Result<Snapshot<PartitionRaft>, RaftStorageError> {
        let _saving = self.snapshots.lock().await;
        // Read under the lock: an install that ran since this builder was made is seen.
        let current = lock(&self.current).clone();
        let current_end = current.as_ref().and_then(|c| c.meta.last_log_id);
        let keep = |current: Option<StoredSnapshot>| -> Result<_, RaftStorageError> {
            // openraft ignores a snapshot that is not newer than its own.
            Ok(as_snapshot(match current {
                Some(current) => current,
                None => stored_snapshot(None, 0, &StoredMembership::default())?,
            }))
        };
        // A point asked for past the snapshot held (see `RaftLog::snapshot_request`).
        let pending = self
            .raft_log
            .snapshot_request()
            .filter(|(point, _)| Some(*point) > current_end.map(|id| id.index));
        let stored = match pending {
            Some((point, membership)) => {
                match snapshot_end(&self.raft_log, &self.applied, point, Some(membership)) {
                    Some((last, next_offset, membership)) => {
                        stored_snapshot(Some(last), next_offset, &membership)?
                    }
                    // Never past the point asked for.
                    None => return keep(current),
                }
            }
            // Asked for before, and what was asked for is held or overtaken (an install moved
            // the purge point past it): never past the purge point either.
            None if self.raft_log.snapshots_asked_for() => return keep(current),
            // Nothing ever asked for: openraft's own schedule (tests), or its rebuild at start
            // when nothing is saved, at the last applied entry.
            None => stored_snapshot(
                self.applied.last_applied,
                self.applied.next_offset,
                &self.applied.membership,
            )?,
        };
        if stored.meta.last_log_id <= current_end
            || stored.meta.last_log_id < self.raft_log.purged()
        {
            // An install (or another build) got further meanwhile: this builder's applied state
            // is older than what was saved.
            return keep(current);
        }
        // Saved before openraft hears of the snapshot, so the applied state on disk is never
        // behind a purge point (which never passes the last snapshot); the snapshot itself, so a
        // restarted node serves the same one.
        save_applied(&self.raft_log, self.applied.clone()).await?;
        save_snapshot(&self.raft_log, &stored).await?;
        *lock(&self.current) = Some(stored.clone());
        Ok(as_snapshot(stored))
    }
}

/// A stored snapshot as openraft takes it.
fn as_snapshot(stored: StoredSnapshot) -> Snapshot<PartitionRaft> {
    Snapshot {
        meta: stored.meta,
        snapshot: Box::new(Cursor::new(stored.data)),
    }
}

/// Saves `stored` as the group's snapshot file, on the writer thread.
async fn save_snapshot(
    raft_log: &RaftLog,
    stored: &StoredSnapshot,
) -> Result<(), RaftStorageError> {
    let dir = raft_log.dir().to_path_buf();
    let (meta, data) = (stored.meta.clone(), stored.data.clone());
    raft_log
        .with_log(move |_, _| write_snapshot(&dir, &meta, &data))
        .await?
}

/// Where a snapshot ending at entry `point` ends: that entry's log id, the offset after its
/// records, and the membership in force there (`membership`, when the caller knows it; else
/// the last applied one, if it changed at or before `point`). `None` when this cannot be told:
/// `point` is past the last applied entry; the membership in force there is unknown; or the
/// entry's term and end are (it is purged and the log does not start right after it, or its
/// header is unreadable).
fn snapshot_end(
    raft_log: &RaftLog,
    applied: &AppliedState,
    point: u64,
    membership: Option<StoredMembership<NodeId, PeerNode>>,
) -> Option<(LogId<NodeId>, u64, StoredMembership<NodeId, PeerNode>)> {
    let last_applied = applied.last_applied?;
    if point == last_applied.index {
        return Some((
            last_applied,
            applied.next_offset,
            applied.membership.clone(),
        ));
    }
    if point > last_applied.index {
        return None;
    }
    let membership = match membership {
        Some(membership) => membership,
        None if applied
            .membership
            .log_id()
            .is_none_or(|changed| changed.index <= point) =>
        {
            applied.membership.clone()
        }
        None => return None,
    };
    let reader = raft_log.reader();
    let log_starts_after = reader.entry_bounds().0 == EntryIndex(point.saturating_add(1));
    if let Some(purged) = raft_log
        .purged()
        .filter(|p| p.index == point && log_starts_after)
    {
        return Some((purged, reader.log_start_offset().0, membership));
    }
    // Below the purge point compaction may have renumbered entries: only a held one is read.
    if EntryIndex(point) < raft_log.first_entry() {
        return None;
    }
    let header = reader.entry_header(EntryIndex(point)).ok()??;
    let term = u64::try_from(header.leader_epoch.0).ok()?;
    (header.entry == EntryIndex(point)).then(|| {
        (
            LogId::new(CommittedLeaderId::new(term, 0), point),
            header.next_offset.0,
            membership,
        )
    })
}

/// A snapshot ending at `last`, whose log continues at `next_offset`.
fn stored_snapshot(
    last: Option<LogId<NodeId>>,
    next_offset: u64,
    membership: &StoredMembership<NodeId, PeerNode>,
) -> Result<StoredSnapshot, RaftStorageError> {
    let payload = SnapshotPayload {
        last_log_id: last,
        next_entry: last.map_or(0, |id| id.index.saturating_add(1)),
        next_offset,
    };
    let data = serde_json::to_vec(&payload).map_err(|e| RaftStorageError::Snapshot {
        reason: format!("payload does not encode: {e}"),
    })?;
    let snapshot_id = match last {
        Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, next_offset),
        None => format!("empty-{next_offset}"),
    };
    Ok(StoredSnapshot {
        meta: SnapshotMeta {
            last_log_id: last,
            last_membership: membership.clone(),
            snapshot_id,
        },
        data,
    })
}

async fn save_applied(raft_log: &RaftLog, applied: AppliedState) -> Result<(), RaftStorageError> {
    let dir = raft_log.dir().to_path_buf();
    raft_log
        .with_log(move |_, _| write_applied(&dir, &applied))
        .await?
}

/// Decodes a snapshot payload, refusing anything larger than [`MAX_SNAPSHOT_BYTES`].
///
/// # Errors
/// [`RaftStorageError::Snapshot`].
pub fn decode_snapshot(data: &[u8]) -> Result<SnapshotPayload, RaftStorageError> {
    if data.len() > MAX_SNAPSHOT_BYTES {
        return Err(RaftStorageError::Snapshot {
            reason: format!("{} bytes, over the {MAX_SNAPSHOT_BYTES} limit", data.len()),
        });
    }
    let payload: SnapshotPayload =
        serde_json::from_slice(data).map_err(|e| RaftStorageError::Snapshot {
            reason: format!("payload does not decode: {e}"),
        })?;
    let consistent = payload.last_log_id.map_or(payload.next_entry == 0, |id| {
        id.index.checked_add(1) == Some(payload.next_entry)
    });
    if !consistent || i64::try_from(payload.next_offset).is_err() {
        return Err(RaftStorageError::Snapshot {
            reason: "next entry or next offset out of range".into(),
        });
    }
    Ok(payload)
}

/// True when the stored entry was written in the term of `log_id`.
fn same_term(header: &EntryHeader, log_id: LogId<NodeId>) -> bool {
    u64::try_from(header.leader_epoch.0).ok() == Some(log_id.leader_id.term)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data replaced whole; a panic elsewhere cannot leave it torn.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
