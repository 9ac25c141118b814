//! Round trips and refusals of the wire encoding.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::entry::EntryPayload;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Entry, LeaderId, Membership, SnapshotMeta, StoredMembership, Vote};

use super::*;
use crate::types::{BatchData, PartitionRaft, PeerNode};

fn vote(term: u64, node: Option<u64>, committed: bool) -> Vote<u64> {
    Vote {
        leader_id: LeaderId {
            term,
            voted_for: node,
        },
        committed,
    }
}

fn membership() -> Membership<u64, PeerNode> {
    let nodes: BTreeMap<u64, PeerNode> = (1..=3)
        .map(|id| {
            (
                id,
                PeerNode {
                    addr: format!("127.0.0.1:70{id}0"),
                },
            )
        })
        .collect();
    let voters: BTreeSet<u64> = nodes.keys().copied().collect();
    Membership::new(vec![voters], nodes)
}

fn sample_append() -> AppendEntriesRequest<PartitionRaft> {
    AppendEntriesRequest {
        vote: vote(7, Some(2), true),
        prev_log_id: Some(log_id(6, 41)),
        leader_commit: Some(log_id(6, 40)),
        entries: vec![
            Entry {
                log_id: log_id(7, 42),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(7, 43),
                payload: EntryPayload::Normal(BatchData(Bytes::from_static(b"batch bytes"))),
            },
            Entry {
                log_id: log_id(7, 44),
                payload: EntryPayload::Membership(membership()),
            },
        ],
    }
}

#[test]
fn append_requests_round_trip_with_every_entry_kind() {
    let req = sample_append();
    let decoded = decode_append::<PartitionRaft>(encode_append(&req)).expect("decodes");
    assert_eq!(decoded.vote, req.vote);
    assert_eq!(decoded.prev_log_id, req.prev_log_id);
    assert_eq!(decoded.leader_commit, req.leader_commit);
    assert_eq!(decoded.entries, req.entries);
}

#[test]
fn a_heartbeat_is_a_few_dozen_bytes() {
    let heartbeat = AppendEntriesRequest::<PartitionRaft> {
        vote: vote(3, Some(1), true),
        prev_log_id: Some(log_id(3, 1_000_000)),
        leader_commit: Some(log_id(3, 1_000_000)),
        entries: Vec::new(),
    };
    let bytes = encode_append(&heartbeat);
    assert!(bytes.len() <= 64, "{} bytes", bytes.len());
    let decoded = decode_append::<PartitionRaft>(bytes).expect("decodes");
    assert!(decoded.entries.is_empty());
    assert_eq!(decoded.vote, heartbeat.vote);
}

#[test]
fn record_batches_are_slices_of_the_received_buffer() {
    let received = encode_append(&sample_append());
    let range = received.as_ptr() as usize..received.as_ptr() as usize + received.len();
    let decoded = decode_append::<PartitionRaft>(received.clone()).expect("decodes");
    let EntryPayload::Normal(BatchData(batch)) = &decoded.entries[1].payload else {
        panic!("second entry is a batch");
    };
    assert!(
        range.contains(&(batch.as_ptr() as usize)),
        "batch was copied"
    );
}

#[test]
fn every_answer_round_trips() {
    for resp in [
        AppendEntriesResponse::Success,
        AppendEntriesResponse::PartialSuccess(Some(log_id(2, 9))),
        AppendEntriesResponse::PartialSuccess(None),
        AppendEntriesResponse::Conflict,
        AppendEntriesResponse::HigherVote(vote(9, Some(3), false)),
    ] {
        let decoded = decode_append_response(encode_append_response(&resp)).expect("decodes");
        assert_eq!(decoded, resp);
    }
    let req = VoteRequest {
        vote: vote(4, Some(1), false),
        last_log_id: Some(log_id(3, 17)),
    };
    assert_eq!(decode_vote(encode_vote(&req)).expect("decodes"), req);
    let resp = VoteResponse {
        vote: vote(4, Some(1), false),
        vote_granted: true,
        last_log_id: None,
    };
    assert_eq!(
        decode_vote_response(encode_vote_response(&resp)).expect("decodes"),
        resp
    );
    let resp = InstallSnapshotResponse {
        vote: vote(5, None, false),
    };
    assert_eq!(
        decode_snapshot_response(encode_snapshot_response(&resp)).expect("decodes"),
        resp
    );
}

#[test]
fn snapshot_chunks_round_trip() {
    let req = InstallSnapshotRequest::<PartitionRaft> {
        vote: vote(5, Some(2), true),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(5, 99)),
            last_membership: StoredMembership::new(Some(log_id(1, 0)), membership()),
            snapshot_id: "5-99-1".to_string(),
        },
        offset: 0,
        data: b"{\"log_start\":1234}".to_vec(),
        done: true,
    };
    let decoded = decode_snapshot::<PartitionRaft>(encode_snapshot(&req)).expect("decodes");
    assert_eq!(decoded.vote, req.vote);
    assert_eq!(decoded.meta, req.meta);
    assert_eq!(decoded.data, req.data);
    assert!(decoded.done);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let full = encode_append(&sample_append());
    for len in 0..full.len() {
        let cut = full.slice(..len);
        assert!(
            decode_append::<PartitionRaft>(cut).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
    let mut longer = full.to_vec();
    longer.push(0);
    assert_eq!(
        decode_append::<PartitionRaft>(Bytes::from(longer)).err(),
        Some(WireError::Trailing(1))
    );
}

#[test]
fn bad_tags_are_named() {
    let mut bytes = encode_append_response(&AppendEntriesResponse::Success).to_vec();
    bytes[0] = 9;
    assert_eq!(
        decode_append_response(Bytes::from(bytes)).err(),
        Some(WireError::BadTag {
            field: "append answer",
            tag: 9
        })
    );
    // An entry count far beyond the bytes present must not allocate for it.
    let mut huge = encode_append(&AppendEntriesRequest::<PartitionRaft> {
        vote: vote(1, None, false),
        prev_log_id: None,
        leader_commit: None,
        entries: Vec::new(),
    })
    .to_vec();
    let n = huge.len();
    huge[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_append::<PartitionRaft>(Bytes::from(huge)),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: every byte string of a pseudo-random stream.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..2_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 96) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (state.rotate_left(i as u32 % 64) & 0xff) as u8)
            .collect();
        let b = Bytes::from(bytes);
        let _ = decode_append::<PartitionRaft>(b.clone());
        let _ = decode_append_response(b.clone());
        let _ = decode_vote(b.clone());
        let _ = decode_vote_response(b.clone());
        let _ = decode_snapshot::<PartitionRaft>(b.clone());
        let _ = decode_snapshot_response(b.clone());
        let _ = decode_campaign(b.clone());
        let _ = decode_campaign_answer(b);
    }
}

#[test]
fn campaign_requests_and_answers_round_trip() {
    for req in [
        CampaignRequest {
            vote: vote(7, Some(2), true),
            last_log_index: Some(41),
        },
        CampaignRequest {
            vote: vote(1, Some(1), true),
            last_log_index: None,
        },
    ] {
        assert_eq!(
            decode_campaign(encode_campaign(&req)).expect("decodes"),
            req
        );
    }
    for started in [true, false] {
        assert_eq!(
            decode_campaign_answer(encode_campaign_answer(started)).expect("decodes"),
            started
        );
    }
    assert!(matches!(
        decode_campaign_answer(Bytes::from_static(&[2])),
        Err(WireError::BadTag { .. })
    ));
}

#[test]
fn fetch_requests_and_answers_round_trip_and_refuse_what_does_not_fit() {
    let req = FetchRequest {
        from: 41,
        max_entries: 3,
        max_bytes: 1 << 20,
    };
    assert_eq!(decode_fetch(encode_fetch(&req)), Ok(req));
    let batches = [Bytes::from_static(b"one"), Bytes::from_static(b"")];
    let answer = encode_fetch_answer(&batches);
    assert_eq!(decode_fetch_answer(answer.clone(), 3).unwrap(), batches);
    assert_eq!(
        decode_fetch_answer(answer.clone(), 1).err(),
        Some(WireError::TooMany {
            field: "fetched entries",
            count: 2,
            max: 1
        })
    );
    for len in 0..answer.len() {
        assert!(
            decode_fetch_answer(answer.slice(..len), 3).is_err(),
            "prefix of {len}"
        );
    }
    // A count far beyond the bytes present is refused before anything is allocated for it.
    let huge = Bytes::from(u32::MAX.to_le_bytes().to_vec());
    assert!(decode_fetch_answer(huge.clone(), u32::MAX).is_err());
    assert!(decode_fetch(Bytes::from_static(b"short")).is_err());
}

#[test]
fn a_heartbeat_is_told_from_an_append_by_its_header() {
    let request = sample_append();
    let with_entries = encode_append(&request);
    assert_eq!(
        append_summary(&with_entries),
        Some(AppendSummary {
            leader_commit: request.leader_commit.map(|id| id.index),
            carries_entries: true,
        })
    );
    let mut heartbeat = sample_append();
    heartbeat.entries.clear();
    heartbeat.prev_log_id = None;
    heartbeat.leader_commit = Some(log_id(3, 41));
    assert_eq!(
        append_summary(&encode_append(&heartbeat)),
        Some(AppendSummary {
            leader_commit: Some(41),
            carries_entries: false,
        })
    );
    heartbeat.leader_commit = None;
    assert_eq!(
        append_summary(&encode_append(&heartbeat)).map(|s| s.leader_commit),
        Some(None)
    );
    // A header cut short (or another call's payload) is not taken for either.
    assert_eq!(append_summary(&with_entries.slice(..5)), None);
    assert_eq!(append_summary(&Bytes::new()), None);
}
