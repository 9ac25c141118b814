//! One open stream to a peer, from this node's side: opening it (connect, hello, the peer's
//! acceptance), then two loops that run together until either ends: the writer drains the
//! link's queue into frames, the reader resolves pending calls from frames of replies. They
//! are separate so that replies are always read while a frame waits for flow control; a single
//! loop could stall on the send while the peer stalls on its replies, each waiting for the other.

use cairn_proto::cluster::v1::peer_client::PeerClient;
use cairn_proto::cluster::v1::{CallFrame, ReplyFrame, reply};
use cairn_raft::TransportError;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Endpoint;

use super::frame::drain_ready;
use super::link::{LinkShared, Outgoing};
use super::metrics::PeerCounter;
use super::pacing::Pacer;
use crate::{HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_STREAM_WINDOW_BYTES};

/// Frames handed to tonic ahead of the one being sent. Small on purpose: while a frame waits,
/// calls pile up in the link's queue and leave together in the next one.
const FRAME_QUEUE_DEPTH: usize = 2;

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The link was dropped (its queue closed): nothing more to send.
    LinkClosed,
    /// The stream broke or the peer ended it.
    Broken(String),
}

/// An open stream to a peer.
pub(crate) struct Session {
    frames: mpsc::Sender<CallFrame>,
    replies: Streaming<ReplyFrame>,
}

/// Opens a stream to the link's peer and has its hello accepted, within the link's open timeout.
///
/// # Errors
/// What failed, for the `Unreachable` errors of the calls that wait on the link.
pub(crate) async fn open(shared: &LinkShared) -> Result<Session, String> {
    let limits = shared.limits;
    match tokio::time::timeout(limits.open_timeout, open_unbounded(shared)).await {
        Ok(opened) => opened,
        Err(_) => Err(format!(
            "no stream to {} within {} ms",
            shared.addr,
            limits.open_timeout.as_millis()
        )),
    }
}

async fn open_unbounded(shared: &LinkShared) -> Result<Session, String> {
    let limits = shared.limits;
    let uri = if shared.addr.contains("://") {
        shared.addr.clone()
    } else {
        format!("http://{}", shared.addr)
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|err| format!("bad peer address {:?}: {}", shared.addr, chain(&err)))?
        .connect_timeout(limits.open_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW_BYTES));
    let connected = match &shared.tls {
        Some(tls) => {
            let connector = crate::tls::PeerConnector::new(tls.clone(), &shared.addr)?;
            endpoint.connect_with_connector(connector).await
        }
        None => endpoint.connect().await,
    };
    let channel =
        connected.map_err(|err| format!("connect to {}: {}", shared.addr, chain(&err)))?;
    let mut client = PeerClient::new(channel)
        .max_decoding_message_size(limits.max_message_bytes())
        .max_encoding_message_size(limits.max_message_bytes());
    let (frames, frames_rx) = mpsc::channel(FRAME_QUEUE_DEPTH);
    let hello = CallFrame {
        hello: Some(shared.identity.hello(shared.node)),
        calls: Vec::new(),
    };
    frames
        .try_send(hello)
        .map_err(|_| "the new stream's queue refused its hello".to_string())?;
    let response = client
        .exchange(ReceiverStream::new(frames_rx))
        .await
        .map_err(|status| {
            format!(
                "{} refused the stream: {:?}: {}",
                shared.addr,
                status.code(),
                status.message()
            )
        })?;
    Ok(Session {
        frames,
        replies: response.into_inner(),
    })
}

impl Session {
    /// Sends `first` and every later call of `queue`, and resolves calls from replies, until
    /// the stream breaks or the link is dropped. Calls still pending then are the caller's to
    /// fail.
    pub(crate) async fn run(
        self,
        first: Outgoing,
        queue: &mut mpsc::Receiver<Outgoing>,
        shared: &LinkShared,
    ) -> SessionEnd {
        let Session { frames, replies } = self;
        tokio::select! {
            end = write_calls(first, queue, frames, shared) => end,
            end = read_replies(replies, shared) => end,
        }
    }
}

async fn write_calls(
    first: Outgoing,
    queue: &mut mpsc::Receiver<Outgoing>,
    frames: mpsc::Sender<CallFrame>,
    shared: &LinkShared,
) -> SessionEnd {
    let limits = shared.limits;
    let mut next = Some(first);
    let mut pacer = Pacer::default();
    loop {
        let head = match next.take() {
            Some(outgoing) => outgoing,
            None => match queue.recv().await {
                Some(outgoing) => outgoing,
                None => return SessionEnd::LinkClosed,
            },
        };
        pacer.wait_turn(&head, queue, &limits).await;
        let drained = drain_ready(
            head,
            queue,
            limits.max_calls_per_frame,
            limits.frame_payload_bytes_target,
            |outgoing| outgoing.call.payload.len(),
        );
        let mut calls = Vec::with_capacity(drained.len());
        for Outgoing { call, reply } in drained {
            // Recorded before the frame leaves, so the reply always finds it; calls whose
            // caller gave up while queued are not sent at all.
            if shared.pending.insert_if_waiting(call.call_id, reply) {
                calls.push(call);
            }
        }
        if calls.is_empty() {
            continue;
        }
        pacer.sending(&calls);
        let frame = CallFrame { hello: None, calls };
        let counters = &shared.counters;
        counters.incr(PeerCounter::FramesSent);
        counters.add(PeerCounter::CallsSent, frame.calls.len() as u64);
        counters.add(PeerCounter::BytesSent, frame.encoded_len() as u64);
        if frames.send(frame).await.is_err() {
            return SessionEnd::Broken("the stream to the peer closed".to_string());
        }
        pacer.sent();
    }
}

async fn read_replies(mut replies: Streaming<ReplyFrame>, shared: &LinkShared) -> SessionEnd {
    loop {
        let frame = match replies.message().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return SessionEnd::Broken("the peer ended the stream".to_string()),
            Err(status) => {
                return SessionEnd::Broken(format!(
                    "stream failed: {:?}: {}",
                    status.code(),
                    status.message()
                ));
            }
        };
        let counters = &shared.counters;
        counters.incr(PeerCounter::ReplyFramesReceived);
        counters.add(PeerCounter::RepliesReceived, frame.replies.len() as u64);
        counters.add(PeerCounter::ReplyBytesReceived, frame.encoded_len() as u64);
        for reply in frame.replies {
            // A call whose caller gave up has no entry any more; its reply is dropped.
            let Some(caller) = shared.pending.take(reply.call_id) else {
                continue;
            };
            let outcome = match reply.outcome {
                Some(reply::Outcome::Payload(payload)) => Ok(payload),
                Some(reply::Outcome::Refused(reason)) => Err(TransportError::Refused {
                    node: shared.node,
                    reason,
                }),
                None => Err(TransportError::Refused {
                    node: shared.node,
                    reason: "the peer's reply carried no outcome".to_string(),
                }),
            };
            let _ = caller.send(outcome);
        }
    }
}

/// An error and its sources on one line: tonic's transport errors say only "transport error"
/// at the top.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut previous = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper wraps errors in ones that repeat their message; once is enough.
        if cause_text != previous {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        previous = cause_text;
        source = cause.source();
    }
    text
}
