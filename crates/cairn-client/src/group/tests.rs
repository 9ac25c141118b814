#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::atomic::Ordering;

use super::*;
use crate::routing::fake_cluster::FakeCluster;

/// Waits (up to ten seconds) until `done` holds of `member`'s membership.
async fn wait_for(
    member: &GroupConsumer,
    what: &str,
    done: impl Fn(&heartbeat::Membership) -> bool,
) {
    let Some(heartbeat) = &member.heartbeat else {
        panic!("no heartbeat task");
    };
    for _ in 0..1000 {
        if done(&heartbeat.shared.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_by_a_new_coordinator_fences_the_member_and_it_rejoins_there() {
    let cluster = FakeCluster::start(2, Some(2), |port| format!("127.0.0.1:{port}")).await;
    // Heartbeats far apart: only the commit can find out that the coordinator moved.
    cluster.truth.lock().unwrap().heartbeat_interval_ms = 60_000;
    let mut member = GroupConsumer::subscribe(
        cluster.address(1),
        GroupConsumerConfig::new("g"),
        &["orders"],
        Box::new(NoopListener),
    )
    .await
    .unwrap();
    wait_for(&member, "the join at node 2", |m| m.joined && m.epoch == 1).await;
    let offsets = BTreeMap::from([(
        TopicPartition {
            topic: "orders".to_string(),
            partition: 0,
        },
        5,
    )]);
    member.commit_offsets(&offsets, "").await.unwrap();
    assert_eq!(cluster.nodes[&2].commits.load(Ordering::SeqCst), 1);

    // Node 1 takes over: node 2 names it, and node 1 does not know the member.
    cluster.elect(Some(1));
    let refused = member.commit_offsets(&offsets, "").await.unwrap_err();
    assert_eq!(
        refused.code(),
        Some(ErrorCode::UnknownMemberId),
        "{refused}"
    );
    assert!(refused.is_retriable());
    let fenced_by_the_refusal = member
        .heartbeat
        .as_ref()
        .is_some_and(|h| h.shared.lock().unwrap().lost);
    assert!(
        fenced_by_the_refusal,
        "the refusal itself fences the member"
    );
    let node1 = &cluster.nodes[&1];
    wait_for(&member, "the rejoin at node 1, at once", |m| {
        m.fence_count == 1 && m.joined && node1.heartbeats.load(Ordering::SeqCst) >= 1
    })
    .await;
    // The fence drops the partitions first: these offsets may be another member's now.
    let dropped = member.commit_offsets(&offsets, "").await.unwrap_err();
    assert_eq!(
        dropped.code(),
        Some(ErrorCode::FencedMemberEpoch),
        "{dropped}"
    );
    assert!(dropped.is_retriable());
    member.commit_offsets(&offsets, "").await.unwrap();
    assert_eq!(node1.commits.load(Ordering::SeqCst), 1);
    assert_eq!(cluster.finds(), 1, "the hint was enough");
    member.close().await.unwrap();
}
