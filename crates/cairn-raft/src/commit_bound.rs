//! [`CommitBound`]: what a leader may tell its followers is committed, at most the entries it
//! holds durably itself.
//!
//! A leader whose storage reports appends flushed once written
//! (`CairnLogStorage::shipping_before_flush`) lets openraft count its own copy towards a commit
//! before that copy is durable. Were a follower told of such a commit, it would apply the
//! entry; a power loss on the leader could then lose the leader's copy, and a node that never
//! had the entry could win the next election with the leader's vote, leaving the follower
//! with an applied entry the new leader overwrites. Bounded by the leader's durable entries,
//! the commit a follower hears always covers entries the leader and that follower (which
//! answered only after its own fsync) both hold durably: a majority of three, as Raft needs.
//! A lower commit than openraft's only delays what followers apply (the next message carries
//! the rest); a follower ignores a commit below the one it knows.

use cairn_log::EntryIndex;
use openraft::LogId;

use crate::purge_file::log_id;
use crate::raft_log::RaftLog;
use crate::types::NodeId;

/// Bounds the commit a leader sends by the entries its [`RaftLog`] holds durably.
#[derive(Clone, Debug)]
pub struct CommitBound {
    raft_log: RaftLog,
}

impl CommitBound {
    /// The bound of the group stored in `raft_log`.
    pub fn new(raft_log: RaftLog) -> CommitBound {
        CommitBound { raft_log }
    }

    /// `committed`, lowered to the last entry durable on this node when it is past it; `None`
    /// (no commit claimed) when nothing that can be named is durable.
    pub fn clamp(&self, committed: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        let committed = committed?;
        let durable_end = self.raft_log.durable_entry_end();
        if committed.index < durable_end.0 {
            return Some(committed);
        }
        let last = EntryIndex(durable_end.0.checked_sub(1)?);
        // Purged entries were committed and applied: the purge point is always safe to claim.
        let purge_point = self
            .raft_log
            .purged()
            .filter(|p| p.index <= committed.index);
        if last < self.raft_log.first_entry() {
            return purge_point;
        }
        match self.raft_log.reader().entry_headers(last, 1) {
            Ok(headers) => match headers.first() {
                Some(h) if h.entry == last => u64::try_from(h.leader_epoch.0)
                    .ok()
                    .map(|term| log_id(term, last.0)),
                // Purged or truncated meanwhile.
                _ => purge_point,
            },
            Err(err) => {
                tracing::warn!(dir = %self.raft_log.dir().display(), %err, "cannot read the last durable entry; telling followers of no commit past the purge point");
                purge_point
            }
        }
    }
}
