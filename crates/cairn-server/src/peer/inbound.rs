//! One inbound stream: the calls a peer sends this node, dispatched each to its own task so a
//! slow call (a follower waiting for its fsync) holds back no other, and the replies coalesced
//! into frames as they complete. At most [`PeerLimits::max_in_flight_calls_per_stream`] calls
//! run at once: past that the reader waits, stops reading the stream, and HTTP/2 flow control
//! pushes back on the caller.
//!
//! Nothing a peer sends can panic this node: an unknown kind, or a handler that refuses, fails,
//! or panics, becomes a `refused` reply to that one call; a frame that does not decode ends the
//! stream (tonic's decoder reports it), and the caller opens a new one.
//!
//! A stream ends when its caller ends it (calls still running answer first), when the node
//! closes its `Peer` service, or when a newer stream from the same caller supersedes it.

use std::future::pending;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::cluster::v1::{Call, CallFrame, Reply, ReplyFrame, reply};
use cairn_raft::{GroupId, InboundCalls, NodeId, RpcKind};
use futures_util::FutureExt as _;
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tonic::{Status, Streaming};

use super::callers::CallerSlot;
use super::frame::drain_ready;
use super::limits::{CALL_OVERHEAD_BYTES, PeerLimits};
use super::metrics::{PeerCounter, PeerCounters};
use crate::status::shorten_message;

/// A completed call's reply, holding its place among the stream's calls in flight until the
/// reply writer takes it.
struct Answered {
    reply: Reply,
    _place: OwnedSemaphorePermit,
}

/// How the reading of a stream ended.
enum ReadEnd {
    /// The caller finished its side of the stream.
    Finished,
    /// The stream failed (the caller went away, or sent a frame that does not decode).
    Failed(Status),
    /// The node is shutting down.
    Closing,
    /// A newer stream from the same caller took this one's place.
    Superseded,
}

/// The state of one inbound stream (see the module doc).
pub(crate) struct InboundStream {
    pub(crate) from: NodeId,
    pub(crate) inbound: Arc<dyn InboundCalls>,
    pub(crate) limits: PeerLimits,
    pub(crate) counters: Arc<PeerCounters>,
    pub(crate) closing: watch::Receiver<bool>,
    pub(crate) slot: CallerSlot,
}

impl InboundStream {
    /// Serves the stream whose first frame (hello checked) is `first`, until the caller ends
    /// it or the node closes it; replies go to `frames_out`, which tonic streams back.
    pub(crate) async fn serve(
        mut self,
        first: CallFrame,
        calls_in: Streaming<CallFrame>,
        frames_out: mpsc::Sender<Result<ReplyFrame, Status>>,
    ) {
        let in_flight = self.limits.max_in_flight_calls_per_stream.max(1);
        let places = Arc::new(Semaphore::new(in_flight));
        // As many slots as places: a completed call never waits to queue its reply.
        let (replies, replies_rx) = mpsc::channel(in_flight);
        let writer = tokio::spawn(write_replies(
            replies_rx,
            frames_out.clone(),
            self.limits,
            Arc::clone(&self.counters),
        ));
        self.count_frame(&first);
        let end = self
            .read_calls(first.calls, calls_in, &places, &replies)
            .await;
        drop(replies);
        match end {
            // Calls still running answer; the stream ends once the last reply is sent.
            ReadEnd::Finished => {
                tokio::select! {
                    _ = writer => {}
                    end = self.stopped() => {
                        let _ = frames_out.try_send(Err(end.status()));
                    }
                }
            }
            ReadEnd::Failed(status) => {
                tracing::debug!(peer = self.from, %status, "inbound stream from peer failed");
                writer.abort();
            }
            ReadEnd::Closing | ReadEnd::Superseded => {
                writer.abort();
                let _ = frames_out.try_send(Err(end.status()));
            }
        }
    }

    /// Resolves when the stream must end whatever its caller does.
    async fn stopped(&mut self) -> ReadEnd {
        tokio::select! {
            () = closed(&mut self.closing) => ReadEnd::Closing,
            () = self.slot.superseded() => ReadEnd::Superseded,
        }
    }

    async fn read_calls(
        &mut self,
        first_calls: Vec<Call>,
        mut calls_in: Streaming<CallFrame>,
        places: &Arc<Semaphore>,
        replies: &mpsc::Sender<Answered>,
    ) -> ReadEnd {
        let mut calls = first_calls;
        loop {
            for call in calls.drain(..) {
                let place = match Arc::clone(places).try_acquire_owned() {
                    Ok(place) => place,
                    Err(_) => tokio::select! {
                        place = Arc::clone(places).acquire_owned() => match place {
                            Ok(place) => place,
                            // The semaphore is never closed.
                            Err(_) => return ReadEnd::Closing,
                        },
                        end = self.stopped() => return end,
                    },
                };
                self.dispatch(call, place, replies);
            }
            let next = tokio::select! {
                next = calls_in.message() => next,
                end = self.stopped() => return end,
            };
            match next {
                Ok(Some(frame)) => {
                    self.count_frame(&frame);
                    calls = frame.calls;
                }
                Ok(None) => return ReadEnd::Finished,
                Err(status) => return ReadEnd::Failed(status),
            }
        }
    }

    fn count_frame(&self, frame: &CallFrame) {
        if frame.calls.is_empty() {
            return;
        }
        self.counters.incr(PeerCounter::InboundFrames);
        self.counters
            .add(PeerCounter::InboundCalls, frame.calls.len() as u64);
        self.counters
            .add(PeerCounter::InboundBytes, frame.encoded_len() as u64);
    }

    /// Starts one call; its reply goes to `replies` when it completes.
    fn dispatch(&self, call: Call, place: OwnedSemaphorePermit, replies: &mpsc::Sender<Answered>) {
        let Call {
            call_id,
            group,
            kind,
            payload,
        } = call;
        let Some(kind) = RpcKind::from_code(kind) else {
            self.counters.incr(PeerCounter::InboundRefused);
            let reason = format!("unknown call kind {kind}");
            queue_reply(replies, call_id, reply::Outcome::Refused(reason), place);
            return;
        };
        let (inbound, replies, counters) = (
            Arc::clone(&self.inbound),
            replies.clone(),
            Arc::clone(&self.counters),
        );
        let (from, max_payload) = (self.from, self.limits.max_call_payload_bytes);
        tokio::spawn(async move {
            let handled = AssertUnwindSafe(inbound.handle(from, GroupId(group), kind, payload))
                .catch_unwind()
                .await;
            let outcome = outcome(handled, max_payload);
            if matches!(outcome, reply::Outcome::Refused(_)) {
                counters.incr(PeerCounter::InboundRefused);
            }
            queue_reply(&replies, call_id, outcome, place);
        });
    }
}

/// What a handler's result becomes on the wire.
fn outcome(
    handled: std::thread::Result<Result<Bytes, String>>,
    max_payload: usize,
) -> reply::Outcome {
    match handled {
        Ok(Ok(payload)) if payload.len() <= max_payload => reply::Outcome::Payload(payload),
        Ok(Ok(payload)) => reply::Outcome::Refused(format!(
            "the reply of {} bytes is over the node-to-node limit of {max_payload} bytes",
            payload.len()
        )),
        // A long reason would only bloat the frame; the start of it says what went wrong.
        Ok(Err(reason)) => reply::Outcome::Refused(shorten_message(&reason)),
        Err(_) => {
            tracing::error!("a peer call's handler panicked; the call is refused");
            reply::Outcome::Refused("the call's handler failed on this node".to_string())
        }
    }
}

fn queue_reply(
    replies: &mpsc::Sender<Answered>,
    call_id: u64,
    outcome: reply::Outcome,
    place: OwnedSemaphorePermit,
) {
    let answered = Answered {
        reply: Reply {
            call_id,
            outcome: Some(outcome),
        },
        _place: place,
    };
    // Never full (one slot per place); closed only once the stream is gone, when the reply
    // has nowhere to go anyway.
    let _ = replies.try_send(answered);
}

/// Sends replies in frames, each holding whatever replies are ready, until every call is
/// answered (all senders gone) or the caller stops listening.
async fn write_replies(
    mut replies: mpsc::Receiver<Answered>,
    frames_out: mpsc::Sender<Result<ReplyFrame, Status>>,
    limits: PeerLimits,
    counters: Arc<PeerCounters>,
) {
    while let Some(first) = replies.recv().await {
        let answered = drain_ready(
            first,
            &mut replies,
            limits.max_calls_per_frame,
            limits.frame_payload_bytes_target,
            |answered| reply_bytes(&answered.reply),
        );
        // Places are freed as their replies join a frame: the frame queue's depth bounds what
        // waits beyond this point.
        let frame = ReplyFrame {
            replies: answered
                .into_iter()
                .map(|answered| answered.reply)
                .collect(),
        };
        counters.incr(PeerCounter::InboundReplyFrames);
        counters.add(PeerCounter::InboundReplyBytes, frame.encoded_len() as u64);
        if frames_out.send(Ok(frame)).await.is_err() {
            return;
        }
    }
}

fn reply_bytes(reply: &Reply) -> usize {
    let body = match &reply.outcome {
        Some(reply::Outcome::Payload(payload)) => payload.len(),
        Some(reply::Outcome::Refused(reason)) => reason.len(),
        None => 0,
    };
    body + CALL_OVERHEAD_BYTES
}

impl ReadEnd {
    /// The status a stream stopped by this node ends with.
    fn status(&self) -> Status {
        match self {
            ReadEnd::Superseded => {
                Status::aborted("a newer stream from the same node replaced this one")
            }
            _ => Status::unavailable("this node is shutting down"),
        }
    }
}

/// Resolves once the node closes its `Peer` service; never if the handle is dropped unclosed.
async fn closed(closing: &mut watch::Receiver<bool>) {
    loop {
        if *closing.borrow_and_update() {
            return;
        }
        if closing.changed().await.is_err() {
            pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_results_map_to_outcomes() {
        let ok = outcome(Ok(Ok(Bytes::from_static(b"a"))), 10);
        assert_eq!(ok, reply::Outcome::Payload(Bytes::from_static(b"a")));
        let big = outcome(Ok(Ok(Bytes::from(vec![0u8; 11]))), 10);
        assert!(matches!(big, reply::Outcome::Refused(reason) if reason.contains("11 bytes")));
        let refused = outcome(Ok(Err("no such group".into())), 10);
        assert_eq!(refused, reply::Outcome::Refused("no such group".into()));
        let panicked = outcome(Err(Box::new("boom")), 10);
        assert!(matches!(panicked, reply::Outcome::Refused(_)));
    }
}
