//! Durable vote storage: `raft-vote.checkpoint` in the partition directory. Raft's safety rests
//! on a node never voting twice in a term, so the vote is on disk (fsynced file and directory)
//! before openraft hears that it was saved. Layout: `segments-format.md`, "Raft metadata
//! files"; an unreadable file is an operator error, never "no vote".

use std::path::Path;

use openraft::{LeaderId, Vote};

use crate::checkpoint::{Kind, PayloadReader, read_verified, write_atomic};
use crate::error::RaftStorageError;
use crate::types::NodeId;

/// File name of the vote checkpoint.
pub const VOTE_FILE: &str = "raft-vote.checkpoint";

/// Reads the saved vote of the group whose partition directory is `dir`: `None` if it never
/// voted.
///
/// # Errors
/// [`RaftStorageError::CorruptCheckpoint`] for a damaged file; I/O errors.
pub fn read_vote(dir: &Path) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
    let Some(payload) = read_verified(dir, VOTE_FILE, Kind::Vote)? else {
        return Ok(None);
    };
    decode(&payload)
        .map(Some)
        .ok_or_else(|| RaftStorageError::CorruptCheckpoint {
            path: dir.join(VOTE_FILE),
            reason: "vote payload is not 18 bytes of term, committed flag and voted-for".into(),
        })
}

/// Saves `vote` durably (atomic replace, fsync of the file and of `dir`).
///
/// # Errors
/// I/O errors; the previous vote file is then still in place.
pub fn write_vote(dir: &Path, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
    write_atomic(dir, VOTE_FILE, Kind::Vote, &encode(vote))
}

fn encode(vote: &Vote<NodeId>) -> Vec<u8> {
    let mut payload = Vec::with_capacity(18);
    payload.extend_from_slice(&vote.leader_id.term.to_be_bytes());
    payload.push(u8::from(vote.committed));
    payload.push(u8::from(vote.leader_id.voted_for.is_some()));
    payload.extend_from_slice(&vote.leader_id.voted_for.unwrap_or(0).to_be_bytes());
    payload
}

fn decode(payload: &[u8]) -> Option<Vote<NodeId>> {
    let mut reader = PayloadReader::new(payload);
    let term = reader.u64()?;
    let committed = flag(reader.u8()?)?;
    let has_voted = flag(reader.u8()?)?;
    let voted_for = reader.u64()?;
    if !reader.rest().is_empty() || (!has_voted && voted_for != 0) {
        return None;
    }
    Some(Vote {
        leader_id: LeaderId {
            term,
            voted_for: has_voted.then_some(voted_for),
        },
        committed,
    })
}

fn flag(byte: u8) -> Option<bool> {
    match byte {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_round_trip_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_vote(dir.path()).unwrap(), None);
        for vote in [
            Vote::new(7, 3),
            Vote::new_committed(9, 1),
            Vote {
                leader_id: LeaderId {
                    term: 2,
                    voted_for: None,
                },
                committed: false,
            },
        ] {
            write_vote(dir.path(), &vote).unwrap();
            assert_eq!(read_vote(dir.path()).unwrap(), Some(vote));
        }
        std::fs::write(dir.path().join(VOTE_FILE), b"garbage").unwrap();
        assert!(matches!(
            read_vote(dir.path()),
            Err(RaftStorageError::CorruptCheckpoint { .. })
        ));
    }
}
