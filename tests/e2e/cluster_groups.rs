//! A consumer group on three real `cairn serve` processes keeps consuming through the death of
//! its coordinator, which also leads a partition (issue 13's "Done means"): a producer writes
//! with acks=all, a group member consumes and commits, and the node that coordinates the group
//! is killed with SIGKILL. Afterwards every acknowledged record was consumed (none skipped), the
//! member did not start over from the beginning (the commits made before the death survived
//! it), and a new member of the group starts where the last commit left off. A group that
//! commits for long leaves `__consumer_offsets` bounded on every node.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_client::{GroupConsumer, GroupConsumerConfig, NoopListener, OffsetReset};
use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{
    CommitOffsetsRequest, FetchOffsetsRequest, FindCoordinatorRequest, OffsetCommit,
};

mod common;

use common::cluster::{Cluster, spawn_producer, start_cluster, start_cluster_with};
use common::*;

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

/// The node coordinating [`GROUP`], asked with a stock tonic client of any live node.
async fn coordinator(cluster: &Cluster) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for (i, address) in cluster.addresses.iter().enumerate() {
            if !cluster.is_running(i + 1) {
                continue;
            }
            let Ok(mut client) = GroupsClient::connect(format!("http://{address}")).await else {
                continue;
            };
            let asked = client
                .find_coordinator(FindCoordinatorRequest {
                    group_id: GROUP.into(),
                })
                .await;
            if let Ok(answer) = asked {
                let answer = answer.into_inner();
                let index = usize::try_from(answer.node_id - 1).unwrap();
                assert_eq!(answer.address, cluster.addresses[index]);
                if cluster.is_running(index + 1) {
                    return answer.node_id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no coordinator for {GROUP}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A member of [`GROUP`] that commits after every poll.
async fn member(brokers: &str) -> GroupConsumer {
    let mut cfg = GroupConsumerConfig::new(GROUP);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.enable_auto_commit = false;
    GroupConsumer::subscribe(brokers, cfg, &[TOPIC], Box::new(NoopListener))
        .await
        .unwrap()
}

/// What a member consumed, `(value, partition, offset)` in order, and the positions of its last
/// commit the coordinator acknowledged, by partition.
#[derive(Default)]
struct Consumed {
    records: Vec<(String, i32, i64)>,
    committed: BTreeMap<i32, i64>,
}

/// Polls and commits until `done` holds of what was consumed or `PATIENCE` runs out.
async fn consume_until(
    consumer: &mut GroupConsumer,
    consumed: &mut Consumed,
    done: impl Fn(&[(String, i32, i64)]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE * 2;
    while !done(&consumed.records) {
        assert!(
            Instant::now() < deadline,
            "the group stopped consuming after {} records",
            consumed.records.len()
        );
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => {
                for record in records {
                    let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
                    consumed
                        .records
                        .push((value, record.partition, record.offset));
                }
            }
            // A poll during the election may fail; the member carries on, as an application
            // would.
            Err(err) => assert!(err.is_retriable(), "poll: {err}"),
        }
        let positions: BTreeMap<i32, i64> = consumer
            .positions()
            .iter()
            .map(|(p, at)| (p.partition, *at))
            .collect();
        match consumer.commit().await {
            Ok(()) => consumed.committed.extend(positions),
            Err(err) => assert!(err.is_retriable(), "commit: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_consumes_through_its_coordinators_death_and_its_commits_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(dir.path(), 3);
    let leaders = cluster
        .create_topic(&cluster.addresses[0], TOPIC, 3, 3)
        .await;
    let brokers = cluster.bootstrap_from(0);
    let stop = Arc::new(AtomicBool::new(false));
    let producing = spawn_producer(brokers.clone(), TOPIC, Arc::clone(&stop)).await;

    let mut consumer = member(&brokers).await;
    let mut consumed = Consumed::default();
    consume_until(&mut consumer, &mut consumed, |c| c.len() >= 300).await;
    let before_death = consumed.records.len();
    let committed_before_death = consumed.committed.clone();

    let victim = coordinator(&cluster).await;
    println!("killing node {victim}: coordinator of {GROUP}, leaders were {leaders:?}");
    cluster.kill(victim);
    // The member keeps going while the group moves to a new coordinator and the victim's
    // partitions to new leaders.
    consume_until(&mut consumer, &mut consumed, |c| {
        c.len() >= before_death + 300
    })
    .await;
    let moved_to = coordinator(&cluster).await;
    assert_ne!(moved_to, victim);

    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed, sent) = producing.await.unwrap();
    consume_until(&mut consumer, &mut consumed, |c| {
        let seen: BTreeSet<&str> = c.iter().map(|(v, _, _)| v.as_str()).collect();
        acknowledged.keys().all(|v| seen.contains(v.as_str()))
    })
    .await;
    consumer.commit().await.unwrap();
    consumer.close().await.unwrap();

    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (value, partition, offset) in &consumed.records {
        *seen.entry(value.as_str()).or_default() += 1;
        if let Some(at) = acknowledged.get(value) {
            assert_eq!(at, &(*partition, *offset), "{value} read elsewhere");
        }
    }
    let redelivered: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "sent {sent}, acknowledged {}, failed {failed}; consumed {} ({} before the kill); skipped: 0; redelivered after the move: {redelivered}; committed before the kill: {committed_before_death:?}",
        acknowledged.len(),
        consumed.records.len(),
        before_death
    );
    // At least once, and resumed from the commits: a record below a position the coordinator
    // acknowledged before its death is never read again (what was polled after the last
    // acknowledged commit may be).
    for (value, partition, offset) in &consumed.records {
        let committed = committed_before_death.get(partition).copied().unwrap_or(0);
        assert!(
            seen[value.as_str()] == 1 || *offset >= committed,
            "{value} at {partition}/{offset} was read again although offset {committed} was committed before the coordinator died"
        );
    }

    // A new member of the group starts where the last commit left off: nothing is left.
    let mut next = member(&brokers).await;
    let mut again = Consumed::default();
    let until = Instant::now() + Duration::from_secs(3);
    consume_until(&mut next, &mut again, |_| Instant::now() >= until).await;
    assert!(
        again.records.is_empty(),
        "a new member re-read {} committed records",
        again.records.len()
    );
    next.close().await.unwrap();
}

/// The base offsets of the segments on node `node`'s copy of `__consumer_offsets` partition
/// `partition`, in order (empty when it has no copy).
fn offsets_segments(dir: &std::path::Path, node: usize, partition: i32) -> Vec<u64> {
    let replicas = dir.join(format!("node-{node}")).join("replicas");
    let prefix = format!("__consumer_offsets-{partition}.g");
    let mut bases: Vec<u64> = std::fs::read_dir(replicas)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix) && !name.ends_with(".deleting")
        })
        .flat_map(|entry| {
            std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|file| {
            let name = file.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Commits `offset` for [`TOPIC`] `partition` as a group without members, through `client`,
/// retrying while the node is still loading the group's offsets.
async fn commit_through(
    client: &mut GroupsClient<tonic::transport::Channel>,
    partition: i32,
    offset: i64,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let committed = client
            .commit_offsets(CommitOffsetsRequest {
                group_id: GROUP.into(),
                member_id: String::new(),
                member_epoch: -1,
                offsets: vec![OffsetCommit {
                    topic: TOPIC.into(),
                    partition,
                    offset,
                    metadata: String::new(),
                }],
            })
            .await;
        match committed {
            Ok(_) => return,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                assert!(Instant::now() < deadline, "never committed: {status}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("commit refused: {status}"),
        }
    }
}

/// [`GROUP`]'s committed offsets, as node `node` answers.
async fn committed_on(cluster: &Cluster, node: i32) -> Result<Vec<i64>, tonic::Status> {
    let index = usize::try_from(node - 1).unwrap();
    let mut client = GroupsClient::connect(format!("http://{}", cluster.addresses[index]))
        .await
        .unwrap();
    let answer = client
        .fetch_offsets(FetchOffsetsRequest {
            group_id: GROUP.into(),
            partitions: Vec::new(),
        })
        .await?
        .into_inner();
    Ok(answer.offsets.iter().map(|o| o.offset).collect())
}

/// Compaction does not run on replicated partitions, yet a group that commits for long leaves
/// `__consumer_offsets` bounded: every node deletes the segments whose commits were all
/// superseded, the coordinator commits again an offset left unchanged since the start, and the
/// offsets read back the same, from a new coordinator too once the old one is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_committing_for_long_leaves_the_offsets_log_bounded_on_every_node() {
    const COMMITS: i64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster_with(
        dir.path(),
        3,
        &[
            "--offsets-topic-segment-bytes",
            "4096",
            "--log-retention-check-interval-ms",
            "1000",
        ],
    );
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, 2, 3)
        .await;
    let first = coordinator(&cluster).await;
    let index = usize::try_from(first - 1).unwrap();
    let mut client = GroupsClient::connect(format!("http://{}", cluster.addresses[index]))
        .await
        .unwrap();
    commit_through(&mut client, 1, 7).await;
    for offset in 0..COMMITS {
        commit_through(&mut client, 0, offset).await;
    }

    // On every node the copy of the group's offsets partition (the one that grew) starts past
    // the first thousand commits.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let firsts: Vec<Option<u64>> = (1..=3)
            .map(|node| {
                (0..8)
                    .map(|p| offsets_segments(dir.path(), node, p))
                    .max_by_key(Vec::len)
                    .and_then(|bases| bases.first().copied())
            })
            .collect();
        if firsts.iter().all(|first| first.is_some_and(|f| f > 1000)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the offsets log kept its start on some node: first segments {firsts:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        committed_on(&cluster, first).await.unwrap(),
        [COMMITS - 1, 7]
    );

    cluster.kill(first);
    let second = coordinator(&cluster).await;
    assert_ne!(second, first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        // The new coordinator answers once it has read the partition back.
        if let Ok(offsets) = committed_on(&cluster, second).await {
            assert_eq!(offsets, [COMMITS - 1, 7]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new coordinator never answered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
