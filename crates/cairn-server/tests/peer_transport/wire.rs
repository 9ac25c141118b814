//! What crosses the wire: payloads of megabytes and oversized ones, calls of an unknown kind,
//! streams without a hello or meant for another node or cluster, a new stream replacing an old
//! one, and a call made outside a runtime.

use super::*;

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
