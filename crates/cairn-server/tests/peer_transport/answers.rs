//! Calls answered and named, frames shared and paced, slow calls apart from fast ones, and a
//! stream's limit of calls at once.

use super::*;

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
