//! AllocateProducerIds.

use super::*;
use crate::ids::ProducerIdBlock;
use crate::reply::Outcome;
use crate::{MAX_PRODUCER_ID, MAX_PRODUCER_ID_BLOCK_LEN};
#[test]
fn producer_id_blocks_never_overlap() {
    let mut metadata = cluster(2);
    let allocate = |node, block_len| Command::AllocateProducerIds { node, block_len };
    let first = metadata.apply(allocate(1, 1000)).unwrap();
    let second = metadata.apply(allocate(2, 10)).unwrap();
    assert_eq!(
        first.outcome,
        Outcome::ProducerIds(ProducerIdBlock {
            first: 0,
            len: 1000
        })
    );
    assert_eq!(
        second.outcome,
        Outcome::ProducerIds(ProducerIdBlock {
            first: 1000,
            len: 10
        })
    );
    assert_eq!(metadata.next_producer_id(), 1010);
    assert_eq!(
        metadata.producer_id_block(2),
        Some(ProducerIdBlock {
            first: 1000,
            len: 10
        })
    );
}

#[test]
fn producer_id_refusals() {
    let mut metadata = cluster(2);
    let allocate = |node, block_len| Command::AllocateProducerIds { node, block_len };
    assert_eq!(
        refused(&mut metadata, allocate(3, 10)),
        ControllerError::UnknownNode { node: 3 }
    );
    assert_eq!(
        refused(&mut metadata, allocate(1, 0)),
        ControllerError::InvalidProducerIdBlockLen {
            requested: 0,
            max: MAX_PRODUCER_ID_BLOCK_LEN
        }
    );
    assert_eq!(
        refused(&mut metadata, allocate(1, MAX_PRODUCER_ID_BLOCK_LEN + 1)),
        ControllerError::InvalidProducerIdBlockLen {
            requested: MAX_PRODUCER_ID_BLOCK_LEN + 1,
            max: MAX_PRODUCER_ID_BLOCK_LEN
        }
    );
}

#[test]
fn producer_id_space_runs_out_exactly_at_its_end() {
    let mut metadata = cluster(1);
    metadata.next_producer_id = MAX_PRODUCER_ID - 9;
    let allocate = |block_len| Command::AllocateProducerIds { node: 1, block_len };
    assert_eq!(
        refused(&mut metadata, allocate(11)),
        ControllerError::ProducerIdsExhausted {
            next_id: MAX_PRODUCER_ID - 9,
            requested: 11
        }
    );
    let reply = metadata.apply(allocate(10)).unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::ProducerIds(ProducerIdBlock {
            first: MAX_PRODUCER_ID - 9,
            len: 10
        })
    );
    assert_eq!(
        refused(&mut metadata, allocate(1)),
        ControllerError::ProducerIdsExhausted {
            next_id: MAX_PRODUCER_ID + 1,
            requested: 1
        }
    );
    metadata.check_invariants().unwrap();
}
