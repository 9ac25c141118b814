//! The request bytes budget for the calls tonic decodes itself ([`RequestMemoryLayer`]): every
//! gRPC path but the three the broker reads itself (which take their share in
//! `services::unary::read_request`) and node-to-node traffic.
//!
//! Why a body wrapper: tonic buffers a request message until it is whole (up to the service's
//! 16 MiB limit), and the buffer grows as the client sends, so a budget has to act before
//! tonic sees the bytes. The wrapper reads each message's 5-byte prefix as it passes, takes
//! the declared size from the budget before handing the frame on (waiting, the rest of the
//! body unread, when it is not free), and gives it back once the message's last byte is
//! handed on, when tonic decodes it. While a frame waits for its share, it is held outside the
//! budget: at most one DATA frame (`HTTP2_MAX_FRAME_BYTES`) per stream. A declared size over the service's limit takes nothing:
//! tonic refuses it on the same prefix, and a false length could otherwise claim the whole
//! budget.
//!
//! Node-to-node traffic (`cairn.cluster.v1.Peer`) is not budgeted: replication must go on
//! while clients fill the budget, and a commit's acknowledgement would otherwise wait on the
//! very produce requests it answers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use cairn_codec::grpc_frame::PREFIX_BYTES;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{HeldRequestBytes, RequestMemory};

/// Paths whose bodies are not wrapped: the broker's own readers budget these, or (the peer
/// service) they are not budgeted at all; see the module docs.
const UNWRAPPED_PATH_PREFIXES: [&str; 4] = [
    crate::services::PRODUCE_PATH,
    crate::services::FETCH_PATH,
    crate::services::SUBSCRIBE_PATH,
    "/cairn.cluster.v1.Peer/",
];

/// Wraps each budgeted call's body in [`BudgetedBody`].
#[derive(Clone, Debug)]
pub struct RequestMemoryLayer {
    memory: Arc<RequestMemory>,
    max_message_bytes: usize,
}

impl RequestMemoryLayer {
    /// Budgets bodies within `memory`; a message declaring more than `max_message_bytes` (the
    /// services' decoding limit) takes nothing, since tonic refuses it.
    pub fn new(memory: Arc<RequestMemory>, max_message_bytes: usize) -> Self {
        RequestMemoryLayer {
            memory,
            max_message_bytes,
        }
    }
}

impl<S> Layer<S> for RequestMemoryLayer {
    type Service = RequestMemoryService<S>;

    fn layer(&self, inner: S) -> RequestMemoryService<S> {
        RequestMemoryService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service [`RequestMemoryLayer`] makes.
#[derive(Clone, Debug)]
pub struct RequestMemoryService<S> {
    layer: RequestMemoryLayer,
    inner: S,
}

impl<S> Service<Request<Body>> for RequestMemoryService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if UNWRAPPED_PATH_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            return self.inner.call(request);
        }
        let (memory, max) = (Arc::clone(&self.layer.memory), self.layer.max_message_bytes);
        self.inner
            .call(request.map(|body| Body::new(BudgetedBody::new(body, memory, max))))
    }
}

/// A future holding part of the budget once it is free.
type Acquiring = Pin<Box<dyn Future<Output = HeldRequestBytes> + Send>>;

/// A request body whose messages hold their declared sizes of the budget from their prefix
/// to their last byte; see the module docs.
pub struct BudgetedBody {
    inner: Body,
    memory: Arc<RequestMemory>,
    max_message_bytes: usize,
    /// Bytes of the body handed on so far.
    passed: u64,
    /// Where in the body the next message's prefix starts.
    next_prefix_at: u64,
    /// The prefix bytes read so far, when it spans frames.
    prefix: [u8; PREFIX_BYTES],
    prefix_len: usize,
    /// The frame waiting for its messages' share, where the last of them ends, and the share
    /// being acquired.
    waiting: Option<(Bytes, u64, Acquiring)>,
    /// The share held, and the body position where the message it covers ends.
    held: Option<(HeldRequestBytes, u64)>,
}

impl std::fmt::Debug for BudgetedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetedBody")
            .field("passed", &self.passed)
            .field("next_prefix_at", &self.next_prefix_at)
            .field("waiting", &self.waiting.is_some())
            .finish_non_exhaustive()
    }
}

impl BudgetedBody {
    /// Wraps `inner`.
    pub fn new(inner: Body, memory: Arc<RequestMemory>, max_message_bytes: usize) -> Self {
        BudgetedBody {
            inner,
            memory,
            max_message_bytes,
            passed: 0,
            next_prefix_at: 0,
            prefix: [0; PREFIX_BYTES],
            prefix_len: 0,
            waiting: None,
            held: None,
        }
    }

    /// Reads the prefixes that end inside `data` (which starts at `self.passed`) and returns
    /// the bytes the messages they begin need, and where the last of them ends.
    fn needed_by(&mut self, data: &[u8]) -> Option<(usize, u64)> {
        let start = self.passed;
        let end = start + data.len() as u64;
        let mut needed: Option<(usize, u64)> = None;
        while self.next_prefix_at + self.prefix_len as u64 >= start
            && self.next_prefix_at + (self.prefix_len as u64) < end
        {
            let at = (self.next_prefix_at + self.prefix_len as u64 - start) as usize;
            let take = (PREFIX_BYTES - self.prefix_len).min(data.len() - at);
            self.prefix[self.prefix_len..self.prefix_len + take]
                .copy_from_slice(&data[at..at + take]);
            self.prefix_len += take;
            if self.prefix_len < PREFIX_BYTES {
                break;
            }
            let declared = u32::from_be_bytes([
                self.prefix[1],
                self.prefix[2],
                self.prefix[3],
                self.prefix[4],
            ]) as usize;
            let message_end = self.next_prefix_at + (PREFIX_BYTES + declared) as u64;
            if declared <= self.max_message_bytes {
                let bytes = needed.map_or(0, |(bytes, _)| bytes) + PREFIX_BYTES + declared;
                needed = Some((bytes, message_end));
            }
            self.next_prefix_at = message_end;
            self.prefix_len = 0;
        }
        needed
    }

    /// Hands `data` on, and gives back the share once its message has been handed on whole.
    fn pass(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.passed += data.len() as u64;
        if self
            .held
            .as_ref()
            .is_some_and(|(_, message_end)| *message_end <= self.passed)
        {
            self.held = None;
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl HttpBody for BudgetedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if let Some((_, _, acquiring)) = this.waiting.as_mut() {
            let share = ready!(acquiring.as_mut().poll(cx));
            let Some((data, message_end, _)) = this.waiting.take() else {
                return Poll::Ready(None);
            };
            this.held = Some((share, message_end));
            return this.pass(data);
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        let Some((bytes, message_end)) = this.needed_by(&data) else {
            return this.pass(data);
        };
        // A message begins in this frame, so the one before it ends here: its share goes
        // before the next is waited for, or two bodies each holding one message and waiting
        // for the next could wait on each other for good.
        this.held = None;
        let memory = Arc::clone(&this.memory);
        let mut acquiring: Acquiring = Box::pin(async move { memory.hold(bytes).await });
        match acquiring.as_mut().poll(cx) {
            Poll::Ready(share) => {
                this.held = Some((share, message_end));
                this.pass(data)
            }
            Poll::Pending => {
                this.waiting = Some((data, message_end, acquiring));
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn message(declared: usize) -> Bytes {
        let mut wire = BytesMut::new();
        wire.put_u8(0);
        wire.put_u32(u32::try_from(declared).unwrap());
        wire.put_bytes(7, declared);
        wire.freeze()
    }

    /// A body of `frames`, counting how many were taken from it.
    fn body_of(frames: Vec<Bytes>, taken: Arc<AtomicUsize>) -> Body {
        let frames = futures_util::stream::iter(frames).map(move |frame| {
            taken.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Status>(Frame::data(frame))
        });
        Body::new(http_body_util::StreamBody::new(frames))
    }

    use futures_util::StreamExt;

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_message_holds_its_size_from_its_prefix_to_its_last_byte() {
        let memory = Arc::new(RequestMemory::new(1_000));
        let wire = message(95);
        let frames = vec![wire.slice(..3), wire.slice(3..50), wire.slice(50..)];
        let taken = Arc::new(AtomicUsize::new(0));
        let mut body =
            BudgetedBody::new(body_of(frames, Arc::clone(&taken)), memory.clone(), 1 << 20);
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 0, "the prefix is not whole yet");
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 100);
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 0, "handed on whole");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_message_waits_unread_until_its_size_is_free() {
        let memory = Arc::new(RequestMemory::new(100));
        let elsewhere = memory.hold(50).await;
        let wire = message(95);
        let taken = Arc::new(AtomicUsize::new(0));
        let frames = vec![wire.slice(..10), wire.slice(10..)];
        let body = BudgetedBody::new(body_of(frames, Arc::clone(&taken)), memory.clone(), 1 << 20);
        let reading = tokio::spawn(async move { body.collect().await.unwrap().to_bytes() });
        settle().await;
        assert!(!reading.is_finished());
        assert_eq!(
            taken.load(Ordering::SeqCst),
            1,
            "nothing read past the prefix's frame"
        );
        drop(elsewhere);
        assert_eq!(reading.await.unwrap(), wire);
        assert_eq!(memory.used_bytes(), 0);
    }

    #[tokio::test]
    async fn the_next_message_does_not_wait_on_the_share_of_the_one_before() {
        // Each message fits the budget, both together do not: the first's share must go
        // before the second's is waited for, or the body waits on itself.
        let memory = Arc::new(RequestMemory::new(100));
        let (first, second) = (message(55), message(55));
        let mut straddling = BytesMut::from(&first[30..]);
        straddling.extend_from_slice(&second[..20]);
        let frames = vec![first.slice(..30), straddling.freeze(), second.slice(20..)];
        let body = BudgetedBody::new(
            body_of(frames, Arc::new(AtomicUsize::new(0))),
            memory.clone(),
            1 << 20,
        );
        let all = tokio::time::timeout(std::time::Duration::from_secs(5), body.collect())
            .await
            .expect("the body is read through")
            .unwrap()
            .to_bytes();
        assert_eq!(all.len(), first.len() + second.len());
        assert_eq!(memory.used_bytes(), 0);
    }

    #[tokio::test]
    async fn a_length_over_the_limit_takes_nothing() {
        let memory = Arc::new(RequestMemory::new(100));
        let mut prefix = BytesMut::new();
        prefix.put_u8(0);
        prefix.put_u32(1 << 30);
        let mut body = BudgetedBody::new(
            body_of(vec![prefix.freeze()], Arc::new(AtomicUsize::new(0))),
            memory.clone(),
            1 << 20,
        );
        body.frame().await.unwrap().unwrap();
        assert_eq!(
            memory.used_bytes(),
            0,
            "tonic refuses it on the same prefix"
        );
    }
}
