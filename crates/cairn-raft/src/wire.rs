//! The bytes of openraft's messages between nodes. A compact, fixed-width little-endian
//! encoding written by hand rather than serde: an AppendEntries carries record batches that
//! must travel as they are (a slice of the received frame on the far side, never a copy per
//! byte into a JSON array), and heartbeats, the most frequent call, stay a few dozen bytes.
//! Membership and snapshot metadata, rare and small, are embedded as serde JSON.
//!
//! Layout (all integers little-endian):
//! - vote: `term u64`, `voted_for` (`u8` 0/1 then `u64` if 1), `committed u8`.
//! - optional log id: `u8` 0 (absent) or 1, then `term u64`, `index u64`.
//! - AppendEntries request: vote, prev log id, leader commit, `count u32`, then per entry
//!   `term u64`, `index u64`, `kind u8` (0 blank, 1 record batch, 2 membership as JSON),
//!   `len u32`, `len` bytes.
//! - AppendEntries answer: `u8` 0 success, 1 partial success + log id, 2 conflict, 3 higher
//!   vote + vote.
//! - Vote request: vote, last log id. Vote answer: vote, `granted u8`, last log id.
//! - InstallSnapshot request: vote, `u32` + JSON snapshot meta, `offset u64`, `done u8`,
//!   `u32` + data. InstallSnapshot answer: vote.
//! - Campaign request: the leader's vote, then its last log index (`u8` 0 absent, or 1 and
//!   `index u64`). Campaign answer: `started u8`.
//! - FetchEntries request: `from u64`, `max_entries u32`, `max_bytes u32`. FetchEntries
//!   answer: `count u32`, then per entry `len u32` and `len` bytes (the batch as stored).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::entry::EntryPayload;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, Entry, LeaderId, LogId, Membership, Vote};

pub use crate::entry_codec::CairnRaftConfig;
use crate::types::{BatchData, NodeId, PeerNode};

/// Why received bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end inside a field.
    #[error("message truncated: {field} needs {needed} more bytes, {left} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes there were.
        left: usize,
    },
    /// A tag or flag byte outside its range.
    #[error("bad {field} tag {tag}")]
    BadTag {
        /// The field.
        field: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// Embedded JSON (membership, snapshot meta) that does not decode.
    #[error("bad {field}: {reason}")]
    BadJson {
        /// The field.
        field: &'static str,
        /// serde's message.
        reason: String,
    },
    /// A count above the limit the receiver set.
    #[error("{field} {count} above the limit {max}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// The count found.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// Bytes left after the message.
    #[error("{0} unexpected bytes after the message")]
    Trailing(usize),
}

const ENTRY_BLANK: u8 = 0;
const ENTRY_BATCH: u8 = 1;
const ENTRY_MEMBERSHIP: u8 = 2;

fn put_vote(buf: &mut BytesMut, vote: &Vote<NodeId>) {
    buf.put_u64_le(vote.leader_id.term);
    match vote.leader_id.voted_for {
        Some(node) => {
            buf.put_u8(1);
            buf.put_u64_le(node);
        }
        None => buf.put_u8(0),
    }
    buf.put_u8(u8::from(vote.committed));
}

fn put_log_id(buf: &mut BytesMut, id: &Option<LogId<NodeId>>) {
    match id {
        Some(id) => {
            buf.put_u8(1);
            buf.put_u64_le(id.leader_id.term);
            buf.put_u64_le(id.index);
        }
        None => buf.put_u8(0),
    }
}

fn put_len_prefixed(buf: &mut BytesMut, bytes: &[u8]) {
    // Frames are bounded far below 4 GiB by the transport's message limit.
    buf.put_u32_le(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    buf.put_slice(bytes);
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // serde_json fails only on maps whose keys cannot be strings or on failing Serialize
    // impls; openraft's membership and snapshot meta have neither (u64 node ids become string
    // keys). Were it ever to fail, the empty payload is refused by the receiver, never misread.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Reads a message field by field, handing out zero-copy slices of the received buffer.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn need(&self, field: &'static str, needed: usize) -> Result<(), WireError> {
        if self.buf.remaining() < needed {
            return Err(WireError::Truncated {
                field,
                needed,
                left: self.buf.remaining(),
            });
        }
        Ok(())
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        self.need(field, 1)?;
        Ok(self.buf.get_u8())
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(WireError::BadTag { field, tag }),
        }
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.need(field, 4)?;
        Ok(self.buf.get_u32_le())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.need(field, 8)?;
        Ok(self.buf.get_u64_le())
    }

    fn bytes(&mut self, field: &'static str) -> Result<Bytes, WireError> {
        let len = self.u32(field)? as usize;
        self.need(field, len)?;
        Ok(self.buf.split_to(len))
    }

    fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        field: &'static str,
    ) -> Result<T, WireError> {
        let bytes = self.bytes(field)?;
        serde_json::from_slice(&bytes).map_err(|e| WireError::BadJson {
            field,
            reason: e.to_string(),
        })
    }

    fn vote(&mut self) -> Result<Vote<NodeId>, WireError> {
        let term = self.u64("vote term")?;
        let voted_for = if self.flag("vote voted_for")? {
            Some(self.u64("vote voted_for")?)
        } else {
            None
        };
        let committed = self.flag("vote committed")?;
        Ok(Vote {
            leader_id: LeaderId { term, voted_for },
            committed,
        })
    }

    fn log_id(&mut self, field: &'static str) -> Result<Option<LogId<NodeId>>, WireError> {
        if !self.flag(field)? {
            return Ok(None);
        }
        let term = self.u64(field)?;
        let index = self.u64(field)?;
        Ok(Some(log_id(term, index)))
    }

    fn finish(self) -> Result<(), WireError> {
        match self.buf.remaining() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

/// A log id of the single-term-leader configuration (the term alone names the leader).
pub fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId {
        // Under `single-term-leader` the node id is not part of a committed leader id.
        leader_id: CommittedLeaderId::new(term, 0),
        index,
    }
}

/// Encodes an AppendEntries request.
pub fn encode_append<C: CairnRaftConfig>(req: &AppendEntriesRequest<C>) -> Bytes {
    let payload_bytes: usize = req
        .entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Normal(BatchData(b)) => b.len(),
            _ => 0,
        })
        .sum();
    let mut buf = BytesMut::with_capacity(64 + req.entries.len() * 21 + payload_bytes);
    put_vote(&mut buf, &req.vote);
    put_log_id(&mut buf, &req.prev_log_id);
    put_log_id(&mut buf, &req.leader_commit);
    buf.put_u32_le(u32::try_from(req.entries.len()).unwrap_or(u32::MAX));
    for entry in &req.entries {
        buf.put_u64_le(entry.log_id.leader_id.term);
        buf.put_u64_le(entry.log_id.index);
        match &entry.payload {
            EntryPayload::Blank => {
                buf.put_u8(ENTRY_BLANK);
                buf.put_u32_le(0);
            }
            EntryPayload::Normal(BatchData(batch)) => {
                buf.put_u8(ENTRY_BATCH);
                put_len_prefixed(&mut buf, batch);
            }
            EntryPayload::Membership(m) => {
                buf.put_u8(ENTRY_MEMBERSHIP);
                put_len_prefixed(&mut buf, &json(m));
            }
        }
    }
    buf.freeze()
}

/// Decodes an AppendEntries request; record batches are slices of `bytes`.
///
/// # Errors
/// [`WireError`] naming the field that does not decode.
pub fn decode_append<C: CairnRaftConfig>(
    bytes: Bytes,
) -> Result<AppendEntriesRequest<C>, WireError> {
    let mut r = Reader { buf: bytes };
    let vote = r.vote()?;
    let prev_log_id = r.log_id("prev_log_id")?;
    let leader_commit = r.log_id("leader_commit")?;
    let count = r.u32("entry count")? as usize;
    // Each entry takes at least 21 bytes: never reserve more than the message could hold.
    let mut entries = Vec::with_capacity(count.min(r.buf.remaining() / 21));
    for _ in 0..count {
        let term = r.u64("entry term")?;
        let index = r.u64("entry index")?;
        let kind = r.u8("entry kind")?;
        let payload = match kind {
            ENTRY_BLANK => {
                r.bytes("blank entry")?;
                EntryPayload::Blank
            }
            ENTRY_BATCH => EntryPayload::Normal(BatchData(r.bytes("record batch")?)),
            ENTRY_MEMBERSHIP => {
                EntryPayload::Membership(r.json::<Membership<NodeId, PeerNode>>("membership")?)
            }
            tag => {
                return Err(WireError::BadTag {
                    field: "entry kind",
                    tag,
                });
            }
        };
        entries.push(Entry {
            log_id: log_id(term, index),
            payload,
        });
    }
    r.finish()?;
    Ok(AppendEntriesRequest {
        vote,
        prev_log_id,
        entries,
        leader_commit,
    })
}

/// What the node-to-node transport reads from an encoded AppendEntries request's header,
/// without decoding its entries, to decide whether the call may wait to share a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendSummary {
    /// The index of the commit the leader tells (`None`: nothing committed yet).
    pub leader_commit: Option<u64>,
    /// Whether it carries entries (a heartbeat or a commit update carries none).
    pub carries_entries: bool,
}

/// The [`AppendSummary`] of an encoded AppendEntries request; `None` if the header does not
/// decode.
pub fn append_summary(bytes: &Bytes) -> Option<AppendSummary> {
    let mut r = Reader { buf: bytes.clone() };
    r.vote().ok()?;
    r.log_id("prev_log_id").ok()?;
    let leader_commit = r.log_id("leader_commit").ok()?.map(|id| id.index);
    let carries_entries = r.u32("entry count").ok()? > 0;
    Some(AppendSummary {
        leader_commit,
        carries_entries,
    })
}

/// Encodes an AppendEntries answer.
pub fn encode_append_response(resp: &AppendEntriesResponse<NodeId>) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    match resp {
        AppendEntriesResponse::Success => buf.put_u8(0),
        AppendEntriesResponse::PartialSuccess(id) => {
            buf.put_u8(1);
            put_log_id(&mut buf, id);
        }
        AppendEntriesResponse::Conflict => buf.put_u8(2),
        AppendEntriesResponse::HigherVote(vote) => {
            buf.put_u8(3);
            put_vote(&mut buf, vote);
        }
    }
    buf.freeze()
}

/// Decodes an AppendEntries answer.
///
/// # Errors
/// [`WireError`].
pub fn decode_append_response(bytes: Bytes) -> Result<AppendEntriesResponse<NodeId>, WireError> {
    let mut r = Reader { buf: bytes };
    let resp = match r.u8("append answer")? {
        0 => AppendEntriesResponse::Success,
        1 => AppendEntriesResponse::PartialSuccess(r.log_id("matched log id")?),
        2 => AppendEntriesResponse::Conflict,
        3 => AppendEntriesResponse::HigherVote(r.vote()?),
        tag => {
            return Err(WireError::BadTag {
                field: "append answer",
                tag,
            });
        }
    };
    r.finish()?;
    Ok(resp)
}

/// Encodes a Vote request.
pub fn encode_vote(req: &VoteRequest<NodeId>) -> Bytes {
    let mut buf = BytesMut::with_capacity(40);
    put_vote(&mut buf, &req.vote);
    put_log_id(&mut buf, &req.last_log_id);
    buf.freeze()
}

/// Decodes a Vote request.
///
/// # Errors
/// [`WireError`].
pub fn decode_vote(bytes: Bytes) -> Result<VoteRequest<NodeId>, WireError> {
    let mut r = Reader { buf: bytes };
    let vote = r.vote()?;
    let last_log_id = r.log_id("last_log_id")?;
    r.finish()?;
    Ok(VoteRequest { vote, last_log_id })
}

/// Encodes a Vote answer.
pub fn encode_vote_response(resp: &VoteResponse<NodeId>) -> Bytes {
    let mut buf = BytesMut::with_capacity(40);
    put_vote(&mut buf, &resp.vote);
    buf.put_u8(u8::from(resp.vote_granted));
    put_log_id(&mut buf, &resp.last_log_id);
    buf.freeze()
}

/// Decodes a Vote answer.
///
/// # Errors
/// [`WireError`].
pub fn decode_vote_response(bytes: Bytes) -> Result<VoteResponse<NodeId>, WireError> {
    let mut r = Reader { buf: bytes };
    let vote = r.vote()?;
    let vote_granted = r.flag("vote granted")?;
    let last_log_id = r.log_id("last_log_id")?;
    r.finish()?;
    Ok(VoteResponse {
        vote,
        vote_granted,
        last_log_id,
    })
}

/// Encodes one InstallSnapshot chunk.
pub fn encode_snapshot<C: CairnRaftConfig>(req: &InstallSnapshotRequest<C>) -> Bytes {
    let meta = json(&req.meta);
    let mut buf = BytesMut::with_capacity(40 + meta.len() + req.data.len());
    put_vote(&mut buf, &req.vote);
    put_len_prefixed(&mut buf, &meta);
    buf.put_u64_le(req.offset);
    buf.put_u8(u8::from(req.done));
    put_len_prefixed(&mut buf, &req.data);
    buf.freeze()
}

/// Decodes one InstallSnapshot chunk.
///
/// # Errors
/// [`WireError`].
pub fn decode_snapshot<C: CairnRaftConfig>(
    bytes: Bytes,
) -> Result<InstallSnapshotRequest<C>, WireError> {
    let mut r = Reader { buf: bytes };
    let vote = r.vote()?;
    let meta = r.json("snapshot meta")?;
    let offset = r.u64("snapshot offset")?;
    let done = r.flag("snapshot done")?;
    let data = r.bytes("snapshot data")?.to_vec();
    r.finish()?;
    Ok(InstallSnapshotRequest {
        vote,
        meta,
        offset,
        data,
        done,
    })
}

/// Encodes an InstallSnapshot answer.
pub fn encode_snapshot_response(resp: &InstallSnapshotResponse<NodeId>) -> Bytes {
    let mut buf = BytesMut::with_capacity(24);
    put_vote(&mut buf, &resp.vote);
    buf.freeze()
}

/// Decodes an InstallSnapshot answer.
///
/// # Errors
/// [`WireError`].
pub fn decode_snapshot_response(
    bytes: Bytes,
) -> Result<InstallSnapshotResponse<NodeId>, WireError> {
    let mut r = Reader { buf: bytes };
    let vote = r.vote()?;
    r.finish()?;
    Ok(InstallSnapshotResponse { vote })
}

/// A leader's request that a follower stand for election (`RpcKind::Campaign`): the leader's
/// vote, which names it and its term, and the index of its last log entry, which the follower
/// must hold (see `crate::handover`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignRequest {
    /// The asking leader's vote (its term and id, committed).
    pub vote: Vote<NodeId>,
    /// The index of the leader's last log entry; `None` for an empty log.
    pub last_log_index: Option<u64>,
}

/// Encodes a Campaign request.
pub fn encode_campaign(req: &CampaignRequest) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    put_vote(&mut buf, &req.vote);
    match req.last_log_index {
        Some(index) => {
            buf.put_u8(1);
            buf.put_u64_le(index);
        }
        None => buf.put_u8(0),
    }
    buf.freeze()
}

/// Decodes a Campaign request.
///
/// # Errors
/// [`WireError`].
pub fn decode_campaign(bytes: Bytes) -> Result<CampaignRequest, WireError> {
    let mut r = Reader { buf: bytes };
    let vote = r.vote()?;
    let last_log_index = if r.flag("last_log_index")? {
        Some(r.u64("last_log_index")?)
    } else {
        None
    };
    r.finish()?;
    Ok(CampaignRequest {
        vote,
        last_log_index,
    })
}

/// Encodes a Campaign answer: whether the follower started an election.
pub fn encode_campaign_answer(started: bool) -> Bytes {
    Bytes::copy_from_slice(&[u8::from(started)])
}

/// Decodes a Campaign answer.
///
/// # Errors
/// [`WireError`].
pub fn decode_campaign_answer(bytes: Bytes) -> Result<bool, WireError> {
    let mut r = Reader { buf: bytes };
    let started = r.flag("campaign started")?;
    r.finish()?;
    Ok(started)
}

/// A damaged replica's request for committed entries (`RpcKind::FetchEntries`): up to
/// `max_entries` entries from index `from`, about `max_bytes` in all (at least one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// The first entry index wanted.
    pub from: u64,
    /// Entries wanted, at most.
    pub max_entries: u32,
    /// Bytes wanted, about (one entry more if the first alone is larger).
    pub max_bytes: u32,
}

/// Encodes a FetchEntries request.
pub fn encode_fetch(req: &FetchRequest) -> Bytes {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u64_le(req.from);
    buf.put_u32_le(req.max_entries);
    buf.put_u32_le(req.max_bytes);
    buf.freeze()
}

/// Decodes a FetchEntries request.
///
/// # Errors
/// [`WireError`].
pub fn decode_fetch(bytes: Bytes) -> Result<FetchRequest, WireError> {
    let mut r = Reader { buf: bytes };
    let req = FetchRequest {
        from: r.u64("fetch from")?,
        max_entries: r.u32("fetch max_entries")?,
        max_bytes: r.u32("fetch max_bytes")?,
    };
    r.finish()?;
    Ok(req)
}

/// Encodes a FetchEntries answer: the entries' batches, in order.
pub fn encode_fetch_answer(batches: &[Bytes]) -> Bytes {
    let total: usize = batches.iter().map(|b| b.len() + 4).sum();
    let mut buf = BytesMut::with_capacity(4 + total);
    buf.put_u32_le(u32::try_from(batches.len()).unwrap_or(u32::MAX));
    for batch in batches {
        put_len_prefixed(&mut buf, batch);
    }
    buf.freeze()
}

/// Decodes a FetchEntries answer into zero-copy slices of `bytes`, at most `max_entries` of
/// them (a count above it is refused before anything is allocated for it).
///
/// # Errors
/// [`WireError`].
pub fn decode_fetch_answer(bytes: Bytes, max_entries: u32) -> Result<Vec<Bytes>, WireError> {
    let mut r = Reader { buf: bytes };
    let count = r.u32("fetch answer count")?;
    if count > max_entries {
        return Err(WireError::TooMany {
            field: "fetched entries",
            count,
            max: max_entries,
        });
    }
    // Each entry needs at least its 4-byte length: never reserve for more than the bytes hold.
    let mut batches = Vec::with_capacity((count as usize).min(r.buf.remaining() / 4));
    for _ in 0..count {
        batches.push(r.bytes("fetched batch")?);
    }
    r.finish()?;
    Ok(batches)
}

#[cfg(test)]
mod tests;
