//! The request bytes budget for the calls tonic decodes itself ([`RequestMemoryLayer`]): every
//! gRPC path but the three the broker reads itself (which take their share in
//! `services::unary::read_request`) and node-to-node traffic.
//!
//! Why a body wrapper: tonic buffers a request message until it is whole (up to the service's
//! 16 MiB limit), and the buffer grows as the client sends, so a budget has to act before
//! tonic sees the bytes. The wrapper reads each message's 5-byte prefix as it passes and takes
//! the declared size from the budget before handing the prefix on (waiting, the rest of the
//! body unread, when it is not free). Every budgeted call but server reflection's stream is
//! unary, and tonic keeps a unary call's message while it waits for the end of the stream, so
//! there the share is held until the body ends, the time limit runs until then, and a second
//! message is refused at once (tonic would refuse it only at the end of the stream, holding
//! the first meanwhile). In reflection's stream each message's share is held until the next
//! message's prefix is whole; frames are cut at message boundaries, so a message's bytes are
//! all handed on before its share goes and the next one is waited for, and no body holds one
//! share while waiting for another.
//!
//! A message must arrive whole (a unary body: end) within [`RequestMemory::body_timeout`] of
//! its share being taken, or the body fails: otherwise 5-byte prefixes declaring 16 MiB each
//! could hold the whole budget for good. While a frame waits for its share it is held outside
//! the budget, counted apart and capped ([`RequestMemory::hold_with`]). A declared size over
//! the service's limit takes nothing: tonic refuses it on the same prefix, and a false length
//! could otherwise claim the whole budget.
//!
//! Health checks (`grpc.health.v1`) are not budgeted, so that a load balancer's probe is
//! answered while the budget is full; their messages are capped at `MAX_HEALTH_REQUEST_BYTES`.
//! Their bodies are still wrapped, for the time limit alone: every call's request must arrive
//! within [`RequestMemory::body_timeout`] of its start (a stream's, its first message must
//! start), since a call in flight keeps its connection from the idle timeout and eviction, and
//! health checks need no credentials.
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
use http_body::{Body as HttpBody, Frame};
use tonic::Status;
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{BudgetFull, HeldRequestBytes, RequestMemory};

/// Paths whose bodies are not wrapped: the broker's own readers budget these, or (the peer
/// service) they are not budgeted at all; see the module docs.
const UNWRAPPED_PATH_PREFIXES: [&str; 4] = [
    crate::services::PRODUCE_PATH,
    crate::services::FETCH_PATH,
    crate::services::SUBSCRIBE_PATH,
    "/cairn.cluster.v1.Peer/",
];

/// Paths whose bodies are held to the time limit but not budgeted (see the module docs).
const TIMED_ONLY_PATH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The one budgeted service whose calls stream requests (server reflection); every other
/// budgeted call is unary.
const STREAMING_PATH_PREFIX: &str = "/grpc.reflection.";

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
        if path.starts_with(TIMED_ONLY_PATH_PREFIX) {
            return self
                .inner
                .call(request.map(|body| Body::new(BudgetedBody::timed_only(body, memory))));
        }
        let unary = !path.starts_with(STREAMING_PATH_PREFIX);
        self.inner
            .call(request.map(|body| Body::new(BudgetedBody::new(body, memory, max, unary))))
    }
}

/// A future holding part of the budget once it is free, or refused.
type Acquiring = Pin<Box<dyn Future<Output = Result<HeldRequestBytes, BudgetFull>> + Send>>;

/// A request body whose messages hold their declared sizes of the budget from their prefix on;
/// see the module docs.
pub struct BudgetedBody {
    inner: Body,
    memory: Arc<RequestMemory>,
    max_message_bytes: usize,
    /// Bytes of the current message, its prefix included, not yet handed on; 0 between
    /// messages.
    message_left: u64,
    /// The next message's prefix as far as it has come, between messages.
    prefix: [u8; PREFIX_BYTES],
    prefix_len: usize,
    /// Bytes read from `inner` and not yet handed on.
    rest: Option<Bytes>,
    /// The share being waited for, and the bytes of its message still to hand on once held.
    acquiring: Option<(Acquiring, u64)>,
    /// The share of the current or last message: held until the next message's prefix is
    /// whole or the body ends, since tonic keeps a unary call's message until the end of the
    /// stream.
    held: Option<HeldRequestBytes>,
    /// When the held message must be whole by (see [`RequestMemory::body_timeout`]).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Past a message over the limit, which tonic refuses, or from the start for a body held
    /// to the time limit alone ([`BudgetedBody::timed_only`]): the rest goes on unbudgeted.
    unbudgeted: bool,
    /// A unary call: one message, whose share (and time limit) lasts to the end of the stream.
    unary: bool,
    /// A message's prefix has been read.
    seen_message: bool,
}

impl std::fmt::Debug for BudgetedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetedBody")
            .field("message_left", &self.message_left)
            .field("prefix_len", &self.prefix_len)
            .field("acquiring", &self.acquiring.is_some())
            .field("held", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

impl BudgetedBody {
    /// Wraps `inner`, the body of a unary call when `unary` (every budgeted call but server
    /// reflection's stream).
    pub fn new(
        inner: Body,
        memory: Arc<RequestMemory>,
        max_message_bytes: usize,
        unary: bool,
    ) -> Self {
        // The call's request must start within the time limit: until then it holds no share,
        // but its connection counts it in flight, which keeps the idle timeout and eviction off
        // it. A stream's later messages may come as late as they like (the limit runs from
        // each one's prefix), as its first is then known to have come.
        let deadline = Some(Box::pin(tokio::time::sleep(memory.body_timeout())));
        BudgetedBody {
            inner,
            memory,
            max_message_bytes,
            message_left: 0,
            prefix: [0; PREFIX_BYTES],
            prefix_len: 0,
            rest: None,
            acquiring: None,
            held: None,
            deadline,
            unbudgeted: false,
            unary,
            seen_message: false,
        }
    }

    /// Wraps `inner` for the time limit alone: nothing is taken from the budget, and the whole
    /// body must arrive within [`RequestMemory::body_timeout`] of the call's start.
    pub fn timed_only(inner: Body, memory: Arc<RequestMemory>) -> Self {
        let mut body = BudgetedBody::new(inner, memory, usize::MAX, true);
        body.unbudgeted = true;
        body
    }

    /// What the body fails with when its time limit passes: its message, once it started, was
    /// not whole; or it never started; or, held to the limit alone, the request was not whole.
    fn late(&self) -> Status {
        let limit = self.memory.body_timeout();
        if self.held.is_some() || self.seen_message {
            body_too_slow(limit)
        } else if self.unbudgeted {
            request_too_slow(limit)
        } else {
            message_too_slow_to_start(limit)
        }
    }

    /// Hands on the part of `data` inside the current message, keeping what follows it for
    /// the next poll.
    fn pass_message_bytes(
        &mut self,
        mut data: Bytes,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let inside =
            usize::try_from(self.message_left).map_or(data.len(), |left| left.min(data.len()));
        if inside < data.len() {
            self.rest = Some(data.split_off(inside));
        }
        self.message_left -= inside as u64;
        // A unary call's message stays with tonic until the stream ends, so its time limit
        // runs until then too; a stream's messages are handed on one by one.
        if self.message_left == 0 && !self.unary {
            self.deadline = None;
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    /// Reads prefix bytes from the front of `data`, between messages. Returns the data to
    /// hand on at once (a prefix still incomplete), or starts acquiring the message's share
    /// and keeps `data` until it is held.
    fn read_prefix(&mut self, data: Bytes) -> Option<Bytes> {
        let take = (PREFIX_BYTES - self.prefix_len).min(data.len());
        self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
        let passed_before = self.prefix_len;
        self.prefix_len += take;
        if self.prefix_len < PREFIX_BYTES {
            // At most four bytes, handed on ahead of the share: tonic holds no more of them.
            self.message_left = 0;
            return Some(data);
        }
        self.prefix_len = 0;
        let declared = u32::from_be_bytes([
            self.prefix[1],
            self.prefix[2],
            self.prefix[3],
            self.prefix[4],
        ]) as usize;
        // The message before is whole and handed on, so its share goes before the next is
        // waited for: two bodies each holding one message's share and waiting for their next
        // could otherwise wait on each other for good.
        self.held = None;
        if declared > self.max_message_bytes {
            // tonic refuses it on this prefix; a false length must not claim the budget.
            self.unbudgeted = true;
            return Some(data);
        }
        self.seen_message = true;
        let size = PREFIX_BYTES + declared;
        let memory = Arc::clone(&self.memory);
        let in_hand = data.len();
        self.acquiring = Some((
            Box::pin(async move { memory.hold_with(size, in_hand).await }),
            (size - passed_before) as u64,
        ));
        self.rest = Some(data);
        None
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
        loop {
            if let Some((acquiring, message_bytes)) = this.acquiring.as_mut() {
                let share = match ready!(acquiring.as_mut().poll(cx)) {
                    Ok(share) => share,
                    Err(full) => {
                        this.acquiring = None;
                        this.rest = None;
                        return Poll::Ready(Some(Err(budget_full(full))));
                    }
                };
                this.message_left = *message_bytes;
                this.acquiring = None;
                this.held = Some(share);
                this.deadline = Some(Box::pin(tokio::time::sleep(this.memory.body_timeout())));
            }
            let data = match this.rest.take() {
                Some(data) => data,
                None => {
                    if let Some(deadline) = this.deadline.as_mut()
                        && deadline.as_mut().poll(cx).is_ready()
                    {
                        let late = this.late();
                        this.held = None;
                        this.deadline = None;
                        return Poll::Ready(Some(Err(late)));
                    }
                    match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => data,
                            Err(trailers) => {
                                this.held = None;
                                return Poll::Ready(Some(Ok(trailers)));
                            }
                        },
                        Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                        None => {
                            this.held = None;
                            return Poll::Ready(None);
                        }
                    }
                }
            };
            if this.unbudgeted || data.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.message_left > 0 {
                return this.pass_message_bytes(data);
            }
            if this.unary && this.seen_message {
                // tonic would refuse it too, but only after holding the first message for as
                // long as the client keeps the stream open.
                this.held = None;
                this.deadline = None;
                return Poll::Ready(Some(Err(crate::status::invalid_request(
                    "a unary call's body holds more than one message".to_string(),
                ))));
            }
            if let Some(data) = this.read_prefix(data) {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.acquiring.is_none() && self.rest.is_none() && self.inner.is_end_stream()
    }
}

/// The refusal of a request that found the budget full and its waiting room too.
pub(crate) fn budget_full(full: BudgetFull) -> Status {
    crate::status::status(
        cairn_proto::v1::ErrorCode::Throttled,
        tonic::Code::ResourceExhausted,
        full.to_string(),
    )
}

/// The error a body gets when its message is not whole within the time limit.
pub(crate) fn body_too_slow(limit: std::time::Duration) -> Status {
    timed_out(format!(
        "the request's message did not arrive whole within {} s of the broker setting memory \
         aside for it (--queued-max-request-bytes)",
        limit.as_secs()
    ))
}

/// The status of a call whose message did not start (its 5-byte prefix not whole) within
/// `limit` of the call's start: held open with nothing sent, it would keep its connection
/// from the idle timeout and eviction for good.
pub(crate) fn message_too_slow_to_start(limit: std::time::Duration) -> Status {
    timed_out(format!(
        "the request's message did not start within {} s of the call's start",
        limit.as_secs()
    ))
}

/// The status of a call whose whole request did not arrive within `limit` of its start (a
/// call held to the time limit but not budgeted: a health check).
fn request_too_slow(limit: std::time::Duration) -> Status {
    timed_out(format!(
        "the request did not arrive whole within {} s of the call's start",
        limit.as_secs()
    ))
}

/// A call's request did not come in time: REQUEST_TIMED_OUT, saying what was late.
fn timed_out(message: String) -> Status {
    crate::status::status(
        cairn_proto::v1::ErrorCode::RequestTimedOut,
        tonic::Code::DeadlineExceeded,
        message,
    )
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

    /// A unary body of `sent`, then a stream that never ends.
    fn then_silence(sent: Bytes, memory: &Arc<RequestMemory>) -> BudgetedBody {
        let frames = futures_util::stream::iter([Ok::<_, Status>(Frame::data(sent))])
            .chain(futures_util::stream::pending());
        BudgetedBody::new(
            Body::new(http_body_util::StreamBody::new(frames)),
            Arc::clone(memory),
            1 << 20,
            true,
        )
    }

    /// The body fails at the time limit with DEADLINE_EXCEEDED, its share given back. Returns
    /// the failure.
    async fn fails_in_time(body: &mut BudgetedBody, memory: &RequestMemory) -> Status {
        let failed = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("the time limit ends the wait")
            .unwrap()
            .unwrap_err();
        assert_eq!(failed.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(memory.used_bytes(), 0);
        failed
    }

    /// A 1,000-byte budget whose time limit is 50 ms.
    fn short_limited_memory() -> Arc<RequestMemory> {
        Arc::new(RequestMemory::new(1_000).with_body_timeout(std::time::Duration::from_millis(50)))
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_message_holds_its_size_from_its_prefix_until_the_body_ends() {
        let memory = Arc::new(RequestMemory::new(1_000));
        let wire = message(95);
        let frames = vec![wire.slice(..3), wire.slice(3..50), wire.slice(50..)];
        let taken = Arc::new(AtomicUsize::new(0));
        let mut body = BudgetedBody::new(
            body_of(frames, Arc::clone(&taken)),
            memory.clone(),
            1 << 20,
            true,
        );
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 0, "the prefix is not whole yet");
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 100);
        body.frame().await.unwrap().unwrap();
        assert_eq!(
            memory.used_bytes(),
            100,
            "tonic keeps a unary call's message until the stream ends"
        );
        assert!(body.frame().await.is_none());
        assert_eq!(memory.used_bytes(), 0, "the body ended");
    }

    #[tokio::test]
    async fn a_message_not_whole_in_time_fails_the_body_and_gives_its_share_back() {
        let memory = short_limited_memory();
        let wire = message(95);
        let mut body = then_silence(wire.slice(..10), &memory);
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 100);
        fails_in_time(&mut body, &memory).await;
    }

    #[tokio::test]
    async fn a_unary_call_whose_message_never_starts_fails_in_time() {
        let memory = short_limited_memory();
        // Two bytes of a prefix, then nothing: no share is taken, but the call must end.
        let mut body = then_silence(Bytes::from_static(&[0, 0]), &memory);
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 0);
        let failed = fails_in_time(&mut body, &memory).await;
        assert!(failed.message().contains("did not start"), "{failed:?}");
    }

    #[tokio::test]
    async fn a_stream_whose_first_message_never_starts_fails_in_time() {
        let memory = short_limited_memory();
        let frames = futures_util::stream::pending::<Result<Frame<Bytes>, Status>>();
        let mut body = BudgetedBody::new(
            Body::new(http_body_util::StreamBody::new(frames)),
            Arc::clone(&memory),
            1 << 20,
            false,
        );
        let failed = fails_in_time(&mut body, &memory).await;
        assert!(failed.message().contains("did not start"), "{failed:?}");
    }

    #[tokio::test]
    async fn a_health_check_is_held_to_the_time_limit_but_takes_nothing() {
        let memory = short_limited_memory();
        // A whole request passes as it came, with nothing taken from the budget.
        let wire = message(95);
        let taken = Arc::new(AtomicUsize::new(0));
        let body = BudgetedBody::timed_only(
            body_of(vec![wire.clone()], Arc::clone(&taken)),
            Arc::clone(&memory),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), wire);
        assert_eq!(memory.used_bytes(), 0);
        // Headers and part of a request, then nothing: the call ends at the limit.
        let frames = futures_util::stream::iter([Ok::<_, Status>(Frame::data(wire.slice(..10)))])
            .chain(futures_util::stream::pending());
        let mut body = BudgetedBody::timed_only(
            Body::new(http_body_util::StreamBody::new(frames)),
            Arc::clone(&memory),
        );
        body.frame().await.unwrap().unwrap();
        let failed = fails_in_time(&mut body, &memory).await;
        assert!(failed.message().contains("arrive whole"), "{failed:?}");
    }

    #[tokio::test]
    async fn a_message_waits_unread_until_its_size_is_free() {
        let memory = Arc::new(RequestMemory::new(100));
        let elsewhere = memory.hold(50).await;
        let wire = message(95);
        let taken = Arc::new(AtomicUsize::new(0));
        let frames = vec![wire.slice(..10), wire.slice(10..)];
        let body = BudgetedBody::new(
            body_of(frames, Arc::clone(&taken)),
            memory.clone(),
            1 << 20,
            true,
        );
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
        let mut body = BudgetedBody::new(
            body_of(frames, Arc::new(AtomicUsize::new(0))),
            memory.clone(),
            1 << 20,
            false,
        );
        let mut handed = Vec::new();
        while let Some(frame) =
            tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
                .await
                .expect("the body is read through")
        {
            handed.push(frame.unwrap().into_data().unwrap());
            assert!(memory.used_bytes() <= 60, "one message's share at a time");
        }
        // The frame holding the first's end and the second's start is cut between them.
        let lengths: Vec<usize> = handed.iter().map(Bytes::len).collect();
        assert_eq!(lengths, vec![30, 30, 20, 40]);
        assert_eq!(handed.concat(), [first, second].concat());
        assert_eq!(memory.used_bytes(), 0);
    }

    #[tokio::test]
    async fn a_unary_message_left_open_past_the_time_limit_fails_and_gives_its_share_back() {
        let memory = short_limited_memory();
        let wire = message(95);
        let mut body = then_silence(wire, &memory);
        body.frame().await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 100, "whole, but the stream is open");
        fails_in_time(&mut body, &memory).await;
    }

    #[tokio::test]
    async fn a_second_message_in_a_unary_body_is_refused() {
        let memory = Arc::new(RequestMemory::new(1_000));
        let frames = vec![message(95), message(0)];
        let mut body = BudgetedBody::new(
            body_of(frames, Arc::new(AtomicUsize::new(0))),
            memory.clone(),
            1 << 20,
            true,
        );
        body.frame().await.unwrap().unwrap();
        let refused = body.frame().await.unwrap().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
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
            true,
        );
        body.frame().await.unwrap().unwrap();
        assert_eq!(
            memory.used_bytes(),
            0,
            "tonic refuses it on the same prefix"
        );
    }
}
