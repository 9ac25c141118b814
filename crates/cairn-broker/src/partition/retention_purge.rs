//! Retention on a replicated partition: the task that lets Raft purge what retention wants
//! gone, so that a replica's segments can be deleted at all (see `spawn_retention_purges`).

use cairn_raft::{PartitionRaft, RaftLog};
use openraft::Raft;

/// Lets retention work on a replicated log. Retention may delete a segment only once Raft has
/// purged every entry in it (see `cairn_raft::partition_sm`), and openraft purges only what a
/// snapshot covers; so every `every`, each replica asks how far retention would go, builds a
/// (metadata-only) snapshot ending exactly there if it has none, and purges up to it. Each
/// replica does this for its own log: retention is a function of the log, so the copies delete
/// the same segments. A follower that later needs entries its leader purged gets the snapshot
/// and starts its log over right after it, which is the leader's log start, then copies all
/// the leader keeps, as a Kafka follower does. The task ends with the group.
pub(super) fn spawn_retention_purges(
    raft: Raft<PartitionRaft>,
    raft_log: RaftLog,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let upto = match raft_log.retention_purge_index().await {
                Ok(Some(upto)) => upto,
                Ok(None) => continue,
                // The log has closed: the group is gone.
                Err(_) => return,
            };
            let (applied, snapshot, membership) = {
                let m = raft.metrics();
                let m = m.borrow();
                (
                    m.last_applied.map(|l| l.index),
                    m.snapshot.map(|l| l.index),
                    m.membership_config.log_id().map(|l| l.index),
                )
            };
            // Only what was applied can be in a snapshot, so only that can go.
            let Some(upto) = applied.map(|applied| applied.min(upto)) else {
                continue;
            };
            if membership.is_some_and(|changed| changed > upto) {
                // The snapshot must end at `upto` (see `RaftLog::snapshot_point`) and carry the
                // membership in force there, which only an earlier change can tell: wait until
                // retention reaches past the change.
                tracing::debug!(dir = %raft_log.dir().display(), upto, "retention purge waits: the membership changed after it");
                continue;
            }
            if snapshot < Some(upto) {
                raft_log.request_snapshot_at(upto);
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                let mut metrics = raft.metrics();
                let built = tokio::time::timeout(
                    SNAPSHOT_WAIT,
                    metrics.wait_for(|m| m.snapshot.map(|l| l.index) >= Some(upto)),
                )
                .await;
                if !matches!(built, Ok(Ok(_))) {
                    continue;
                }
            }
            if raft.trigger().purge_log(upto).await.is_err() {
                return;
            }
            tracing::debug!(dir = %raft_log.dir().display(), upto, "purged for retention");
        }
    });
}

/// How long a retention purge waits for the snapshot it asked for.
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
