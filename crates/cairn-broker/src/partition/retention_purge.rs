//! Retention on a replicated partition: the task that lets Raft purge what retention wants
//! gone, so that a replica's segments can be deleted at all (see `spawn_retention_purges`).

use cairn_raft::{PartitionRaft, RaftLog, RaftStorageError};

use crate::group::Liveness;
use openraft::Raft;

/// Lets retention work on a replicated log. Retention may delete a segment only once Raft has
/// purged every entry in it (see `cairn_raft::partition_sm`), and openraft purges only what a
/// snapshot covers; so every `every`, each replica asks how far retention would go, builds a
/// (metadata-only) snapshot ending exactly there if it has none, and purges up to it. Each
/// replica does this for its own log: retention is a function of the log, so the copies delete
/// the same segments. A follower that later needs entries its leader purged gets the snapshot
/// and starts its log over right after it, which is the leader's log start, then copies all
/// the leader keeps, as a Kafka follower does. The task ends with the group.
///
/// With `superseded` (a partition of `__consumer_offsets`), it also purges, and deletes, the
/// whole segments whose records are all superseded (see `group::offsets_gc`).
pub(super) fn spawn_retention_purges(
    raft: Raft<PartitionRaft>,
    raft_log: RaftLog,
    every: std::time::Duration,
    superseded: bool,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let retention = match raft_log.retention_purge_index().await {
                Ok(upto) => upto,
                // The log has closed: the group is gone.
                Err(_) => return,
            };
            let superseded = if superseded {
                match superseded_purge_index(&raft_log).await {
                    Ok(upto) => upto,
                    Err(_) => return,
                }
            } else {
                None
            };
            let Some(upto) = retention.max(superseded) else {
                continue;
            };
            let (applied, snapshot, membership) = {
                let m = raft.metrics();
                let m = m.borrow();
                (
                    m.last_applied.map(|l| l.index),
                    m.snapshot.map(|l| l.index),
                    m.membership_config.as_ref().clone(),
                )
            };
            // Only what was applied can be in a snapshot, so only that can go.
            let Some(upto) = applied.map(|applied| applied.min(upto)) else {
                continue;
            };
            if membership
                .log_id()
                .is_some_and(|changed| changed.index > upto)
            {
                // The snapshot must end at `upto` (see `RaftLog::snapshot_request`) and carry the
                // membership in force there, which only an earlier change can tell: wait until
                // retention reaches past the change.
                tracing::debug!(dir = %raft_log.dir().display(), upto, "retention purge waits: the membership changed after it");
                continue;
            }
            if let Some(through) = superseded {
                raft_log.delete_on_purge_through(through.min(upto));
            }
            if snapshot < Some(upto) {
                // The membership in force at `upto`: the one applied now, changed at or
                // before it.
                raft_log.request_snapshot_at(upto, membership);
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

/// How far to purge so that the whole segments of superseded records go: scans this replica's
/// committed log off the runtime (see `group::offsets_gc::Liveness`).
///
/// # Errors
/// The log has closed.
async fn superseded_purge_index(raft_log: &RaftLog) -> Result<Option<u64>, RaftStorageError> {
    let reader = raft_log.reader().clone();
    let scanned = tokio::task::spawn_blocking(move || {
        Liveness::scan(reader.high_watermark(), |visit| {
            reader.scan_batches(reader.log_start_offset().as_i64(), visit)
        })
        .map(|liveness| liveness.superseded_below())
    })
    .await;
    match scanned {
        Ok(Ok(below)) => raft_log.purge_index_below_offset(below).await,
        // A scan that failed (the log moved under it, or a panic) tells nothing: try again later.
        Ok(Err(_)) | Err(_) => Ok(None),
    }
}

/// How long a retention purge waits for the snapshot it asked for.
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
