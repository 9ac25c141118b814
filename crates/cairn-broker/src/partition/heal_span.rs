//! Repairing one damaged span of committed entries: fetch good copies of its entries from a
//! peer ([`cairn_raft::fetch_entries`], CRC-checked there) and rewrite them in place
//! ([`RaftLog::repair`], which checks they fill the span exactly). Peers are tried in the order
//! given; the first whose copies fit wins. Used by the healer of a running copy (`heal`) and,
//! before its Raft group starts, by a copy whose damage keeps openraft from starting.
//!
//! It decides nothing about standing for leader or what is committed: its callers pass only
//! spans inside what this copy has applied.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_log::{DamagedEntries, LogError};
use cairn_raft::wire::FetchRequest;
use cairn_raft::{GroupId, NodeId, PeerTransport, RaftLog, RaftStorageError};

/// How long one fetch from a peer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one span was not healed.
#[derive(Debug)]
pub(super) enum SpanError {
    /// No peer gave good copies yet.
    Retry(String),
    /// The log stopped (the rewrite's write or fsync failed).
    Stopped(String),
}

/// What repairing a span works with.
pub(super) struct SpanRepair<'a> {
    pub(super) topic: &'a str,
    pub(super) index: u32,
    pub(super) group: GroupId,
    pub(super) transport: &'a dyn PeerTransport,
    pub(super) raft_log: &'a RaftLog,
    /// Counts each span healed, for `cairn_cluster_heals_total`.
    pub(super) heals: &'a AtomicU64,
}

impl SpanRepair<'_> {
    /// Fetches good copies of `span`'s entries from one of `peers` and rewrites them in place;
    /// durable when it returns `Ok`. Logs the peer and the offsets healed.
    ///
    /// # Errors
    /// [`SpanError::Retry`] when no peer gave copies that fit; [`SpanError::Stopped`] when the
    /// rewrite failed and stopped the log.
    pub(super) async fn heal(
        &self,
        peers: &[NodeId],
        span: &DamagedEntries,
    ) -> Result<NodeId, SpanError> {
        let mut last_reason = "no peer to fetch from".to_string();
        for &peer in peers {
            let batches = match self.fetch(peer, span).await {
                Ok(batches) => batches,
                Err(reason) => {
                    last_reason = format!("node {peer}: {reason}");
                    continue;
                }
            };
            match self.raft_log.repair(span.clone(), batches).await {
                Ok(()) => {
                    self.heals.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        topic = %self.topic, partition = self.index, from_node = peer,
                        segment = %span.path.display(), position = span.position.0,
                        first_entry = span.first_entry.0, entries = span.entry_count,
                        base_offset = span.base_offset.0,
                        next_offset = span.next_offset.map(|o| o.0),
                        "healed damaged committed entries in place with copies from a peer"
                    );
                    return Ok(peer);
                }
                Err(RaftStorageError::Log(LogError::RepairRefused { reason, .. })) => {
                    last_reason = format!("node {peer}'s copies refused: {reason}");
                }
                Err(other) => return Err(SpanError::Stopped(other.to_string())),
            }
        }
        Err(SpanError::Retry(last_reason))
    }

    /// Every entry of `span`, from `peer`, in as many fetches as its size needs.
    async fn fetch(&self, peer: NodeId, span: &DamagedEntries) -> Result<Vec<Bytes>, String> {
        let mut batches: Vec<Bytes> = Vec::new();
        let mut fetched_bytes = 0u64;
        while (batches.len() as u64) < span.entry_count {
            let wanted = span.entry_count - batches.len() as u64;
            let bytes_left = span.len_bytes().saturating_sub(fetched_bytes).max(1);
            let req = FetchRequest {
                from: span.first_entry.0 + batches.len() as u64,
                max_entries: u32::try_from(wanted).unwrap_or(u32::MAX),
                max_bytes: u32::try_from(bytes_left).unwrap_or(u32::MAX),
            };
            let timeout_ms = u64::try_from(FETCH_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
            let got = cairn_raft::fetch_entries(self.transport, peer, self.group, req, timeout_ms)
                .await
                .map_err(|e| e.to_string())?;
            if got.is_empty() {
                return Err(format!("has not applied entry {} yet", req.from));
            }
            fetched_bytes += got.iter().map(|b| b.len() as u64).sum::<u64>();
            batches.extend(got);
        }
        Ok(batches)
    }
}

/// Heals the damaged spans of `raft_log` from `peers` before its Raft group starts: openraft
/// reads the log at start-up (to find the last membership, among others) and will not start
/// over a damaged entry it reads. Tries for up to `budget`, then gives up; answers whether
/// every span found was healed.
///
/// The whole written log is scanned, not only what the applied state (saved every so many
/// entries) proves committed, because openraft reads past it. That is sound: a peer serves
/// only entries it has applied, so each copy is the committed entry at its index, and the
/// rewrite takes it only if it fills the damaged span byte for byte with offsets chaining to
/// the batches around it. Were the damaged entry an uncommitted one that differs, this log
/// then holds the committed entry there, as if the leader had sent it, and openraft, not yet
/// started, has read nothing of the old one.
pub(super) async fn heal_before_start(
    repair: &SpanRepair<'_>,
    peers: &[NodeId],
    budget: Duration,
) -> bool {
    let reader = repair.raft_log.reader().clone();
    let Ok(spans) = tokio::task::spawn_blocking(move || {
        reader.damaged_entries(cairn_log::EntryIndex(u64::MAX))
    })
    .await
    else {
        return false;
    };
    if spans.is_empty() {
        return false;
    }
    tracing::error!(topic = %repair.topic, partition = repair.index, spans = spans.len(), "damaged committed entries keep this copy's Raft group from starting; healing them from a peer first");
    let deadline = tokio::time::Instant::now() + budget;
    let mut wait = super::heal::HEAL_RETRY_MIN;
    for span in &spans {
        loop {
            match repair.heal(peers, span).await {
                Ok(_) => break,
                Err(SpanError::Stopped(_)) => return false,
                Err(SpanError::Retry(reason)) => {
                    if tokio::time::Instant::now() + wait > deadline {
                        tracing::error!(topic = %repair.topic, partition = repair.index, %reason, "gave up healing before start");
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(super::heal::HEAL_RETRY_MAX);
                }
            }
        }
    }
    true
}
