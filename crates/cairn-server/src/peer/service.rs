//! [`PeerService`]: the `cairn.cluster.v1.Peer` service, the callee side of node-to-node
//! traffic. It checks each stream's hello, then hands the stream to `inbound`, which
//! dispatches its calls to the node's [`InboundCalls`]. It knows no Raft: payloads pass through.
//!
//! A stream lives as long as its caller keeps it, which would hold a graceful server shutdown
//! open forever; [`PeerServiceHandle::close`] ends every stream (and refuses new ones) first.
//! A caller has one current stream (`callers`): a new one from the same node ends the old one.

use std::sync::Arc;

use cairn_proto::cluster::v1::peer_server::{Peer, PeerServer};
use cairn_proto::cluster::v1::{CallFrame, ReplyFrame};
use cairn_raft::InboundCalls;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::callers::Callers;
use super::identity::NodeIdentity;
use super::inbound::InboundStream;
use super::limits::PeerLimits;
use super::metrics::PeerMetrics;

/// Frames of replies queued for tonic per stream; replies pile up behind them and leave
/// together in the next frame.
const REPLY_FRAME_QUEUE_DEPTH: usize = 2;

/// The `Peer` service of one node (see the module doc).
#[derive(Clone)]
pub struct PeerService {
    identity: Arc<NodeIdentity>,
    inbound: Arc<dyn InboundCalls>,
    limits: PeerLimits,
    metrics: Arc<PeerMetrics>,
    closing: watch::Receiver<bool>,
    callers: Arc<Callers>,
}

impl std::fmt::Debug for PeerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService")
            .field("identity", &self.identity)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Ends the streams of a [`PeerService`]; dropping it does not.
#[derive(Debug)]
pub struct PeerServiceHandle {
    closing: watch::Sender<bool>,
}

impl PeerServiceHandle {
    /// Ends every inbound stream with UNAVAILABLE (replies not yet sent are dropped; callers
    /// fail those calls as unreachable) and refuses new streams. Call it when the node starts
    /// shutting down, before waiting for the gRPC server to drain.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// The `Peer` service of node `identity`, handing calls to `inbound`, ready to be added to the
/// node's gRPC router beside the client services (with its message size limits set from
/// `limits`), and the handle that closes its streams at shutdown.
pub fn peer_server(
    identity: Arc<NodeIdentity>,
    inbound: Arc<dyn InboundCalls>,
    limits: PeerLimits,
    metrics: Arc<PeerMetrics>,
) -> (PeerServer<PeerService>, PeerServiceHandle) {
    let (closing_tx, closing) = watch::channel(false);
    let service = PeerService {
        identity,
        inbound,
        limits,
        metrics,
        closing,
        callers: Arc::new(Callers::default()),
    };
    let server = PeerServer::new(service)
        .max_decoding_message_size(limits.max_message_bytes())
        .max_encoding_message_size(limits.max_message_bytes());
    (
        server,
        PeerServiceHandle {
            closing: closing_tx,
        },
    )
}

#[tonic::async_trait]
impl Peer for PeerService {
    type ExchangeStream = ReceiverStream<Result<ReplyFrame, Status>>;

    async fn exchange(
        &self,
        request: Request<Streaming<CallFrame>>,
    ) -> Result<Response<Self::ExchangeStream>, Status> {
        if *self.closing.borrow() {
            return Err(Status::unavailable("this node is shutting down"));
        }
        let mut calls_in = request.into_inner();
        let first = match tokio::time::timeout(self.limits.hello_timeout, calls_in.message()).await
        {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => {
                return Err(Status::invalid_argument(
                    "the Peer stream ended before its hello",
                ));
            }
            Ok(Err(status)) => return Err(status),
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "no hello within {} ms",
                    self.limits.hello_timeout.as_millis()
                )));
            }
        };
        let Some(hello) = first.hello.as_ref() else {
            return Err(Status::invalid_argument(
                "the first frame of a Peer stream must carry a hello",
            ));
        };
        let from = self
            .identity
            .check_hello(hello)
            .map_err(|refusal| Status::failed_precondition(refusal.to_string()))?;
        tracing::debug!(peer = from, "inbound stream from peer open");
        let (frames_out, frames_rx) = mpsc::channel(REPLY_FRAME_QUEUE_DEPTH);
        let stream = InboundStream {
            from,
            inbound: Arc::clone(&self.inbound),
            limits: self.limits,
            counters: self.metrics.peer(from),
            closing: self.closing.clone(),
            slot: self.callers.enter(from),
        };
        tokio::spawn(stream.serve(first, calls_in, frames_out));
        Ok(Response::new(ReceiverStream::new(frames_rx)))
    }
}
