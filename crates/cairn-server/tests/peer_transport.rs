//! Node-to-node transport over real gRPC on loopback: in-process nodes, each a `Peer` service on
//! its own port and a `PeerLinks` to the others, with fake groups behind `InboundCalls` (echo,
//! slow, never answering, refusing, panicking). Checks answers, coalescing (counted in frames),
//! independence of slow calls, fast failure while a peer is down, reconnection, deadlines, and
//! refusals of bad input without a panic.

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

#[tokio::test]
async fn calls_are_answered_and_name_their_caller() {
    let nodes = cluster(3, PeerLimits::default()).await;
    for (from_idx, from) in nodes.iter().enumerate() {
        let from_id = from_idx as u64 + 1;
        for target in 1..=3 {
            for kind in [
                RpcKind::AppendEntries,
                RpcKind::Vote,
                RpcKind::InstallSnapshot,
            ] {
                let answer = from
                    .links
                    .call(target, GroupId(7), kind, Bytes::from_static(b"x"), LONG_MS)
                    .await
                    .unwrap();
                assert_eq!(answer, echo_of(from_id, 7, kind, b"x"));
            }
        }
    }
    let mut exposition = String::new();
    nodes[0].metrics.render(&mut exposition);
    assert!(
        exposition.contains("cairn_peer_calls_sent_total{peer=\"2\"} 3\n"),
        "{exposition}"
    );
    assert!(nodes[0].metrics.link_up(2));
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn concurrent_calls_of_many_groups_share_frames() {
    let nodes = cluster(2, PeerLimits::default()).await;
    let links = &nodes[0].links;
    // The stream is open before the burst, so what is counted is coalescing, not queueing
    // behind a connect.
    call(links, 2, 0).await.unwrap();
    let frames_before = nodes[0].metrics.count(2, PeerCounter::FramesSent);
    let reply_frames_before = nodes[1].metrics.count(1, PeerCounter::InboundReplyFrames);

    let calls_count = 1000u64;
    let answers = join_all((ECHO_GROUPS..ECHO_GROUPS + calls_count).map(|group| {
        links.call(
            2,
            GroupId(group),
            RpcKind::AppendEntries,
            Bytes::from(group.to_be_bytes().to_vec()),
            LONG_MS,
        )
    }))
    .await;
    for (idx, answer) in answers.into_iter().enumerate() {
        let group = ECHO_GROUPS + idx as u64;
        assert_eq!(
            answer.unwrap(),
            echo_of(1, group, RpcKind::AppendEntries, &group.to_be_bytes())
        );
    }
    let frames = nodes[0].metrics.count(2, PeerCounter::FramesSent) - frames_before;
    let reply_frames =
        nodes[1].metrics.count(1, PeerCounter::InboundReplyFrames) - reply_frames_before;
    assert!(
        frames * 10 <= calls_count,
        "{calls_count} calls went out in {frames} frames"
    );
    assert!(
        reply_frames * 10 <= calls_count,
        "{calls_count} replies came back in {reply_frames} frames"
    );
    assert_eq!(
        nodes[1].metrics.count(1, PeerCounter::InboundCalls),
        calls_count + 1
    );
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn calls_soon_after_a_frame_wait_for_the_interval_and_share_the_next() {
    let limits = PeerLimits {
        frame_interval_min: Duration::from_secs(1),
        ..PeerLimits::default()
    };
    let nodes = cluster(2, limits).await;
    call(&nodes[0].links, 2, 1).await.unwrap();
    let frames_before = nodes[0].metrics.count(2, PeerCounter::FramesSent);
    // Pings (like heartbeats) are the calls that are paced.
    let ping = |group: u64, payload: &'static [u8]| {
        nodes[0].links.call(
            2,
            GroupId(group),
            RpcKind::Ping,
            Bytes::from_static(payload),
            LONG_MS,
        )
    };
    let first = tokio::spawn(ping(1, b"a"));
    // Unpaced, the first call would be sent and answered by now; paced, it waits for the
    // interval since the warm-up call's frame.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = ping(2, b"b").await.unwrap();
    assert_eq!(second, echo_of(1, 2, RpcKind::Ping, b"b"));
    assert_eq!(
        first.await.unwrap().unwrap(),
        echo_of(1, 1, RpcKind::Ping, b"a")
    );
    assert_eq!(
        nodes[0].metrics.count(2, PeerCounter::FramesSent) - frames_before,
        1
    );
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn calls_somebody_waits_on_are_not_paced() {
    let limits = PeerLimits {
        frame_interval_min: Duration::from_secs(3600),
        ..PeerLimits::default()
    };
    let nodes = cluster(2, limits).await;
    call(&nodes[0].links, 2, 1).await.unwrap();
    // Within the (hour-long) interval since that frame: a vote, and an AppendEntries that is
    // not a heartbeat (its payload does not decode as one, so it is taken for entries), each
    // leave in a frame of their own at once.
    for kind in [RpcKind::Vote, RpcKind::AppendEntries, RpcKind::Propose] {
        let answer = tokio::time::timeout(
            Duration::from_secs(60),
            nodes[0]
                .links
                .call(2, GroupId(7), kind, Bytes::from_static(b"now"), LONG_MS),
        )
        .await
        .expect("an unpaced call is answered without waiting out the interval")
        .unwrap();
        assert_eq!(answer, echo_of(1, 7, kind, b"now"));
    }
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn a_slow_call_does_not_hold_back_a_fast_one() {
    let nodes = cluster(2, PeerLimits::default()).await;
    let slow_group = Arc::clone(&nodes[1].groups);
    let slow = nodes[0].links.call(
        2,
        GroupId(SLOW_GROUP),
        RpcKind::AppendEntries,
        Bytes::from_static(b"slow"),
        LONG_MS,
    );
    let slow = tokio::spawn(slow);
    slow_group.slow_entered.acquire().await.unwrap().forget();
    // The slow call is running on node 2 and cannot finish until released: the fast call's
    // answer can only come past it.
    let fast = call(&nodes[0].links, 2, 1).await.unwrap();
    assert_eq!(fast, echo_of(1, 1, RpcKind::AppendEntries, b"hi"));
    assert!(!slow.is_finished());
    slow_group.slow_release.add_permits(1);
    assert_eq!(
        slow.await.unwrap().unwrap(),
        echo_of(1, SLOW_GROUP, RpcKind::AppendEntries, b"slow")
    );
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn a_stream_runs_at_most_its_limit_of_calls_at_once() {
    let limits = PeerLimits {
        max_in_flight_calls_per_stream: 2,
        ..PeerLimits::default()
    };
    let nodes = cluster(2, limits).await;
    let groups = Arc::clone(&nodes[1].groups);
    let slow_call = || {
        tokio::spawn(nodes[0].links.call(
            2,
            GroupId(SLOW_GROUP),
            RpcKind::AppendEntries,
            Bytes::from_static(b"slow"),
            LONG_MS,
        ))
    };
    let slow = [slow_call(), slow_call()];
    groups.slow_entered.acquire_many(2).await.unwrap().forget();
    // Both places are taken: node 2 stops reading the stream, so this call waits behind them.
    let fast = tokio::spawn(nodes[0].links.call(
        2,
        GroupId(1),
        RpcKind::AppendEntries,
        Bytes::from_static(b"hi"),
        LONG_MS,
    ));
    // However long this waits, a correct node cannot have answered; a short wait is enough
    // to catch one that ignores the limit.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!fast.is_finished(), "a third call ran beside two slow ones");
    groups.slow_release.add_permits(1);
    assert_eq!(
        fast.await.unwrap().unwrap(),
        echo_of(1, 1, RpcKind::AppendEntries, b"hi")
    );
    groups.slow_release.add_permits(1);
    for call in slow {
        call.await.unwrap().unwrap();
    }
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn calls_to_a_peer_that_is_down_fail_as_unreachable_without_waiting() {
    let identity = Arc::new(NodeIdentity::new(1, None));
    let book = BTreeMap::from([(2, dead_addr().await.to_string())]);
    let metrics = Arc::new(PeerMetrics::new());
    let links = PeerLinks::new(identity, book, PeerLimits::default(), Arc::clone(&metrics));
    // The deadlines are a minute: an Unreachable answer did not wait for them.
    for _ in 0..3 {
        match call(&links, 2, 1).await {
            Err(TransportError::Unreachable { node: 2, reason }) => {
                assert!(!reason.is_empty());
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
    assert_eq!(metrics.count(2, PeerCounter::CallsUnreachable), 3);
    assert_eq!(metrics.count(2, PeerCounter::StreamsOpened), 0);
}

#[tokio::test]
async fn a_peer_that_accepts_but_never_answers_is_unreachable_after_the_open_timeout() {
    // A paused process: its kernel still accepts connections, nothing speaks on them.
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let limits = PeerLimits {
        open_timeout: Duration::from_millis(200),
        ..PeerLimits::default()
    };
    let links = PeerLinks::new(
        Arc::new(NodeIdentity::new(1, None)),
        BTreeMap::from([(2, addr.to_string())]),
        limits,
        Arc::new(PeerMetrics::new()),
    );
    match call(&links, 2, 1).await {
        Err(TransportError::Unreachable { node: 2, reason }) => {
            assert!(reason.contains("within 200 ms"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    held.abort();
}

/// A TCP proxy in front of `upstream` that can stop forwarding, as a paused (SIGSTOP) node or a
/// network partition would: the connection stays open and carries nothing.
async fn pausable_proxy(upstream: SocketAddr) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let (paused, paused_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let (client_rx, client_tx) = client.into_split();
            let (server_rx, server_tx) = server.into_split();
            tokio::spawn(forward(client_rx, server_tx, paused_rx.clone()));
            tokio::spawn(forward(server_rx, client_tx, paused_rx.clone()));
        }
    });
    (addr, paused)
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let read = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        if to.write_all(&buf[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn calls_waiting_on_a_peer_that_stops_answering_fail_as_unreachable() {
    let limits = PeerLimits {
        keepalive_interval: Duration::from_millis(100),
        keepalive_timeout: Duration::from_millis(200),
        ..PeerLimits::default()
    };
    let nodes = cluster(2, limits).await;
    let (proxy, paused) = pausable_proxy(nodes[1].addr).await;
    let links = &nodes[0].links;
    links.set_peer(2, proxy.to_string());
    call(links, 2, 1).await.unwrap();
    paused.send_replace(true);
    // The deadline is a minute; the link's keepalive notices the silence long before.
    match call(links, 2, 1).await {
        Err(TransportError::Unreachable { node: 2, .. }) => {}
        other => panic!("expected Unreachable from a silent peer, got {other:?}"),
    }
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn a_link_reopens_once_the_peer_is_back() {
    let limits = PeerLimits {
        reconnect_backoff_min: Duration::from_millis(10),
        reconnect_backoff_max: Duration::from_millis(50),
        ..PeerLimits::default()
    };
    let mut nodes = cluster(2, limits).await;
    call(&nodes[0].links, 2, 1).await.unwrap();

    let node2 = nodes.pop().unwrap();
    let addr2 = node2.addr;
    node2.served.shut_down().await;
    match call(&nodes[0].links, 2, 1).await {
        Err(TransportError::Unreachable { node: 2, .. }) => {}
        other => panic!("expected Unreachable while node 2 is down, got {other:?}"),
    }

    let listener = TcpListener::bind(addr2).await.unwrap();
    let served = serve(
        listener,
        Arc::new(NodeIdentity::new(2, Some("test-cluster".into()))),
        FakeGroups::new(),
        limits,
        Arc::new(PeerMetrics::new()),
    )
    .await;
    // Calls fail fast during the reconnection pause; one gets through once it is over.
    let mut answered = None;
    for _ in 0..1000 {
        match call(&nodes[0].links, 2, 1).await {
            Ok(answer) => {
                answered = Some(answer);
                break;
            }
            Err(TransportError::Unreachable { .. }) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        answered.expect("node 2 answers again after it came back"),
        echo_of(1, 1, RpcKind::AppendEntries, b"hi")
    );
    assert_eq!(nodes[0].metrics.count(2, PeerCounter::StreamsOpened), 2);
    served.shut_down().await;
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn a_call_without_an_answer_times_out_and_the_link_carries_on() {
    let nodes = cluster(2, PeerLimits::default()).await;
    let silent = nodes[0]
        .links
        .call(
            2,
            GroupId(SILENT_GROUP),
            RpcKind::Vote,
            Bytes::from_static(b"?"),
            50,
        )
        .await;
    match silent {
        Err(TransportError::Timeout {
            node: 2,
            millis: 50,
        }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(
        call(&nodes[0].links, 2, 1).await.unwrap(),
        echo_of(1, 1, RpcKind::AppendEntries, b"hi")
    );
    assert_eq!(nodes[0].metrics.count(2, PeerCounter::CallsTimedOut), 1);
    assert_eq!(nodes[0].metrics.count(2, PeerCounter::StreamsOpened), 1);
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn a_node_not_in_the_address_book_is_an_unknown_peer() {
    let nodes = cluster(1, PeerLimits::default()).await;
    match call(&nodes[0].links, 99, 1).await {
        Err(TransportError::UnknownPeer(99)) => {}
        other => panic!("expected UnknownPeer, got {other:?}"),
    }
    nodes[0].links.remove_peer(1);
    match call(&nodes[0].links, 1, 1).await {
        Err(TransportError::UnknownPeer(1)) => {}
        other => panic!("expected UnknownPeer after removal, got {other:?}"),
    }
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn a_moved_peer_is_reached_at_its_new_address() {
    let mut nodes = cluster(2, PeerLimits::default()).await;
    let node2 = nodes.pop().unwrap();
    let links = &nodes[0].links;
    links.set_peer(2, dead_addr().await.to_string());
    assert!(matches!(
        call(links, 2, 1).await,
        Err(TransportError::Unreachable { node: 2, .. })
    ));
    links.set_peers(BTreeMap::from([
        (1, nodes[0].addr.to_string()),
        (2, node2.addr.to_string()),
    ]));
    assert_eq!(
        call(links, 2, 1).await.unwrap(),
        echo_of(1, 1, RpcKind::AppendEntries, b"hi")
    );
    assert_eq!(links.peers().get(&2), Some(&node2.addr.to_string()));
    node2.served.shut_down().await;
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn refusals_and_handler_failures_come_back_as_refused() {
    let nodes = cluster(2, PeerLimits::default()).await;
    match call(&nodes[0].links, 2, REFUSING_GROUP).await {
        Err(TransportError::Refused { node: 2, reason }) => {
            assert_eq!(reason, "no such group on this node");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    match call(&nodes[0].links, 2, PANICKING_GROUP).await {
        Err(TransportError::Refused { node: 2, .. }) => {}
        other => panic!("expected Refused for a panicking handler, got {other:?}"),
    }
    // The stream survived both.
    assert_eq!(
        call(&nodes[0].links, 2, 1).await.unwrap(),
        echo_of(1, 1, RpcKind::AppendEntries, b"hi")
    );
    assert_eq!(nodes[0].metrics.count(2, PeerCounter::StreamsOpened), 1);
    assert_eq!(nodes[1].metrics.count(1, PeerCounter::InboundRefused), 2);
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn payloads_of_megabytes_travel_and_oversized_ones_are_refused_before_sending() {
    let limits = PeerLimits {
        max_call_payload_bytes: 8 << 20,
        ..PeerLimits::default()
    };
    let nodes = cluster(2, limits).await;
    // Past tonic's default 4 MiB message limit, so the configured limits must be in force.
    let big = Bytes::from(vec![7u8; 6 << 20]);
    let answer = nodes[0]
        .links
        .call(
            2,
            GroupId(5),
            RpcKind::InstallSnapshot,
            big.clone(),
            LONG_MS,
        )
        .await
        .unwrap();
    assert_eq!(answer, echo_of(1, 5, RpcKind::InstallSnapshot, &big));

    let too_big = Bytes::from(vec![0u8; (8 << 20) + 1]);
    match nodes[0]
        .links
        .call(2, GroupId(5), RpcKind::AppendEntries, too_big, LONG_MS)
        .await
    {
        Err(TransportError::Refused { node: 2, reason }) => {
            assert!(reason.contains("limit"), "{reason}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(nodes[1].metrics.count(1, PeerCounter::InboundCalls), 1);
    for node in nodes {
        node.served.shut_down().await;
    }
}

/// Opens a raw stream to `addr` and sends `first`.
async fn raw_stream(
    addr: SocketAddr,
    first: CallFrame,
) -> (
    mpsc::Sender<CallFrame>,
    Result<tonic::Streaming<cairn_proto::cluster::v1::ReplyFrame>, tonic::Status>,
) {
    let mut client = PeerClient::connect(format!("http://{addr}")).await.unwrap();
    let (frames, frames_rx) = mpsc::channel(4);
    frames.send(first).await.unwrap();
    let answer = client
        .exchange(ReceiverStream::new(frames_rx))
        .await
        .map(tonic::Response::into_inner);
    (frames, answer)
}

fn hello(node_id: NodeId, target: NodeId, cluster: &str) -> Option<Hello> {
    Some(Hello {
        node_id,
        target_node_id: Some(target),
        cluster_id: Some(cluster.to_string()),
    })
}

#[tokio::test]
async fn a_call_of_an_unknown_kind_is_refused_and_the_stream_carries_on() {
    let nodes = cluster(1, PeerLimits::default()).await;
    let call_of = |call_id, kind| Call {
        call_id,
        group: 3,
        kind,
        payload: Bytes::from_static(b"p"),
    };
    let (frames, replies) = raw_stream(
        nodes[0].addr,
        CallFrame {
            hello: hello(5, 1, "test-cluster"),
            calls: vec![call_of(1, 99), call_of(2, 0)],
        },
    )
    .await;
    let mut replies = replies.unwrap();
    frames
        .send(CallFrame {
            hello: None,
            calls: vec![call_of(3, RpcKind::Vote.code())],
        })
        .await
        .unwrap();
    let mut outcomes = BTreeMap::new();
    while outcomes.len() < 3 {
        let frame = replies.message().await.unwrap().unwrap();
        for reply in frame.replies {
            outcomes.insert(reply.call_id, reply.outcome.unwrap());
        }
    }
    for call_id in [1, 2] {
        match &outcomes[&call_id] {
            reply::Outcome::Refused(reason) => {
                assert!(reason.contains("unknown call kind"), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(
        outcomes[&3],
        reply::Outcome::Payload(echo_of(5, 3, RpcKind::Vote, b"p"))
    );
    drop(frames);
    // The caller closed its side: the stream ends cleanly once everything is answered.
    assert!(replies.message().await.unwrap().is_none());
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn streams_without_a_hello_or_for_another_node_or_cluster_are_refused() {
    let nodes = cluster(2, PeerLimits::default()).await;
    let addr = nodes[0].addr;
    let no_hello = raw_stream(
        addr,
        CallFrame {
            hello: None,
            calls: Vec::new(),
        },
    )
    .await
    .1
    .unwrap_err();
    assert_eq!(no_hello.code(), tonic::Code::InvalidArgument);

    let wrong_node = raw_stream(
        addr,
        CallFrame {
            hello: hello(5, 7, "test-cluster"),
            calls: Vec::new(),
        },
    )
    .await
    .1
    .unwrap_err();
    assert_eq!(wrong_node.code(), tonic::Code::FailedPrecondition);
    assert!(
        wrong_node.message().contains("this is node 1"),
        "{wrong_node:?}"
    );

    let wrong_cluster = raw_stream(
        addr,
        CallFrame {
            hello: hello(5, 1, "another-cluster"),
            calls: Vec::new(),
        },
    )
    .await
    .1
    .unwrap_err();
    assert_eq!(wrong_cluster.code(), tonic::Code::FailedPrecondition);

    // Through a link: node 2's address book entry for node 3 points at node 1.
    nodes[1].links.set_peer(3, addr.to_string());
    match call(&nodes[1].links, 3, 1).await {
        Err(TransportError::Unreachable { node: 3, reason }) => {
            assert!(reason.contains("this is node 1"), "{reason}");
        }
        other => panic!("expected Unreachable naming the mix-up, got {other:?}"),
    }
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[tokio::test]
async fn a_new_stream_from_a_node_ends_its_old_one() {
    let nodes = cluster(1, PeerLimits::default()).await;
    let first_hello = || CallFrame {
        hello: hello(5, 1, "test-cluster"),
        calls: Vec::new(),
    };
    let (_old_frames, old) = raw_stream(nodes[0].addr, first_hello()).await;
    let mut old = old.unwrap();
    let (new_frames, new) = raw_stream(nodes[0].addr, first_hello()).await;
    let mut new = new.unwrap();
    // Node 5's old stream is dead on its side as far as node 1 can tell: node 1 ends it.
    let ended = old.message().await.unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Aborted);
    new_frames
        .send(CallFrame {
            hello: None,
            calls: vec![Call {
                call_id: 1,
                group: 2,
                kind: RpcKind::AppendEntries.code(),
                payload: Bytes::from_static(b"n"),
            }],
        })
        .await
        .unwrap();
    let frame = new.message().await.unwrap().unwrap();
    assert_eq!(
        frame.replies[0].outcome,
        Some(reply::Outcome::Payload(echo_of(
            5,
            2,
            RpcKind::AppendEntries,
            b"n"
        )))
    );
    for node in nodes {
        node.served.shut_down().await;
    }
}

#[test]
fn a_call_outside_a_runtime_is_unreachable_not_a_panic() {
    let links = PeerLinks::new(
        Arc::new(NodeIdentity::new(1, None)),
        BTreeMap::from([(2, "127.0.0.1:1".to_string())]),
        PeerLimits::default(),
        Arc::new(PeerMetrics::new()),
    );
    let answer = futures_util::FutureExt::now_or_never(links.call(
        2,
        GroupId(1),
        RpcKind::Vote,
        Bytes::new(),
        LONG_MS,
    ));
    assert!(matches!(
        answer,
        Some(Err(TransportError::Unreachable { node: 2, .. }))
    ));
}

/// A call of the mixed load below, and what may come of it.
struct Expected {
    target: NodeId,
    group: u64,
    payload: Bytes,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_resolves_once_with_its_own_answer_while_a_peer_restarts() {
    let limits = PeerLimits {
        reconnect_backoff_min: Duration::from_millis(5),
        reconnect_backoff_max: Duration::from_millis(20),
        ..PeerLimits::default()
    };
    let mut nodes = cluster(3, limits).await;
    let node3 = nodes.pop().unwrap();
    let addr3 = node3.addr;
    let links = Arc::new(std::mem::replace(
        &mut nodes[0].links,
        PeerLinks::new(
            Arc::new(NodeIdentity::new(1, None)),
            BTreeMap::new(),
            limits,
            Arc::new(PeerMetrics::new()),
        ),
    ));
    // A fixed-seed LCG: the mix is the same on every run.
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut spawn_calls = |count: u64, first_id: u64| {
        (first_id..first_id + count)
            .map(|id| {
                let target = 2 + next() % 2;
                let group = match next() % 10 {
                    0 => REFUSING_GROUP,
                    1 => SILENT_GROUP,
                    _ => ECHO_GROUPS + id,
                };
                let payload = Bytes::from(id.to_be_bytes().to_vec());
                let timeout_ms = if group == SILENT_GROUP { 20 } else { LONG_MS };
                let call = links.call(
                    target,
                    GroupId(group),
                    RpcKind::AppendEntries,
                    payload.clone(),
                    timeout_ms,
                );
                let expected = Expected {
                    target,
                    group,
                    payload,
                };
                (expected, tokio::spawn(call))
            })
            .collect::<Vec<_>>()
    };
    let mut calls = spawn_calls(1500, 0);
    // Some answers first, so node 3 goes down with calls in flight rather than before any.
    let mut finished = Vec::new();
    for (expected, call) in calls.drain(..50) {
        finished.push((expected, call.await.unwrap()));
    }
    node3.served.shut_down().await;
    let listener = TcpListener::bind(addr3).await.unwrap();
    let restarted = serve(
        listener,
        Arc::new(NodeIdentity::new(3, Some("test-cluster".into()))),
        FakeGroups::new(),
        limits,
        Arc::new(PeerMetrics::new()),
    )
    .await;
    calls.extend(spawn_calls(1500, 1500));

    for (expected, call) in calls {
        finished.push((expected, call.await.unwrap()));
    }
    let mut answered = 0;
    for (expected, outcome) in finished {
        match (&outcome, expected.group) {
            (Ok(answer), group) if group >= ECHO_GROUPS => {
                assert_eq!(
                    *answer,
                    echo_of(1, group, RpcKind::AppendEntries, &expected.payload)
                );
                answered += 1;
            }
            (Err(TransportError::Refused { node, .. }), REFUSING_GROUP) => {
                assert_eq!(*node, expected.target);
            }
            (Err(TransportError::Timeout { node, .. }), SILENT_GROUP) => {
                assert_eq!(*node, expected.target);
            }
            // Node 3 restarts: its calls may find it down; node 2's never do.
            (Err(TransportError::Unreachable { node: 3, .. }), _) if expected.target == 3 => {}
            _ => panic!(
                "call to node {} group {} ended {outcome:?}",
                expected.target, expected.group
            ),
        }
    }
    assert!(answered > 0);
    restarted.shut_down().await;
    for node in nodes {
        node.served.shut_down().await;
    }
}
