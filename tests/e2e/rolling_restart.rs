//! Issue 14's "Rolling restart", through the real binary: three nodes under an idempotent
//! acks=all load, each stopped in turn and restarted, and the next one stopped only once the
//! cluster is whole again (every node up, nothing under-replicated or leaderless, every
//! partition group led). The rolling restart runs four times, each on a fresh cluster: with
//! SIGTERM, where each node hands its leaderships over before it exits, and with SIGKILL,
//! where nothing is handed over; each restarted at once and after [`SLOW_RESTART`]. After each
//! run no acknowledged write is lost or duplicated and the copies agree.
//!
//! It also measures, and prints without asserting (timings belong to the machine), the longest
//! time a partition refused writes during each stop: one probe per partition sends a record,
//! waits for its acknowledgement and sends the next, so the longest gap between two of a
//! probe's acknowledgements is the longest refusal plus one round trip. The probes retry after
//! 10 to 50 ms, so the gap measures the partition, not the client's back-off.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_client::{OutgoingRecord, Producer, ProducerConfig};

mod common;

use common::cluster::{
    Cluster, consume_all, spawn_producer, start_cluster, tally, wait_replicas_agree,
};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const NODES: i32 = 3;

/// How a node is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// A clean stop: leaderships handed over, then the logs closed.
    Term,
    /// A crash: nothing handed over.
    Kill,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Kill => "SIGKILL",
        }
    }
}

/// What one partition's probe saw: when each acknowledgement came, and where each record went.
#[derive(Default)]
struct Probe {
    acks: Vec<Instant>,
    acknowledged: BTreeMap<String, (i32, i64)>,
    failed: usize,
    /// Why sends failed, by error text.
    failures: BTreeMap<String, usize>,
}

impl Probe {
    /// The longest gap between two acknowledgements that overlaps `from..to`.
    fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        self.acks
            .windows(2)
            .filter(|pair| pair[1] > from && pair[0] < to)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default()
    }
}

/// Writes `p<partition>-<n>` to `partition` one at a time, each once the previous one is
/// acknowledged, until `stop`.
fn spawn_probe(
    producer: Producer,
    partition: i32,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Probe> {
    tokio::spawn(async move {
        let mut probe = Probe::default();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let value = format!("p{partition}-{n}");
            n += 1;
            let record = OutgoingRecord {
                partition: Some(partition),
                ..OutgoingRecord::keyed(format!("probe-{partition}"), value.clone())
            };
            let placed = match producer.send(TOPIC, record).await {
                Ok(delivery) => delivery.await,
                Err(err) => Err(err),
            };
            match placed {
                Ok(placed) => {
                    probe.acks.push(Instant::now());
                    probe
                        .acknowledged
                        .insert(value, (placed.partition, placed.offset));
                }
                // Not acknowledged (delivery timed out, no broker answered): not counted as
                // written either.
                Err(err) => {
                    probe.failed += 1;
                    *probe.failures.entry(err.to_string()).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        probe
    })
}

/// Partition groups on the cluster: the topic's and `__consumer_offsets`'.
const GROUPS: usize = PARTITIONS as usize + cairn_broker::DEFAULT_OFFSETS_TOPIC_PARTITIONS as usize;

/// One stop and restart, as the measurement saw it.
struct Step {
    node: i32,
    /// Partition groups the node led when it was stopped.
    leaderships: f64,
    /// From the signal until the process exited.
    exit_took: Duration,
    /// The signal, and the moment the cluster was whole again after the restart.
    started: Instant,
    whole_again: Instant,
}

/// Stops every node in turn with `stop`, restarts it after `down`, and goes on once the
/// cluster is whole again.
async fn roll(cluster: &mut Cluster, stop: Stop, down: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    for node in 1..=NODES {
        let leaderships = cluster
            .metrics(node)
            .and_then(|body| common::metric_sample(&body, "cairn_cluster_leaders"))
            .unwrap_or_default();
        let started = Instant::now();
        match stop {
            Stop::Term => {
                let status = cluster.stop(node).await;
                assert!(
                    status.success(),
                    "node {node} exited with {status} after SIGTERM"
                );
            }
            // `kill` and `restart` wait on the process: off the runtime's workers, so the
            // probes keep their pace.
            Stop::Kill => tokio::task::block_in_place(|| cluster.kill(node)),
        }
        let exit_took = started.elapsed();
        tokio::time::sleep(down).await;
        tokio::task::block_in_place(|| cluster.restart(node));
        cluster.wait_healthy(GROUPS).await;
        steps.push(Step {
            node,
            leaderships,
            exit_took,
            started,
            whole_again: Instant::now(),
        });
        // A moment of steady load between stops, as a rollout would leave.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    steps
}

/// A fresh three-node cluster under load, rolled with `stop` and each node down for `down`;
/// checks that nothing acknowledged is lost or duplicated and that the copies agree, prints
/// what the probes saw, and returns the longest refusal of any partition during any stop and
/// the longest gap under steady load before (the measurement's floor on this machine).
async fn rolling_restart(stop: Stop, down: Duration) -> (Duration, Duration) {
    let dir = common::TestDir::new();
    let mut cluster = start_cluster(dir.path(), 3);
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, PARTITIONS, 3)
        .await;
    cluster.wait_healthy(GROUPS).await;

    let stopping = Arc::new(AtomicBool::new(false));
    let load = spawn_producer(cluster.bootstrap_from(0), TOPIC, Arc::clone(&stopping)).await;
    let probe_config = ProducerConfig {
        retry_backoff: Duration::from_millis(10),
        retry_backoff_max: Duration::from_millis(50),
        ..ProducerConfig::default()
    };
    let probe_producer = Producer::connect(&cluster.bootstrap_from(1), probe_config)
        .await
        .unwrap();
    let probes: Vec<_> = (0..PARTITIONS)
        .map(|p| spawn_probe(probe_producer.clone(), p, Arc::clone(&stopping)))
        .collect();
    // The first appends to a new leader wait for it to be ready; measure the floor after.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let steady_to = Instant::now();
    let rolling_started = Instant::now();
    let steps = roll(&mut cluster, stop, down).await;
    let rolling_took = rolling_started.elapsed();

    stopping.store(true, Ordering::Relaxed);
    let (mut acknowledged, load_failed, sent) = load.await.unwrap();
    let load_acknowledged = acknowledged.len();
    let mut probed = Vec::new();
    for probe in probes {
        probed.push(probe.await.unwrap());
    }
    let probe_failed: usize = probed.iter().map(|p| p.failed).sum();
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for (reason, count) in probed.iter().flat_map(|p| p.failures.iter()) {
        *failures.entry(reason.as_str()).or_default() += count;
    }
    for probe in &probed {
        acknowledged.extend(probe.acknowledged.clone());
    }
    let longest = |from: Instant, to: Instant| {
        probed
            .iter()
            .enumerate()
            .map(|(partition, probe)| (probe.longest_gap(from, to), partition))
            .max()
            .unwrap_or_default()
    };
    let name = format!("{}, down {down:.0?}", stop.name());
    let (steady, _) = longest(steady_from, steady_to);
    println!(
        "{name}: steady load before any stop: longest gap between acknowledgements {steady:.0?}"
    );
    let mut worst = Duration::ZERO;
    for step in &steps {
        let (gap, partition) = longest(step.started, step.whole_again);
        println!(
            "{name} node {} (leading {} groups): exited after {:.0?}, whole again after {:.1?}; longest refusal {gap:.0?} (partition {partition})",
            step.node,
            step.leaderships,
            step.exit_took,
            step.whole_again - step.started,
        );
        worst = worst.max(gap);
    }

    let records = consume_all(&cluster.bootstrap_from(0), TOPIC).await;
    let (lost, duplicates) = tally(&acknowledged, &records);
    println!(
        "{name}: rolling restart took {rolling_took:.0?}; load: sent {sent}, acknowledged {load_acknowledged}, failed {load_failed}; probes: acknowledged {}, failed {probe_failed}",
        acknowledged.len() - load_acknowledged
    );
    for (reason, count) in &failures {
        println!("{name}: {count} probe sends failed: {reason}");
    }
    println!(
        "{name}: acknowledged writes lost: {lost} of {}; duplicates: {duplicates}; longest refusal {worst:.0?}",
        acknowledged.len(),
    );
    assert_eq!((lost, duplicates), (0, 0), "{name}");
    wait_replicas_agree(dir.path(), TOPIC, PARTITIONS).await;
    (worst, steady)
}

/// How long a node stays down in the second pair of runs: past the election timeout's upper
/// end (2 s by default). A killed leader restarted sooner takes its leaderships back at once
/// (openraft restores a leader whose saved vote is its own), which hides the crash's cost.
const SLOW_RESTART: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing_with_sigterm_or_sigkill() {
    // One after the other, never side by side: the figures compare the runs.
    let mut figures = Vec::new();
    for (stop, down) in [
        (Stop::Term, Duration::ZERO),
        (Stop::Kill, Duration::ZERO),
        (Stop::Term, SLOW_RESTART),
        (Stop::Kill, SLOW_RESTART),
    ] {
        let (worst, steady) = rolling_restart(stop, down).await;
        figures.push((stop, down, worst, steady));
    }
    println!("longest time a partition refused writes during a rolling restart of 3 nodes:");
    for (stop, down, worst, steady) in figures {
        println!(
            "  {}, each node down {down:.0?}: {worst:.0?} (longest gap under steady load: {steady:.0?})",
            stop.name()
        );
    }
}
