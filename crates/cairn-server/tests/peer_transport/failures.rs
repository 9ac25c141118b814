//! A peer down, paused, silent, back again or moved, calls past their deadline, unknown peers,
//! and refusals and failures of the handler.

use super::*;

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
