//! Node-to-node transport over real gRPC on loopback: in-process nodes, each a `Peer` service on
//! its own port and a `PeerLinks` to the others, with fake groups behind `InboundCalls` (echo,
//! slow, never answering, refusing, panicking). Checks answers, coalescing (counted in frames),
//! independence of slow calls, fast failure while a peer is down, reconnection, deadlines, and
//! refusals of bad input without a panic.
//!
//! This file holds the fixtures (the fake groups, the served nodes, the call helpers); the
//! tests are in `answers` (answers and frame pacing), `failures` (peers down, silent, back,
//! moved; deadlines) and `wire` (payload sizes, unknown kinds, bad hellos, raw streams).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::cluster::v1::peer_client::PeerClient;
use cairn_proto::cluster::v1::{Call, CallFrame, Hello, reply};
use cairn_raft::transport::BoxFuture;
use cairn_raft::{GroupId, InboundCalls, NodeId, PeerTransport, RpcKind, TransportError};
use cairn_server::peer::{
    NodeIdentity, PeerCounter, PeerLimits, PeerLinks, PeerMetrics, PeerServiceHandle, peer_server,
};
use futures_util::future::join_all;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// Groups of the fake node, by what they do; the others (ids from [`ECHO_GROUPS`] on, or
/// below 100) echo.
const ECHO_GROUPS: u64 = 1000;
const SLOW_GROUP: u64 = 100;
const SILENT_GROUP: u64 = 200;
const REFUSING_GROUP: u64 = 300;
const PANICKING_GROUP: u64 = 400;

/// A long deadline: a call that returns before it did not wait for it.
const LONG_MS: u64 = 60_000;

/// The fake groups of one node. Echo groups answer `from|group|kind|payload`.
struct FakeGroups {
    /// A permit per slow call that started.
    slow_entered: Arc<Semaphore>,
    /// A permit lets one slow call finish.
    slow_release: Arc<Semaphore>,
}

impl FakeGroups {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            slow_entered: Arc::new(Semaphore::new(0)),
            slow_release: Arc::new(Semaphore::new(0)),
        })
    }
}

impl InboundCalls for FakeGroups {
    fn handle(
        &self,
        from: NodeId,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>> {
        let echo = {
            let mut out = format!("{from}|{}|{kind:?}|", group.0).into_bytes();
            out.extend_from_slice(&payload);
            Bytes::from(out)
        };
        match group.0 {
            SLOW_GROUP => {
                let entered = Arc::clone(&self.slow_entered);
                let release = Arc::clone(&self.slow_release);
                Box::pin(async move {
                    entered.add_permits(1);
                    release.acquire().await.unwrap().forget();
                    Ok(echo)
                })
            }
            SILENT_GROUP => Box::pin(std::future::pending()),
            REFUSING_GROUP => Box::pin(async { Err("no such group on this node".to_string()) }),
            PANICKING_GROUP => Box::pin(async { panic!("a bug in a group") }),
            _ => Box::pin(async move { Ok(echo) }),
        }
    }
}

/// A `Peer` service serving on a loopback port.
struct Served {
    handle: PeerServiceHandle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Served {
    /// Closes the peer streams, then stops the server and waits for it.
    async fn shut_down(self) {
        self.handle.close();
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the server stops once its peer streams are closed")
            .unwrap()
            .unwrap();
    }
}

async fn serve(
    listener: TcpListener,
    identity: Arc<NodeIdentity>,
    groups: Arc<FakeGroups>,
    limits: PeerLimits,
    metrics: Arc<PeerMetrics>,
) -> Served {
    let (service, handle) = peer_server(identity, groups, limits, metrics);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            // As a node's listener must: without pings of its own, a graceful shutdown waits
            // forever on a connection from a peer that went silent (paused, partitioned).
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    Served { handle, stop, task }
}

/// One in-process node: its service, its links, its counters.
struct Node {
    addr: SocketAddr,
    groups: Arc<FakeGroups>,
    links: PeerLinks,
    metrics: Arc<PeerMetrics>,
    served: Served,
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A loopback address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let listener = bind().await;
    listener.local_addr().unwrap()
}

/// Starts nodes `1..=count`, each linked to all (itself included).
async fn cluster(count: u64, limits: PeerLimits) -> Vec<Node> {
    let mut listeners = Vec::new();
    let mut book = BTreeMap::new();
    for id in 1..=count {
        let listener = bind().await;
        book.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push((id, listener));
    }
    let mut nodes = Vec::new();
    for (id, listener) in listeners {
        let addr = listener.local_addr().unwrap();
        let identity = Arc::new(NodeIdentity::new(id, Some("test-cluster".into())));
        let metrics = Arc::new(PeerMetrics::new());
        let groups = FakeGroups::new();
        let served = serve(
            listener,
            Arc::clone(&identity),
            Arc::clone(&groups),
            limits,
            Arc::clone(&metrics),
        )
        .await;
        let links = PeerLinks::new(identity, book.clone(), limits, Arc::clone(&metrics));
        nodes.push(Node {
            addr,
            groups,
            links,
            metrics,
            served,
        });
    }
    nodes
}

fn echo_of(from: NodeId, group: u64, kind: RpcKind, payload: &[u8]) -> Bytes {
    let mut out = format!("{from}|{group}|{kind:?}|").into_bytes();
    out.extend_from_slice(payload);
    Bytes::from(out)
}

async fn call(links: &PeerLinks, target: NodeId, group: u64) -> Result<Bytes, TransportError> {
    links
        .call(
            target,
            GroupId(group),
            RpcKind::AppendEntries,
            Bytes::from_static(b"hi"),
            LONG_MS,
        )
        .await
}

mod answers;
mod failures;
mod wire;
