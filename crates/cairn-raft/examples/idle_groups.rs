//! Measures what many Raft groups cost while idle, in one process standing in for three nodes:
//! `cargo run --release -p cairn-raft --features testing --example idle_groups -- GROUPS
//! HEARTBEAT_MS ELECTION_MIN_MS ELECTION_MAX_MS IDLE_SECS`. Storage is in memory and the network
//! in process, so the figures are openraft's own cost (timers, heartbeats, replication tasks),
//! the floor under what real nodes will spend. Prints the time to elect every leader, the CPU
//! spent per second of idling (divided by three for a per-node figure), the memory per replica,
//! and the time to re-elect the leaders of one node after it is cut off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_raft::testing::mem_store::{MemLog, MemStateMachine};
use cairn_raft::testing::mem_transport::MemNetwork;
use cairn_raft::{GroupId, GroupNetwork, GroupRegistry, PartitionRaft, PeerNode};
use openraft::{Config, Raft, ServerState};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

type Groups = Vec<BTreeMap<u64, Raft<PartitionRaft>>>;

fn leaders(groups: &Groups) -> Vec<Option<u64>> {
    groups
        .iter()
        .map(|replicas| {
            replicas
                .iter()
                .find(|(_, r)| r.metrics().borrow().state == ServerState::Leader)
                .map(|(id, _)| *id)
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let group_count = arg(1, 1000);
    let heartbeat = arg(2, 250);
    let election_min = arg(3, 1000);
    let election_max = arg(4, 2000);
    let idle_secs = arg(5, 10);
    let config = Arc::new(
        Config {
            cluster_name: "idle".to_string(),
            heartbeat_interval: heartbeat,
            election_timeout_min: election_min,
            election_timeout_max: election_max,
            ..Config::default()
        }
        .validate()?,
    );
    let net = MemNetwork::new();
    let nodes: Vec<u64> = vec![1, 2, 3];
    let registries: BTreeMap<u64, Arc<GroupRegistry>> = nodes
        .iter()
        .map(|id| (*id, Arc::new(GroupRegistry::new())))
        .collect();
    for (id, registry) in &registries {
        net.add_node(*id, Arc::clone(registry));
    }
    let rss_before = rss_bytes();
    let started = Instant::now();
    let mut groups: Groups = Vec::new();
    for g in 1..=group_count {
        let mut replicas = BTreeMap::new();
        for id in &nodes {
            let raft = Raft::new(
                *id,
                Arc::clone(&config),
                GroupNetwork::new(net.transport(*id), GroupId(g)),
                MemLog::default(),
                MemStateMachine::default(),
            )
            .await?;
            registries[id].insert(GroupId(g), Arc::new(raft.clone()));
            replicas.insert(*id, raft);
        }
        groups.push(replicas);
    }
    let members: BTreeMap<u64, PeerNode> = nodes
        .iter()
        .map(|id| {
            (
                *id,
                PeerNode {
                    addr: format!("node-{id}"),
                },
            )
        })
        .collect();
    for (g, replicas) in groups.iter().enumerate() {
        // Spread the first leaders: each group is initialized on a different node.
        let first = nodes[g % nodes.len()];
        replicas[&first].initialize(members.clone()).await?;
    }
    loop {
        let elected = leaders(&groups).iter().filter(|l| l.is_some()).count();
        if elected == groups.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elect_all = started.elapsed();
    let rss_after = rss_bytes();
    let mut per_node = BTreeMap::new();
    for l in leaders(&groups).into_iter().flatten() {
        *per_node.entry(l).or_insert(0) += 1;
    }
    println!(
        "groups {group_count} x 3 replicas, heartbeat {heartbeat} ms, election {election_min}..{election_max} ms"
    );
    println!(
        "created and elected all in {:.2} s; leaders per node {per_node:?}",
        elect_all.as_secs_f64()
    );
    println!(
        "memory: {:.1} KiB per replica (RSS growth {:.1} MiB)",
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / (group_count * 3) as f64,
        (rss_after.saturating_sub(rss_before)) as f64 / 1048576.0
    );
    let calls_before = net.calls();
    let cpu_before = cpu_seconds();
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let wall = idle_start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "idle: {:.1}% of a core for the three nodes, {:.1}% per node; {:.0} calls/s",
        cpu / wall * 100.0,
        cpu / wall * 100.0 / 3.0,
        (net.calls() - calls_before) as f64 / wall
    );
    let victim = 1;
    let led_by_victim: Vec<usize> = leaders(&groups)
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == Some(victim))
        .map(|(i, _)| i)
        .collect();
    net.set_down(victim, true);
    let cut = Instant::now();
    loop {
        let now = leaders(&groups);
        let moved = led_by_victim
            .iter()
            .filter(|i| {
                groups[**i].iter().any(|(id, r)| {
                    *id != victim && r.metrics().borrow().state == ServerState::Leader
                }) && now[**i].is_some()
            })
            .count();
        if moved == led_by_victim.len() || cut.elapsed() > Duration::from_secs(120) {
            println!(
                "node {victim} cut off: {moved} of {} of its leaderships moved in {:.2} s",
                led_by_victim.len(),
                cut.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
