//! Fetching committed entries from a peer ([`RpcKind::FetchEntries`]), for a replica that found
//! damaged batches in its committed range and rewrites them in place. This moves bytes only: it
//! decides nothing about what is committed, and the asker never hands the entries to openraft
//! (its Raft log already holds them, damaged).
//!
//! Why only committed entries, on both sides: two replicas' entries at one index are the same
//! entry once it is committed on both (Raft's log matching), so a committed copy can stand in
//! for a committed damaged one; an uncommitted entry may differ between replicas. The answering
//! peer serves nothing past what it has applied, and the asker fetches only entries at or below
//! its own applied index.
//!
//! The invariant: every batch a fetch returns passed its CRC on the asker's side, whatever the
//! peer sent.

use bytes::Bytes;
use cairn_log::EntryIndex;
use cairn_log::batch::Batch;

use crate::raft_log::RaftLog;
use crate::transport::{PeerTransport, RpcKind, TransportError};
use crate::types::{GroupId, NodeId};
use crate::wire::{self, FetchRequest, WireError};

/// Most entries one fetch answers.
pub const FETCH_MAX_ENTRIES: u32 = 1024;

/// Most bytes one fetch answers (one entry more if the first alone is larger).
pub const FETCH_MAX_BYTES: u32 = 8 << 20;

/// Why a fetch brought no usable entries.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The call did not get an answer (or the peer refused it, naming why).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The answer is not a FetchEntries answer.
    #[error("bad fetch answer from node {node}: {source}")]
    Wire {
        /// The peer.
        node: NodeId,
        /// What is wrong.
        #[source]
        source: WireError,
    },
    /// A fetched batch fails its checks: the peer's copy is damaged too (or the bytes were
    /// damaged on the way).
    #[error("entry {index} fetched from node {node} is damaged: {reason}")]
    Damaged {
        /// The peer.
        node: NodeId,
        /// The entry's index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Asks `peer` for up to `req.max_entries` committed entries of `group` from `req.from`, and
/// returns their batches, each checked (framing and CRC). Fewer may come back (the peer's
/// applied end, the byte limit), none when the peer has applied none of them.
///
/// # Errors
/// [`FetchError`].
pub async fn fetch_entries(
    transport: &dyn PeerTransport,
    peer: NodeId,
    group: GroupId,
    req: FetchRequest,
    timeout_ms: u64,
) -> Result<Vec<Bytes>, FetchError> {
    let answer = transport
        .call(
            peer,
            group,
            RpcKind::FetchEntries,
            wire::encode_fetch(&req),
            timeout_ms,
        )
        .await?;
    let batches = wire::decode_fetch_answer(answer, req.max_entries)
        .map_err(|source| FetchError::Wire { node: peer, source })?;
    for (index, bytes) in (req.from..).zip(&batches) {
        if let Err(e) = Batch::validate(bytes.clone()) {
            return Err(FetchError::Damaged {
                node: peer,
                index,
                reason: e.to_string(),
            });
        }
    }
    Ok(batches)
}

/// Answers a peer's [`RpcKind::FetchEntries`] from `raft_log`, serving nothing past
/// `applied` (this replica's last applied index; `None` serves nothing), within
/// [`FETCH_MAX_ENTRIES`] and [`FETCH_MAX_BYTES`].
///
/// # Errors
/// A payload that does not decode; this replica's own copy of a wanted entry is damaged (it
/// is never sent: the asker tries another peer).
pub fn answer_fetch(
    raft_log: &RaftLog,
    applied: Option<u64>,
    payload: Bytes,
) -> Result<Bytes, String> {
    let req = wire::decode_fetch(payload).map_err(|e| e.to_string())?;
    let Some(applied) = applied.filter(|a| *a >= req.from) else {
        return Ok(wire::encode_fetch_answer(&[]));
    };
    let max_entries = req.max_entries.min(FETCH_MAX_ENTRIES);
    let count = (applied - req.from)
        .saturating_add(1)
        .min(u64::from(max_entries));
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let max_bytes = req.max_bytes.min(FETCH_MAX_BYTES) as usize;
    let entries = raft_log
        .reader()
        .read_entries(EntryIndex(req.from), count, max_bytes)
        .map_err(|e| format!("this copy is damaged too: {e}"))?;
    let batches: Vec<Bytes> = entries.into_iter().map(|e| e.batch).collect();
    Ok(wire::encode_fetch_answer(&batches))
}
