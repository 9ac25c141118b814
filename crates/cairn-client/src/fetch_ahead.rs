//! [`FetchAhead`]: one fetch sent before the poll that wants it, so the broker reads and sends
//! the next chunk while the caller handles this one. Both consumers keep one.
//!
//! The invariant that makes it safe: an answer is used only for a request identical to the one
//! sent, apart from the wait (partition, offset, format, size, group member and epoch all
//! equal). Anything that moved in between (a seek, a revoked partition, a new member epoch, an
//! offset reset) makes the requests differ, and the answer is dropped: a fetch only reads, so
//! dropping one costs a read, never a record. The broker checked a group member's epoch when
//! it read the answer, not when the member uses it, so the group consumer also drops it unless
//! the coordinator cannot have expired the member in between (`surely_a_member`).

use std::collections::BTreeMap;

use crate::routing::AuthChannel;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::{FetchRequest, FetchResponse};
use tokio::task::JoinHandle;

/// At most one fetch in flight ahead of the poll that will want it.
#[derive(Debug, Default)]
pub(crate) struct FetchAhead {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    /// What was sent, with no wait.
    request: FetchRequest,
    answer: JoinHandle<Result<FetchResponse, tonic::Status>>,
}

impl FetchAhead {
    /// Sends `request` now, answering at once, in place of any fetch sent ahead before.
    pub(crate) fn send(&mut self, client: &ConsumerClient<AuthChannel>, request: FetchRequest) {
        self.cancel();
        let request = FetchRequest {
            max_wait_ms: 0,
            ..request
        };
        let mut client = client.clone();
        let sent = request.clone();
        let answer = tokio::spawn(async move { Ok(client.fetch(sent).await?.into_inner()) });
        self.pending = Some(Pending { request, answer });
    }

    /// The answer of the fetch sent ahead, if it asked for what `wanted` asks. `None` means the
    /// caller sends `wanted` itself: nothing was sent ahead, it asked for something else, it
    /// failed (so the error the caller reports comes from its own fetch), or it found nothing
    /// where `wanted` would wait for records, which an answer-at-once fetch did not do.
    pub(crate) async fn take(&mut self, wanted: &FetchRequest) -> Option<FetchResponse> {
        let pending = self.pending.take()?;
        let same = pending.request.max_wait_ms == 0
            && FetchRequest {
                max_wait_ms: 0,
                ..wanted.clone()
            } == pending.request;
        if !same {
            pending.answer.abort();
            return None;
        }
        let response = pending.answer.await.ok()?.ok()?;
        let empty = response.records.is_empty() && response.record_batches.is_empty();
        (!(empty && wanted.max_wait_ms > 0)).then_some(response)
    }

    /// Drops the fetch sent ahead, if any.
    pub(crate) fn cancel(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.answer.abort();
        }
    }
}

/// The fetch a round will most likely make after `answer`, the answer for
/// `partitions[index]`, if nothing moves: the round's next partition at its position, or, with
/// one partition, this one where `answer` ends. `None` when that is the partition's end: a
/// consumer that keeps up would otherwise make two fetches for every one that finds records.
pub(crate) fn likely_next<K: Ord + Clone>(
    partitions: &[K],
    index: usize,
    positions: &BTreeMap<K, i64>,
    answer: &FetchResponse,
) -> Option<(K, i64)> {
    let this = partitions.get(index)?;
    let following = partitions.get((index + 1) % partitions.len())?;
    if following != this {
        return positions
            .get(following)
            .map(|&offset| (following.clone(), offset));
    }
    (answer.next_offset < answer.high_watermark).then(|| (this.clone(), answer.next_offset))
}

impl Drop for FetchAhead {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(next_offset: i64, high_watermark: i64) -> FetchResponse {
        FetchResponse {
            next_offset,
            high_watermark,
            ..Default::default()
        }
    }

    #[test]
    fn the_next_partition_at_its_position_or_the_same_one_until_its_end() {
        let positions = BTreeMap::from([(0, 10), (1, 20), (2, 30)]);
        let partitions = [0, 1, 2];
        assert_eq!(
            likely_next(&partitions, 0, &positions, &answer(15, 99)),
            Some((1, 20))
        );
        assert_eq!(
            likely_next(&partitions, 2, &positions, &answer(35, 99)),
            Some((0, 10)),
            "the round wraps"
        );
        let one = [1];
        assert_eq!(
            likely_next(&one, 0, &positions, &answer(25, 99)),
            Some((1, 25))
        );
        assert_eq!(likely_next(&one, 0, &positions, &answer(99, 99)), None);
        assert_eq!(likely_next(&one, 5, &positions, &answer(25, 99)), None);
        let empty: [i32; 0] = [];
        assert_eq!(likely_next(&empty, 0, &positions, &answer(25, 99)), None);
    }
}
