//! `AllocateProducerIds`: hands a node the next block of idempotent-producer ids. Blocks never
//! overlap, so ids are unique across the cluster and across controller failovers: the counter
//! lives in the replicated state, not on any node.

use crate::error::ControllerError;
use crate::ids::{NodeId, ProducerIdBlock};
use crate::metadata::ClusterMetadata;
use crate::reply::{Outcome, Reply};

/// Largest producer id: Kafka's producer ids are non-negative `int64`s.
pub const MAX_PRODUCER_ID: u64 = i64::MAX as u64;

/// Largest block one command may take. Kafka hands out 1,000 at a time; the cap keeps one
/// careless caller from taking a noticeable share of the space.
pub const MAX_PRODUCER_ID_BLOCK_LEN: u64 = 1_000_000;

impl ClusterMetadata {
    pub(super) fn allocate_producer_ids(
        &mut self,
        node: NodeId,
        block_len: u64,
    ) -> Result<Reply, ControllerError> {
        if !self.nodes.contains_key(&node) {
            return Err(ControllerError::UnknownNode { node });
        }
        if !(1..=MAX_PRODUCER_ID_BLOCK_LEN).contains(&block_len) {
            return Err(ControllerError::InvalidProducerIdBlockLen {
                requested: block_len,
                max: MAX_PRODUCER_ID_BLOCK_LEN,
            });
        }
        let first = self.next_producer_id;
        // The block's last id, first + len - 1, must not pass MAX_PRODUCER_ID.
        let last = match first.checked_add(block_len - 1) {
            Some(last) if last <= MAX_PRODUCER_ID => last,
            _ => {
                return Err(ControllerError::ProducerIdsExhausted {
                    next_id: first,
                    requested: block_len,
                });
            }
        };

        let block = ProducerIdBlock {
            first,
            len: block_len,
        };
        self.next_producer_id = last + 1;
        self.producer_id_blocks.insert(node, block);
        Ok(Reply::bare(Outcome::ProducerIds(block)))
    }
}
