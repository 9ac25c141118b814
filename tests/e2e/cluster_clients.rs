//! End-to-end checks that clients find partition leaders in a real three-node cluster: a
//! producer and the CLI bootstrapped from one node write to every partition (each led by
//! whichever node won its election), and every record is read back from any other node; and a
//! producer keeps every record acknowledged exactly once while the leader of a partition is
//! killed with SIGKILL under it. A replicated partition forgets idempotent producers silent
//! past `--producer-id-expiration-ms`, as a single node does.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_client::{Consumer, OutgoingRecord, Producer, ProducerConfig, Seek};

mod common;

use common::cluster::{Cluster, consume_all, start_cluster, start_cluster_with};
use common::*;

const TOPIC: &str = "orders";

/// The index (0-based) of a node that does not lead some partition: bootstrapping from it
/// makes the client route at least one partition elsewhere.
fn not_leading_all(leaders: &[i32]) -> usize {
    (1..=3)
        .find(|id| leaders.iter().any(|leader| leader != id))
        .map(|id| usize::try_from(id - 1).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_one_node_writes_every_partition_and_reads_them_back_from_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let cluster: Cluster = start_cluster(dir.path(), 3);
    let leaders = cluster
        .create_topic(&cluster.addresses[0], TOPIC, 3, 3)
        .await;
    let home = not_leading_all(&leaders);
    let home_address = cluster.addresses[home].clone();

    // The Rust producer, told about one node only.
    let producer = Producer::connect(&home_address, ProducerConfig::default())
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..300 {
        let record = OutgoingRecord::keyed(format!("customer-{}", i % 17), format!("rust-{i}"));
        deliveries.push(producer.send(TOPIC, record).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut placed = BTreeSet::new();
    for delivery in deliveries {
        let placement = delivery.await.unwrap();
        assert!(placed.insert((placement.partition, placement.offset)));
    }
    let partitions: BTreeSet<i32> = placed.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        partitions.len(),
        3,
        "the keys spread over every partition: {partitions:?}"
    );

    // The CLI, told about the same node, as a user would try it.
    let input: String = (0..30).map(|i| format!("k{i}:cli-{i}\n")).collect();
    let mut child = cairn(&[
        "--broker",
        &home_address,
        "produce",
        TOPIC,
        "--key-separator",
        ":",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cairn produce through node {}: {}",
        home + 1,
        String::from_utf8_lossy(&out.stderr)
    );

    // Read back from each other node alone.
    for other in (0..3).filter(|&i| i != home) {
        let records = consume_all(&cluster.addresses[other], TOPIC).await;
        let values: BTreeSet<&str> = records.iter().map(|(_, _, v)| v.as_str()).collect();
        assert_eq!(records.len(), 330, "from node {}", other + 1);
        assert_eq!(values.len(), 330, "no duplicates from node {}", other + 1);
        for (partition, offset, value) in &records {
            if value.starts_with("rust-") {
                assert!(placed.contains(&(*partition, *offset)), "{value}");
            }
        }
    }
    let text = cli_ok(&cluster.addresses[home], &["topic", "describe", TOPIC]);
    assert!(text.contains("ISR"), "{text}");
    let consumed = consume_json_with_cli(&cluster.bootstrap_from((home + 1) % 3), TOPIC);
    assert_eq!(consumed.lines().count(), 330, "{consumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_produce_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(dir.path(), 3);
    let leaders = cluster
        .create_topic(&cluster.addresses[0], TOPIC, 3, 3)
        .await;
    let victim = leaders[0];
    let victim_index = usize::try_from(victim - 1).unwrap();
    // The victim first in the list: its death also takes the client's bootstrap node.
    let brokers = cluster.bootstrap_from(victim_index);
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();

    const TOTAL: usize = 3000;
    const KILL_AT: usize = 1000;
    let mut deliveries = Vec::with_capacity(TOTAL);
    for i in 0..TOTAL {
        let record = OutgoingRecord {
            partition: Some(i32::try_from(i % 3).unwrap()),
            ..OutgoingRecord::keyed(format!("k{i}"), format!("v{i}"))
        };
        deliveries.push(producer.send(TOPIC, record).await.unwrap());
        if i == KILL_AT {
            cluster.kill(victim);
        }
        if i % 100 == 0 {
            // Lets batches leave while the loop goes on, so the kill lands mid-stream.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    producer.flush().await.unwrap();
    let mut acknowledged = BTreeMap::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let placement = delivery
            .await
            .unwrap_or_else(|err| panic!("record {i} not acknowledged: {err}"));
        acknowledged.insert(format!("v{i}"), (placement.partition, placement.offset));
    }
    assert_eq!(acknowledged.len(), TOTAL);

    let survivor = (victim_index + 1) % 3;
    cluster
        .wait_for_leaders(&cluster.addresses[survivor], TOPIC)
        .await;
    let records = consume_all(&cluster.addresses[survivor], TOPIC).await;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, value) in &records {
        *seen.entry(value.as_str()).or_default() += 1;
    }
    let lost = acknowledged
        .keys()
        .filter(|v| !seen.contains_key(v.as_str()))
        .count();
    let duplicates: usize = seen.values().map(|&n| n - 1).sum();
    assert_eq!(
        (lost, duplicates),
        (0, 0),
        "acknowledged writes lost: {lost} of {TOTAL}; duplicates: {duplicates}"
    );
    for (partition, offset, value) in &records {
        assert_eq!(
            acknowledged.get(value),
            Some(&(*partition, *offset)),
            "{value} was acknowledged where it was read"
        );
    }
}

/// A leader that stops answering for good (SIGSTOP: its connections stay open) costs
/// `cairn produce` seconds, not its `--timeout`: the producer's connection misses a PING and
/// is closed, and the waiting requests go to the new leader. Before, the one request stuck on
/// the paused leader used the record's whole delivery timeout and the command failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_for_good_costs_the_cli_producer_seconds_not_its_timeout() {
    const LINES: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_cluster(dir.path(), 3);
    let leaders = cluster
        .create_topic(&cluster.addresses[0], "paused", 1, 3)
        .await;
    let victim = leaders[0];
    let others: Vec<String> = (1..=3)
        .filter(|id| *id != victim)
        .map(|id| cluster.addresses[usize::try_from(id - 1).unwrap()].clone())
        .collect();
    let brokers = others.join(",");
    let mut child = cairn(&[
        "--broker",
        &brokers,
        "--timeout",
        "20s",
        "produce",
        "paused",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in 0..LINES {
        if line == LINES / 3 {
            cluster.pause(victim);
        }
        stdin.write_all(format!("v{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cairn produce: {stderr}");
    let records = consume_all(&brokers, "paused").await;
    let values: Vec<&str> = records.iter().map(|(_, _, v)| v.as_str()).collect();
    let wanted: Vec<String> = (0..LINES).map(|line| format!("v{line}")).collect();
    assert_eq!(
        values, wanted,
        "every line once, in order; produce said: {stderr}"
    );
    cluster.resume(victim);
}

/// A batch over the topic's `max.message.bytes` on a replicated partition is refused by its
/// leader before it is proposed (not retried), and the partition goes on taking appends on
/// every node. It used to reach the Raft log's storage, which refused it as a write failure
/// and stopped the group: the node reported NOT_SERVING and the producer retried
/// `NOT_LEADER` against the stopped leader until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_max_message_bytes_is_refused_and_the_partition_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_cluster(dir.path(), 3);
    let brokers = cluster.bootstrap_from(0);
    cli_ok_once_formed(
        &brokers,
        &[
            "topic",
            "create",
            "tiny",
            "--partitions",
            "1",
            "--replication-factor",
            "3",
            "--config",
            "max.message.bytes=200",
        ],
    );
    cluster
        .wait_for_leaders(&cluster.addresses[0], "tiny")
        .await;
    let big = format!("{}\n", "x".repeat(500));
    let out = cli_with_input(
        &brokers,
        &["--timeout", "20s", "produce", "tiny"],
        big.as_bytes(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exceeds max.message.bytes = 200") && !stderr.contains("delivery timeout"),
        "refused at once, not retried: {stderr}"
    );
    let out = cli_with_input(&brokers, &["produce", "tiny"], b"small\n");
    assert!(
        out.status.success(),
        "the partition still takes appends: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for address in &cluster.addresses {
        let health = cli(address, &["health"]);
        assert!(
            health.status.success(),
            "{address}: {}",
            String::from_utf8_lossy(&health.stdout)
        );
    }
    let records = consume_all(&brokers, "tiny").await;
    let values: Vec<&str> = records.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(values, ["small"]);
}

/// Creates `topic` (one partition, three copies, 1 KiB segments, and `retention`) once the
/// cluster has formed.
fn create_small_segments_topic(brokers: &str, topic: &str, retention: &str) {
    cli_ok_once_formed(
        brokers,
        &[
            "topic",
            "create",
            topic,
            "--partitions",
            "1",
            "--replication-factor",
            "3",
            "--config",
            "segment.bytes=1024",
            "--config",
            retention,
        ],
    );
}

/// `serve --log-retention-check-interval-ms` reaches the replicated partitions too: with a
/// 1 s check, a three-copy topic's closed segments are purged within seconds (the default
/// check waits 5 minutes), and the records after the new log start still read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_at_the_check_interval_the_nodes_were_given() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_cluster_with(
        dir.path(),
        3,
        &["--log-retention-check-interval-ms", "1000"],
    );
    let brokers = cluster.bootstrap_from(0);
    create_small_segments_topic(&brokers, "aging", "retention.ms=500");
    cluster
        .wait_for_leaders(&cluster.addresses[0], "aging")
        .await;
    fill_three_segments(&brokers, "aging");
    // Blocking polls on one of the test's two workers: nothing else runs meanwhile.
    let start = wait_for_retention(&brokers, "aging", Duration::from_secs(30));
    assert!((1..15).contains(&start), "log start offset {start}");
    let records = consume_all(&brokers, "aging").await;
    assert_eq!(records.first().map(|r| r.1), Some(start));
    assert_eq!(records.last().map(|r| r.1), Some(14));
}

/// A copy that was down while retention deleted the start of the leader's log comes back with
/// everything the leader still keeps, not only what was written after: it is sent a snapshot
/// ending at the leader's purge point, starts its log at the leader's log start and copies the
/// rest. (With the snapshot at the leader's last applied entry, as before, the copy started at
/// the leader's log end, and an election of it would have lost the history retention keeps.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_back_after_retention_ran_holds_all_the_leader_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster_with(
        dir.path(),
        3,
        &["--log-retention-check-interval-ms", "1000"],
    );
    create_small_segments_topic(&cluster.bootstrap_from(0), "kept", "retention.bytes=3000");
    let leader = cluster
        .wait_for_leaders(&cluster.addresses[0], "kept")
        .await[0];
    let away = if leader == 1 { 2 } else { 1 };
    cluster.kill(away);
    let brokers = cluster.bootstrap_from(usize::try_from(leader - 1).unwrap());
    fill_three_segments(&brokers, "kept");
    fill_three_segments(&brokers, "kept");
    let start = wait_for_retention(&brokers, "kept", Duration::from_secs(30));
    assert!(start > 0 && start < 30, "log start offset {start}");

    cluster.restart(away);
    // The three copies hold the same bytes: the returning one from the leader's log start.
    common::cluster::wait_copies_agree(dir.path(), "kept", 1, &[1, 2, 3]).await;
    let records = consume_all(&brokers, "kept").await;
    assert_eq!(records.last().map(|r| r.1), Some(29));
}

/// Sends records `v{from}`..`v{to}` round-robin over the partitions and waits for each
/// acknowledgement.
async fn produce_range(producer: &Producer, from: usize, to: usize) {
    let mut deliveries = Vec::with_capacity(to - from);
    for i in from..to {
        let record = OutgoingRecord {
            partition: Some(i32::try_from(i % 3).unwrap()),
            ..OutgoingRecord::keyed(format!("k{i}"), format!("v{i}"))
        };
        deliveries.push(producer.send(TOPIC, record).await.unwrap());
    }
    producer.flush().await.unwrap();
    for delivery in deliveries {
        delivery.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_replay_resumes_on_the_new_leader_without_skipping_or_repeating() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(dir.path(), 3);
    let leaders = cluster
        .create_topic(&cluster.addresses[0], TOPIC, 3, 3)
        .await;
    let victim = leaders[0];
    let victim_index = usize::try_from(victim - 1).unwrap();
    let brokers = cluster.bootstrap_from(victim_index);
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();
    const HALF: usize = 1500;
    produce_range(&producer, 0, HALF).await;

    // Following: once caught up, each partition's subscription waits for new records, so the
    // records written after the kill can only come through a subscription to the new leader.
    let replay_config = cairn_client::ReplayConfig {
        follow: true,
        ..cairn_client::ReplayConfig::default()
    };
    let mut replay = cairn_client::Replay::start(&brokers, TOPIC, replay_config)
        .await
        .unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE;
    let mut killed = false;
    while seen.len() < 2 * HALF {
        if seen.len() == HALF && !killed {
            cluster.kill(victim);
            killed = true;
            produce_range(&producer, HALF, 2 * HALF).await;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, replay.next()).await;
        let Ok(Some(record)) = next else {
            panic!("the replay stopped after {} records", seen.len());
        };
        let record = record.unwrap_or_else(|err| panic!("after {} records: {err}", seen.len()));
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        let (partition, offset) = (record.partition, record.offset);
        if let Some(previous) = last_offset.insert(partition, offset) {
            assert!(
                offset > previous,
                "partition {partition} went from {previous} to {offset}"
            );
        }
        *seen.entry(value).or_default() += 1;
    }
    let lost = (0..2 * HALF)
        .filter(|i| !seen.contains_key(&format!("v{i}")))
        .count();
    let duplicates: usize = seen.values().map(|&n| n - 1).sum();
    assert_eq!(
        (lost, duplicates),
        (0, 0),
        "records skipped: {lost}; repeated: {duplicates}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_polls_on_through_a_leader_kill_without_skipping_or_repeating() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(dir.path(), 3);
    let leaders = cluster
        .create_topic(&cluster.addresses[0], TOPIC, 3, 3)
        .await;
    let victim = leaders[0];
    let victim_index = usize::try_from(victim - 1).unwrap();
    let brokers = cluster.bootstrap_from(victim_index);
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();
    const HALF: usize = 1500;
    produce_range(&producer, 0, HALF).await;

    let mut consumer = Consumer::assign(&brokers, TOPIC, &[], Seek::Earliest)
        .await
        .unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE;
    let mut killed = false;
    while seen.len() < 2 * HALF {
        assert!(
            Instant::now() < deadline,
            "consumed only {} records",
            seen.len()
        );
        if seen.len() >= HALF && !killed {
            cluster.kill(victim);
            killed = true;
            produce_range(&producer, HALF, 2 * HALF).await;
        }
        let records = consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap_or_else(|err| panic!("after {} records: {err}", seen.len()));
        for record in records {
            if let Some(previous) = last_offset.insert(record.partition, record.offset) {
                assert!(
                    record.offset > previous,
                    "partition {} went from {previous} to {}",
                    record.partition,
                    record.offset
                );
            }
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            *seen.entry(value).or_default() += 1;
        }
    }
    let duplicates: usize = seen.values().map(|&n| n - 1).sum();
    assert_eq!(duplicates, 0, "records repeated: {duplicates}");
    assert_eq!(seen.len(), 2 * HALF);
}

/// Nodes that listen on `127.0.0.1:PORT` and peer there, but tell clients `localhost:PORT` (as
/// a node behind NAT or a container's published port advertises another name): metadata,
/// `DescribeCluster` and a follower's `NOT_LEADER` hint all give the advertised addresses, and
/// a client that only knows those names produces and consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_given_each_nodes_advertised_address_not_its_peer_address() {
    use cairn_proto::v1::producer_client::ProducerClient;
    use cairn_proto::v1::{ProduceRequest, Record, RecordList, produce_request};
    use tonic_types::StatusExt;

    let dir = tempfile::tempdir().unwrap();
    let advertised = |address: &str| address.replace("127.0.0.1", "localhost");
    let cluster =
        common::cluster::start_cluster_advertising(dir.path(), 3, |a| Some(advertised(a)));
    let leaders = cluster
        .create_topic(&cluster.addresses[0], TOPIC, 3, 3)
        .await;
    let wanted: BTreeSet<String> = cluster.addresses.iter().map(|a| advertised(a)).collect();
    // Each node publishes its address once the cluster forms: wait for all three.
    let admin = cairn_client::Admin::connect(&cluster.addresses[1])
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metadata = admin.metadata(&[TOPIC.to_string()]).await.unwrap();
        let given: BTreeSet<String> = metadata.nodes.iter().map(|n| n.address.clone()).collect();
        if given == wanted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metadata gives {given:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let described = admin.describe_cluster().await.unwrap();
    let described: BTreeSet<String> = described.nodes.iter().map(|n| n.address.clone()).collect();
    assert_eq!(described, wanted);

    // A follower of partition 0 names its leader by the advertised address.
    let leader = leaders[0];
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    let follower_address = &cluster.addresses[usize::try_from(follower - 1).unwrap()];
    let mut client = ProducerClient::connect(format!("http://{follower_address}"))
        .await
        .unwrap();
    let refused = client
        .produce(ProduceRequest {
            topic: TOPIC.to_string(),
            partition: Some(0),
            payload: Some(produce_request::Payload::Records(RecordList {
                records: vec![Record {
                    value: Some(b"x".to_vec().into()),
                    ..Record::default()
                }],
            })),
            ..ProduceRequest::default()
        })
        .await
        .unwrap_err();
    let info = refused
        .get_details_error_info()
        .expect("NOT_LEADER carries ErrorInfo");
    let leader_address = &cluster.addresses[usize::try_from(leader - 1).unwrap()];
    assert_eq!(
        info.metadata.get("leader"),
        Some(&advertised(leader_address)),
        "{refused:?}"
    );

    // A client that only knows the advertised names writes and reads every partition.
    let brokers = wanted.iter().cloned().collect::<Vec<_>>().join(",");
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();
    for i in 0..30 {
        let record = OutgoingRecord {
            partition: Some(i % 3),
            ..OutgoingRecord::keyed(format!("k{i}"), format!("v{i}"))
        };
        producer.send(TOPIC, record).await.unwrap().await.unwrap();
    }
    let read = consume_all(&brokers, TOPIC).await;
    assert_eq!(read.len(), 30);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_partition_forgets_producer_ids_silent_past_their_expiration() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_cluster_with(dir.path(), 3, &["--producer-id-expiration-ms", "1000"]);
    let leaders = cluster
        .create_topic(&cluster.addresses[0], TOPIC, 1, 3)
        .await;
    let leader = &cluster.addresses[usize::try_from(leaders[0] - 1).unwrap()];
    let brokers = cluster.addresses.join(",");
    let written = common::producer_ids::check_expiration(leader, &brokers, TOPIC).await;
    assert_eq!(consume_all(&brokers, TOPIC).await.len(), written);
    // Every copy's background tracker forgets the producers too, once they are all silent.
    let series = format!("cairn_partition_producer_ids{{topic=\"{TOPIC}\",partition=\"0\"}}");
    let remembered = |node: i32| {
        let body = cluster.metrics(node)?;
        metric_sample(&body, &series)
    };
    let deadline = Instant::now() + PATIENCE;
    let mut seen = 0.0f64;
    loop {
        let counts: Vec<Option<f64>> = (1..=3).map(remembered).collect();
        seen = counts.iter().flatten().fold(seen, |max, c| max.max(*c));
        if counts.iter().all(|c| *c == Some(0.0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "producer ids remembered: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen > 0.0,
        "the copies remembered producers before they expired"
    );
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_to_a_cluster_without_a_majority_gives_up_after_its_timeout() {
    // Two of three nodes gone: the survivor answers, but no write can commit. The record is
    // retried (NOT_LEADER, unreachable leader) until it runs out of time, which `--timeout`
    // sets for the command, not the client library's two-minute delivery timeout.
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(dir.path(), 3);
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, 1, 3)
        .await;
    // A first produce through node 1 while the cluster is whole: node 1 then holds a block of
    // producer ids, so the next producer's id comes at once and its record is what waits.
    let first = cli_with_input(&cluster.addresses[0], &["produce", TOPIC], b"kept\n");
    assert!(first.status.success(), "{first:?}");
    cluster.kill(2);
    cluster.kill(3);
    let started = Instant::now();
    let out = cli_with_input(
        &cluster.addresses[0],
        &["--timeout", "3s", "produce", TOPIC],
        b"lost\n",
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("0 records were acknowledged"),
        "the failure says what was written: {stderr}"
    );
    // 3 s plus the linger and one last request; it was 120 s.
    assert!(took < Duration::from_secs(30), "took {took:?}: {stderr}");
}
