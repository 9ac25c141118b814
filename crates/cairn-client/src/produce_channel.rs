//! [`ProduceChannel`]: the producer's own HTTP/2 connection to one broker, driven with `h2`
//! directly, so a produce request costs the fewest hand-offs between threads.
//!
//! Why not tonic's `Channel`: measured at 200 records/s with one request in flight, the
//! request path cost about 0.3 ms over the broker's fsync, and `strace` showed where. A call
//! through a tonic channel passes from the caller's task to the channel's `Buffer` worker, to
//! hyper's dispatch task, to the `h2` connection task that writes the socket, and the answer
//! comes back through a task of hyper's that waits for the response head: each a wake-up of
//! another task, on a runtime whose two threads also serve the broker on this machine. And
//! hyper sends the body from a pipe of its own, which raced the connection task: the request
//! went out as two `writev`s, HEADERS and then DATA, each waking the broker on its own.
//!
//! Here the calling task queues the HEADERS frame and both DATA chunks (see
//! [`crate::producer::produce_call`]) on the `h2` stream itself, and the connection task writes
//! them together; the answer wakes the calling task directly. What the tonic channel gave
//! the producer is kept: `TCP_NODELAY`, TLS, credentials, the client's wide flow-control
//! windows, and a new connection once the old one has failed (a broker restart), with the
//! failure reported as `UNAVAILABLE`, which the producer retries.
//!
//! Like the tonic channels ([`crate::connection::KEEPALIVE_INTERVAL`]), a connection with
//! requests outstanding is PINGed, and closed when the broker does not answer the PING in
//! time: a paused leader then costs its requests seconds, not their delivery timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::v1::{ProduceRequest, ProduceResponse};
use h2::RecvStream;
use h2::client::SendRequest;
use http::Uri;
use http_body::{Body, Frame};
use std::pin::Pin;

use crate::connection::one_broker_address;
use crate::connection::{
    HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_STREAM_WINDOW_BYTES, KEEPALIVE_INTERVAL,
    KEEPALIVE_TIMEOUT, Timeouts,
};
use crate::dial::{BrokerIo, dial};
use crate::error::ClientError;
use crate::producer::produce_call;

/// How the debug text of the broker's GOAWAY begins when it refuses a connection over one of
/// its connection limits (`cairn_server::connections::refusal`).
const CONNECTION_REFUSED: &str = "connection refused:";

/// A reconnecting HTTP/2 connection to one broker for Produce calls. Clones share it.
#[derive(Clone, Debug)]
pub(crate) struct ProduceChannel {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// `host:port` of the broker, for errors and dialing.
    address: Arc<str>,
    origin: Uri,
    /// The Produce method's URI on this broker.
    produce_uri: Uri,
    timeouts: Timeouts,
    /// The live connection, if any, and how many connections were opened before it.
    live: Mutex<Live>,
    /// One connection attempt at a time: the calls that find the connection broken wait for
    /// one new one instead of each dialing its own.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Live {
    connection: Option<Connected>,
    generation: u64,
}

/// One open connection: where new streams start, and how many calls wait on it (which the
/// keepalive watch reads).
#[derive(Clone, Debug)]
struct Connected {
    sender: SendRequest<Bytes>,
    outstanding: Arc<AtomicUsize>,
}

impl Connected {
    /// This connection once it can take a new stream.
    async fn ready(self) -> Result<Connected, h2::Error> {
        let sender = self.sender.ready().await?;
        Ok(Connected {
            sender,
            outstanding: self.outstanding,
        })
    }
}

/// Counts a call as outstanding on its connection for as long as it lives.
struct Outstanding(Arc<AtomicUsize>);

impl Outstanding {
    fn new(count: &Arc<AtomicUsize>) -> Outstanding {
        count.fetch_add(1, Ordering::Relaxed);
        Outstanding(Arc::clone(count))
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProduceChannel {
    /// A channel to the one broker at `address` (`host:port`) that connects on its first
    /// call, with the client's `timeouts` (connect deadline, TLS, credentials).
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] unless `address` is one well-formed address.
    pub(crate) fn lazy(address: &str, timeouts: Timeouts) -> Result<ProduceChannel, ClientError> {
        let (address, origin) = one_broker_address(address)?;
        let address: Arc<str> = address.into();
        let mut parts = origin.clone().into_parts();
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static(
            produce_call::PRODUCE_PATH,
        ));
        let produce_uri = Uri::from_parts(parts).map_err(|e| {
            ClientError::InvalidArgument(format!("no produce URI for {address}: {e}"))
        })?;
        Ok(ProduceChannel {
            shared: Arc::new(Shared {
                address,
                origin,
                produce_uri,
                timeouts,
                live: Mutex::new(Live::default()),
                connecting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Sends `request` (whose `payload` must be unset) with `batch` as its `record_batch`,
    /// asking the broker to give up after `timeout` and giving up itself once it has passed;
    /// answers as tonic's generated `produce` would.
    ///
    /// # Errors
    /// The call's [`tonic::Status`]: `UNAVAILABLE` when the broker cannot be reached or the
    /// connection breaks, `DEADLINE_EXCEEDED` past `timeout`, the broker's refusal, or an
    /// answer that does not decode (or exceeds `max_response_bytes`).
    pub(crate) async fn produce(
        &self,
        request: &ProduceRequest,
        batch: Bytes,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<ProduceResponse, tonic::Status> {
        let mut sent_on = None;
        let call = self.call(request, batch, timeout, max_response_bytes, &mut sent_on);
        match tokio::time::timeout(timeout, call).await {
            Ok(answer) => answer,
            Err(_) => {
                // A connection that leaves a request unanswered past its deadline may be
                // half-open (a host gone without a FIN or a reset, which TCP notices only after
                // many minutes of retransmits): the retry dials a new one.
                if let Some(generation) = sent_on {
                    self.shared.forget(generation);
                }
                Err(tonic::Status::deadline_exceeded(format!(
                    "no answer from {} within {timeout:?}",
                    self.shared.address
                )))
            }
        }
    }

    /// [`ProduceChannel::produce`] without its deadline; sets `sent_on` to the generation of
    /// the connection the request went out on.
    async fn call(
        &self,
        request: &ProduceRequest,
        batch: Bytes,
        timeout: Duration,
        max_response_bytes: usize,
        sent_on: &mut Option<u64>,
    ) -> Result<ProduceResponse, tonic::Status> {
        let head = produce_call::head(request, batch.len())?;
        let authorization = self
            .shared
            .timeouts
            .credentials
            .as_ref()
            .map(crate::Credentials::header);
        let http_head =
            produce_call::request_head(self.shared.produce_uri.clone(), timeout, authorization)?;
        let (connected, generation) = self.shared.ready_sender().await?;
        let _outstanding = Outstanding::new(&connected.outstanding);
        let mut sender = connected.sender;
        *sent_on = Some(generation);
        let failed = |err: h2::Error| self.shared.failed(generation, &err);
        let (response, mut body) = sender.send_request(http_head, false).map_err(failed)?;
        body.send_data(head, false).map_err(failed)?;
        body.send_data(batch, true).map_err(failed)?;
        let response = response.await.map_err(failed)?;
        produce_call::answer(response.map(H2Body::new), max_response_bytes).await
    }
}

impl Shared {
    /// A sender ready for a new stream on a live connection: the current one, or a new one if
    /// it has failed.
    ///
    /// Also returns the connection's generation, for [`Shared::failed`].
    async fn ready_sender(&self) -> Result<(Connected, u64), tonic::Status> {
        let (connected, generation) = {
            let live = self.live();
            (live.connection.clone(), live.generation)
        };
        if let Some(connected) = connected
            && let Ok(ready) = connected.ready().await
        {
            return Ok((ready, generation));
        }
        let _connecting = self.connecting.lock().await;
        let current = {
            let live = self.live();
            (live.generation != generation)
                .then(|| live.connection.clone().map(|c| (c, live.generation)))
                .flatten()
        };
        // Another call reconnected while this one waited: use its connection.
        let (connected, generation) = match current {
            Some(current) => current,
            None => {
                let connected = self.open().await?;
                let mut live = self.live();
                live.generation += 1;
                live.connection = Some(connected.clone());
                (connected, live.generation)
            }
        };
        let ready = connected
            .ready()
            .await
            .map_err(|err| self.failed(generation, &err))?;
        Ok((ready, generation))
    }

    /// Opens one HTTP/2 connection and spawns the task that drives it, and the task that
    /// PINGs it while calls wait on it.
    async fn open(&self) -> Result<Connected, tonic::Status> {
        let io = dial(
            &self.address,
            &self.origin,
            self.timeouts.tls.as_ref(),
            self.timeouts.connect,
        )
        .await?;
        let (sender, mut connection) = h2::client::Builder::new()
            .initial_window_size(HTTP2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
            .handshake::<Box<dyn BrokerIo>, Bytes>(io)
            .await
            .map_err(|err| {
                tonic::Status::unavailable(format!(
                    "HTTP/2 handshake failed with {}: {err} (is this address the broker's gRPC \
                     port?)",
                    self.address
                ))
            })?;
        let address = Arc::clone(&self.address);
        let ping_pong = connection.ping_pong();
        let driver = tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%address, error = %err, "produce connection closed");
            }
        });
        let outstanding = Arc::new(AtomicUsize::new(0));
        if let Some(ping_pong) = ping_pong {
            tokio::spawn(keep_alive(
                ping_pong,
                Arc::clone(&outstanding),
                driver,
                Arc::clone(&self.address),
            ));
        }
        Ok(Connected {
            sender,
            outstanding,
        })
    }

    /// The live connection's slot; a panic elsewhere cannot leave it half-changed.
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The call's status for an `h2` failure on connection `generation`, with the codes
    /// tonic gives them (gRPC's HTTP/2 error mapping): `UNAVAILABLE` for a broken connection
    /// or a refused stream, which the producer retries (an idempotent producer's sequence
    /// numbers keep a retry from being written twice).
    ///
    /// Except that `ENHANCE_YOUR_CALM` and `INADEQUATE_SECURITY` are `UNAVAILABLE` too, not
    /// tonic's `RESOURCE_EXHAUSTED` and `PERMISSION_DENIED`: the producer takes those two as
    /// refusals, written nowhere, and gives the batch's sequence numbers to the next one, while
    /// a connection ended with either reason (`h2` ends one with `ENHANCE_YOUR_CALM` when a
    /// peer trips its limits) fails every stream on it, including any the broker had already
    /// written. Had it written this one, the next batch of the same length would match it as a
    /// duplicate and be acknowledged at its offsets, never stored.
    ///
    /// The one `ENHANCE_YOUR_CALM` that is a refusal is the broker's own over a connection
    /// limit: a GOAWAY sent at accept, before any stream (its last stream is 0), whose text
    /// starts "connection refused:" and names the limit. That stays `RESOURCE_EXHAUSTED`, not
    /// retried: redialing is refused again until the deadline, while the limit's name tells
    /// the operator what to change.
    ///
    /// Unless the broker reset just this stream, the connection is dropped from the slot, so
    /// the retry dials a new one; calls already on it finish there.
    fn failed(&self, generation: u64, err: &h2::Error) -> tonic::Status {
        let only_this_stream = err.is_reset() && !err.is_go_away();
        if !only_this_stream {
            self.forget(generation);
        }
        let refused_at_accept = err.is_go_away()
            && err.is_remote()
            && err.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)
            && err.to_string().contains(CONNECTION_REFUSED);
        let code = match err.reason() {
            _ if refused_at_accept => tonic::Code::ResourceExhausted,
            None | Some(h2::Reason::REFUSED_STREAM) => tonic::Code::Unavailable,
            Some(h2::Reason::CANCEL) => tonic::Code::Cancelled,
            Some(h2::Reason::ENHANCE_YOUR_CALM | h2::Reason::INADEQUATE_SECURITY) => {
                tonic::Code::Unavailable
            }
            Some(_) => tonic::Code::Internal,
        };
        tonic::Status::new(
            code,
            format!("produce request to {} failed: {err}", self.address),
        )
    }

    /// Drops connection `generation` from the slot (if it is still the live one), so the next
    /// call dials a new connection.
    fn forget(&self, generation: u64) {
        let mut live = self.live();
        if live.generation == generation {
            live.connection = None;
        }
    }
}

/// Watches one connection while calls wait on it: every [`KEEPALIVE_INTERVAL`] with a call
/// outstanding, a PING, and when its answer has not come within [`KEEPALIVE_TIMEOUT`], the
/// connection's task is stopped. Dropping the `h2` connection fails every stream on it with a
/// broken pipe, which the calls report as `UNAVAILABLE` (and drop the connection from the
/// slot), so the producer retries, on the new leader if there is one. Ends with the
/// connection.
async fn keep_alive(
    mut ping_pong: h2::PingPong,
    outstanding: Arc<AtomicUsize>,
    driver: tokio::task::JoinHandle<()>,
    address: Arc<str>,
) {
    let mut ticks = tokio::time::interval(KEEPALIVE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once; a new connection needs no PING.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if driver.is_finished() {
            return;
        }
        if outstanding.load(Ordering::Relaxed) == 0 {
            continue;
        }
        if ping_pong.send_ping(h2::Ping::opaque()).is_err() {
            return;
        }
        let pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx));
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, pong).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::warn!(
                    %address,
                    "broker did not answer a PING within {KEEPALIVE_TIMEOUT:?}; closing the \
                     produce connection so its requests are retried"
                );
                driver.abort();
                return;
            }
        }
    }
}

/// An `h2` response body as an [`http_body::Body`], returning each chunk's flow-control
/// capacity as it is handed on, so the broker's next answers are never held up by it.
struct H2Body {
    stream: RecvStream,
    data_done: bool,
    trailers_done: bool,
}

impl H2Body {
    fn new(stream: RecvStream) -> H2Body {
        H2Body {
            stream,
            data_done: false,
            trailers_done: false,
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if !this.data_done {
            match std::task::ready!(this.stream.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    // Only fails for a stream already closed, which has no window to return.
                    let _ = this.stream.flow_control().release_capacity(chunk.len());
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => this.data_done = true,
            }
        }
        if this.trailers_done {
            return Poll::Ready(None);
        }
        let trailers = std::task::ready!(this.stream.poll_trailers(cx));
        this.trailers_done = true;
        Poll::Ready(match trailers {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.trailers_done || self.stream.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A listener that accepts connections, holds them open and never answers, as a paused
    /// or frozen broker's kernel does: its address, how many it accepted, and its task.
    async fn silent_broker() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let address = listener.local_addr().expect("has an address").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        (address, accepted, silent)
    }

    /// A broker that runs `script` on the first connection it accepts: its address and the
    /// script's task.
    async fn scripted_broker<F, Fut>(script: F) -> (String, tokio::task::JoinHandle<()>)
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let address = listener.local_addr().expect("has an address").to_string();
        let broker = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accepts");
            script(socket).await;
        });
        (address, broker)
    }

    /// One produce call to `address` that must fail within its 10 s deadline: its status.
    async fn failed_produce(address: &str) -> tonic::Status {
        ProduceChannel::lazy(address, Timeouts::default())
            .expect("an address")
            .produce(
                &orders_request(),
                Bytes::from_static(b"batch"),
                Duration::from_secs(10),
                1 << 20,
            )
            .await
            .expect_err("the call fails")
    }

    fn orders_request() -> ProduceRequest {
        ProduceRequest {
            topic: "orders".to_string(),
            ..ProduceRequest::default()
        }
    }

    /// A broker whose host has gone silent (the connection is open, nothing answers) fails a
    /// call at its deadline, and the next call does not wait on the same dead connection but
    /// dials a new one.
    #[tokio::test]
    async fn a_call_past_its_deadline_leaves_its_connection_for_a_new_one() {
        let (address, accepted, silent) = silent_broker().await;
        let channel = ProduceChannel::lazy(&address, Timeouts::default()).expect("an address");
        let request = orders_request();
        for attempt in 1..=2 {
            let status = channel
                .produce(
                    &request,
                    Bytes::from_static(b"batch"),
                    Duration::from_millis(200),
                    1 << 20,
                )
                .await
                .expect_err("nothing answers");
            assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status}");
            assert!(status.message().contains(&address), "{status}");
            assert_eq!(accepted.load(Ordering::SeqCst), attempt);
        }
        silent.abort();
    }

    /// A broker that stops answering while a request waits (a paused process: its kernel
    /// keeps the connection open) fails the request as `UNAVAILABLE` once a PING goes
    /// unanswered, long before the request's own deadline, so the producer retries it.
    #[tokio::test]
    async fn a_request_on_a_connection_that_misses_a_ping_fails_before_its_deadline() {
        let (address, _, silent) = silent_broker().await;
        let channel = ProduceChannel::lazy(&address, Timeouts::default()).expect("an address");
        let request = orders_request();
        let deadline = (KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT) * 4;
        let status = channel
            .produce(&request, Bytes::from_static(b"batch"), deadline, 1 << 20)
            .await
            .expect_err("nothing answers");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
        assert!(status.message().contains(&address), "{status}");
        silent.abort();
    }

    /// A broker whose connection ends with `ENHANCE_YOUR_CALM` after a request reached it
    /// (as `h2` ends one when a peer trips its limits) may have written that request: the
    /// call fails as a broken connection's does, outcome unknown and retried, never as a
    /// refusal whose sequence numbers the next batch would take.
    #[tokio::test]
    async fn a_connection_ended_with_enhance_your_calm_leaves_the_outcome_unknown() {
        let (address, broker) = scripted_broker(|socket| async move {
            let mut connection = h2::server::handshake(socket).await.expect("handshakes");
            let stream = connection.accept().await;
            assert!(matches!(stream, Some(Ok(_))), "the request arrives");
            connection.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            let _ = std::future::poll_fn(|cx| connection.poll_closed(cx)).await;
            drop(stream);
        })
        .await;
        let status = failed_produce(&address).await;
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
        let error = crate::ClientError::from(status);
        assert!(error.outcome_unknown() && error.is_retriable(), "{error:?}");
        broker.await.expect("the broker's script ran");
    }

    /// The broker's refusal over a connection limit (a GOAWAY at accept, last stream 0,
    /// naming the limit) is a refusal: not retried, the limit named, where any other
    /// `ENHANCE_YOUR_CALM` leaves the outcome unknown.
    #[tokio::test]
    async fn a_connection_refused_at_accept_over_a_limit_is_not_retried() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (address, broker) = scripted_broker(|mut socket| async move {
            let debug = b"connection refused: this client IP address already has 1 connections \
                open (--max-connections-per-ip)";
            let mut frames = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
            let length = u32::try_from(8 + debug.len()).expect("small").to_be_bytes();
            frames.extend_from_slice(&[length[1], length[2], length[3], 7, 0, 0, 0, 0, 0]);
            frames.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x0b]);
            frames.extend_from_slice(debug);
            socket.write_all(&frames).await.expect("writes");
            socket.shutdown().await.expect("shuts down");
            let mut sink = Vec::new();
            let _ = socket.read_to_end(&mut sink).await;
        })
        .await;
        let status = failed_produce(&address).await;
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
        assert!(
            status.message().contains("--max-connections-per-ip"),
            "{status}"
        );
        let error = crate::ClientError::from(status);
        assert!(
            !error.is_retriable() && !error.outcome_unknown(),
            "{error:?}"
        );
        broker.await.expect("the broker's script ran");
    }

    /// An answer that is not gRPC is coded as gRPC's HTTP mapping codes it: only "try again"
    /// answers are retriable.
    #[test]
    fn http_answers_without_a_grpc_status_keep_their_meaning() {
        for (http, code) in [
            (401, tonic::Code::Unauthenticated),
            (403, tonic::Code::PermissionDenied),
            (404, tonic::Code::Unimplemented),
            (503, tonic::Code::Unavailable),
            (500, tonic::Code::Unknown),
        ] {
            let status = http::StatusCode::from_u16(http).expect("a status");
            let response = http::Response::builder()
                .status(status)
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("a response");
            let answer = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(produce_call::answer(response, 1 << 20));
            let refusal = answer.expect_err("not gRPC");
            assert_eq!(refusal.code(), code, "HTTP {http}");
            assert!(refusal.message().contains("gRPC port"), "{refusal}");
        }
    }
}
