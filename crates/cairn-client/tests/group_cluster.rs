//! `GroupConsumer` and `GroupAdmin` against an in-process cluster of three nodes: the group's
//! calls go to its coordinator, and when that node stops, the member follows the coordinator
//! to its successor, rejoins there, resumes from the committed offsets and misses no record.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cairn_client::{
    GroupAdmin, GroupConsumer, GroupConsumerConfig, NoopListener, OffsetReset, OutgoingRecord,
    Producer, ProducerConfig,
};
use cairn_proto::v1::FindCoordinatorRequest;
use cairn_proto::v1::groups_client::GroupsClient;

mod common;

const RECORD_COUNT: usize = 600;

/// Waits (up to a minute) until `attempt` succeeds, and returns what it gave.
async fn eventually<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match attempt().await {
            Ok(answer) => return answer,
            Err(error) => {
                assert!(Instant::now() < deadline, "{what}: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The node id `address` names as group `group`'s coordinator.
async fn coordinator_of(address: &str, group: &str) -> Result<i32, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let answer = GroupsClient::new(channel)
        .find_coordinator(FindCoordinatorRequest {
            group_id: group.to_string(),
        })
        .await?;
    Ok(answer.into_inner().node_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_follows_its_coordinator_to_the_next_node_and_misses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let peers: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, common::free_port().to_string()))
        .collect();
    let mut nodes = BTreeMap::new();
    for &id in peers.keys() {
        let node_dir = dir.path().join(format!("node-{id}"));
        nodes.insert(id, common::serve_in_cluster(&node_dir, id, &peers));
    }
    let brokers = peers.values().cloned().collect::<Vec<_>>().join(",");
    let admin = common::admin(&brokers).await;
    eventually("the topic's creation", || {
        admin.create_topic("orders", 3, 3, Default::default())
    })
    .await;
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();
    let mut deliveries = Vec::with_capacity(RECORD_COUNT);
    for i in 0..RECORD_COUNT {
        let record = OutgoingRecord::keyed(format!("k{}", i % 7), format!("v{i}"));
        deliveries.push(producer.send("orders", record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    producer.close().await.unwrap();

    let mut cfg = GroupConsumerConfig::new("g");
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.auto_commit_interval = Duration::from_millis(200);
    let mut member = GroupConsumer::subscribe(&brokers, cfg, &["orders"], Box::new(NoopListener))
        .await
        .unwrap();
    let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < RECORD_COUNT / 3 {
        assert!(Instant::now() < deadline, "read only {}", seen.len());
        for record in member.poll(Duration::from_millis(200)).await.unwrap() {
            seen.insert((record.partition, record.offset));
        }
    }
    member.commit().await.unwrap();

    // Stop the group's coordinator; another node takes over the group's offsets partition.
    let first = peers.values().next().unwrap().clone();
    let coordinator = eventually("FindCoordinator", || coordinator_of(&first, "g")).await;
    let stopped = u64::try_from(coordinator).unwrap();
    let (stop, server) = nodes.remove(&stopped).unwrap();
    drop(stop);
    server.await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.len() < RECORD_COUNT {
        assert!(
            Instant::now() < deadline,
            "after the coordinator stopped, read only {} of {RECORD_COUNT}",
            seen.len()
        );
        for record in member.poll(Duration::from_millis(200)).await.unwrap() {
            seen.insert((record.partition, record.offset));
        }
    }
    // The new coordinator refuses the member's commits (UNKNOWN_MEMBER_ID) until the member
    // has rejoined there; after the rejoin it reads again from its last commit. Poll on until
    // a commit of the whole topic is taken.
    let end = i64::try_from(RECORD_COUNT).unwrap();
    let mut refusals = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no commit of the whole topic taken: {refusals:?}"
        );
        for record in member.poll(Duration::from_millis(200)).await.unwrap() {
            seen.insert((record.partition, record.offset));
        }
        let at_end = |member: &GroupConsumer| {
            member.assignment().len() == 3 && member.positions().values().sum::<i64>() == end
        };
        if at_end(&member) {
            match member.commit().await {
                // A member the commit found lost dropped its partitions and committed
                // nothing: it reads them again from the last commit.
                Ok(()) if at_end(&member) => break,
                Ok(()) => refusals.push(None),
                Err(error) => refusals.push(error.code()),
            }
        }
    }
    assert_eq!(seen.len(), RECORD_COUNT);

    // The group lives on at the new coordinator, which lists and describes it.
    let survivors: Vec<String> = peers
        .iter()
        .filter(|(id, _)| **id != stopped)
        .map(|(_, address)| address.clone())
        .collect();
    let groups = GroupAdmin::connect(&survivors.join(",")).await.unwrap();
    let described = eventually("the group's description", || groups.describe_group("g")).await;
    assert_eq!(described.members.len(), 1, "{described:?}");
    let committed: i64 = groups
        .committed_offsets("g")
        .await
        .unwrap()
        .iter()
        .map(|c| c.offset)
        .sum();
    assert_eq!(committed, end, "refusals on the way: {refusals:?}");
    let listed = groups.list_groups().await.unwrap();
    assert_eq!(
        listed.iter().filter(|g| g.group_id == "g").count(),
        1,
        "{listed:?}"
    );
    member.close().await.unwrap();
}
