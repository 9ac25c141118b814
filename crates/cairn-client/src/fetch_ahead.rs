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

use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::{FetchRequest, FetchResponse};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

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
    pub(crate) fn send(&mut self, client: &ConsumerClient<Channel>, request: FetchRequest) {
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

impl Drop for FetchAhead {
    fn drop(&mut self) {
        self.cancel();
    }
}
