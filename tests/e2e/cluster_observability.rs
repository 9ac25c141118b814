//! What an operator sees of a three-node cluster through the real binary: `cairn cluster
//! describe --format json` names three alive nodes, one controller and every replica placed;
//! after one node is killed with SIGKILL, a survivor's describe shows it unreachable and the
//! survivors' `/metrics` show it down (`cairn_cluster_node_up{node="K"} 0`) with partitions
//! under-replicated, and once records are produced without it, a survivor reports it behind in
//! entries and in seconds, and every survivor leaves it out of each partition's in-sync
//! replicas, leader or not; once it is restarted, every node reports it up, no partition
//! under-replicated and no follower behind, and the controller state agrees across nodes (one
//! leader, the one every node names). A single node describes a cluster of one and its
//! `/metrics` has no `cairn_cluster_*` series.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::cluster::{Cluster, scrape_metrics, start_cluster};
use common::*;

const TOPIC: &str = "orders";

/// Replicas the metadata places: `orders` (3 partitions x 3) and the cluster's
/// `__consumer_offsets` (8 partitions x 3).
const REPLICAS_PLACED: u64 = 3 * 3 + 8 * 3;

/// The node killed and restarted.
const VICTIM: i32 = 3;

/// `cairn cluster describe --format json` through the node at `address` alone.
fn describe(address: &str) -> Option<Value> {
    let out = cli(address, &["cluster", "describe", "--format", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Every sample of the family `name` in a Prometheus text body: its labels (the text between
/// the braces) and value.
fn samples(body: &str, name: &str) -> Vec<(String, f64)> {
    let prefix = format!("{name}{{");
    body.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| {
            let (labels, value) = rest.split_once("} ").unwrap();
            (labels.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Each node's `state` in a describe answer, by node id.
fn states(described: &Value) -> Vec<(i64, String)> {
    described["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node_id"].as_i64().unwrap(),
                n["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Polls `check` every 200 ms until it holds, failing with `what` and the last value seen
/// after `PATIENCE`.
fn eventually<T: std::fmt::Debug>(
    cluster: &Cluster,
    what: &str,
    mut probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = probe();
        if check(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never; last seen {seen:?}; logs in {:?}",
            cluster.logs
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a describe answer names three alive nodes, a controller among them that is the one
/// node flagged as it, and every replica placed.
fn healthy(described: &Option<Value>) -> bool {
    let Some(d) = described else {
        return false;
    };
    let nodes = d["nodes"].as_array().unwrap();
    let controllers: Vec<i64> = nodes
        .iter()
        .filter(|n| n["is_controller"].as_bool().unwrap())
        .map(|n| n["node_id"].as_i64().unwrap())
        .collect();
    let replicas: u64 = nodes.iter().map(|n| n["replicas"].as_u64().unwrap()).sum();
    d["cluster_id"].as_str().is_some_and(|id| id.len() == 32)
        && states(d) == [1, 2, 3].map(|id| (id, "alive".to_string()))
        && d["controller_id"].as_i64().is_some()
        && controllers == [d["controller_id"].as_i64().unwrap()]
        && replicas == REPLICAS_PLACED
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_metrics_follow_a_node_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster: Cluster = start_cluster(dir.path(), 3);
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, 3, 3)
        .await;
    let first = cluster.addresses[0].clone();
    let described = eventually(
        &cluster,
        "describe shows 3 alive nodes, one controller, every replica",
        || describe(&first),
        healthy,
    )
    .unwrap();
    assert_eq!(described["answering_node_id"], 1, "{described}");
    let leaders: u64 = described["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["leaders"].as_u64().unwrap())
        .sum();
    assert!(leaders <= 11, "more leaders than partitions: {described}");

    cluster.kill(VICTIM);
    let victim_up = format!("cairn_cluster_node_up{{node=\"{VICTIM}\"}}");
    let survivors = [0usize, 1];
    eventually(
        &cluster,
        "describe from node 1 shows the killed node unreachable",
        || describe(&first).map(|d| states(&d)),
        |seen| {
            seen.as_deref()
                == Some(&[
                    (1, "alive".to_string()),
                    (2, "alive".to_string()),
                    (3, "unreachable".to_string()),
                ])
        },
    );
    let seen = eventually(
        &cluster,
        "every survivor reports the killed node down, and one of them some partition under-replicated",
        || {
            survivors
                .map(|i| {
                    let body = scrape_metrics(&cluster.http_addresses[i]).unwrap_or_default();
                    (
                        metric_sample(&body, &victim_up),
                        metric_sample(&body, "cairn_cluster_under_replicated_partitions"),
                    )
                })
                .to_vec()
        },
        |seen| {
            seen.iter().all(|(up, _)| *up == Some(0.0))
                && seen.iter().any(|(_, under)| under.is_some_and(|u| u > 0.0))
        },
    );
    eprintln!("survivors (node up, under-replicated): {seen:?}");

    // Records the killed node does not get: a survivor leading a partition of the topic sees
    // it fall behind, in entries and in time alike.
    produce_orders(&first, 0..200, 17);
    let victim_label = format!("follower=\"{VICTIM}\"");
    let behind = eventually(
        &cluster,
        "a survivor reports the killed node behind in entries and in seconds",
        || {
            survivors
                .iter()
                .flat_map(|i| {
                    let body = scrape_metrics(&cluster.http_addresses[*i]).unwrap_or_default();
                    let entries = samples(&body, "cairn_cluster_follower_lag_entries");
                    samples(&body, "cairn_cluster_follower_lag_seconds")
                        .into_iter()
                        .filter(|(labels, _)| labels.contains(&victim_label))
                        .map(|(labels, seconds)| {
                            let lacking =
                                entries.iter().find(|(l, _)| *l == labels).map(|(_, e)| *e);
                            (labels, lacking, seconds)
                        })
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        },
        |seen| {
            seen.iter().any(|(labels, lacking, seconds)| {
                labels.contains(&format!("topic=\"{TOPIC}\""))
                    && lacking.is_some_and(|e| e > 0.0)
                    && *seconds > 0.0
            })
        },
    );
    eprintln!("the killed node behind (series, entries, seconds): {behind:?}");
    // Every survivor, leader of a partition or not, leaves the killed node out of every
    // partition's in-sync replicas: a follower gives what the leader reported.
    for i in survivors {
        let address = cluster.addresses[i].clone();
        eventually(
            &cluster,
            &format!("node {} leaves the killed node out of every ISR", i + 1),
            || isr_sets(&address),
            |sets| {
                sets.as_ref().is_some_and(|sets| {
                    sets.len() == 3 && sets.iter().all(|isr| !isr.contains(&VICTIM))
                })
            },
        );
    }

    cluster.restart(VICTIM);
    for i in 0..3 {
        let http = cluster.http_addresses[i].clone();
        eventually(
            &cluster,
            &format!(
                "node {} reports every node up and nothing under-replicated",
                i + 1
            ),
            || {
                let body = scrape_metrics(&http).unwrap_or_default();
                (
                    [1, 2, 3].map(|n| {
                        metric_sample(&body, &format!("cairn_cluster_node_up{{node=\"{n}\"}}"))
                    }),
                    metric_sample(&body, "cairn_cluster_under_replicated_partitions"),
                    metric_sample(&body, "cairn_cluster_controller_leader"),
                    samples(&body, "cairn_cluster_follower_lag_seconds"),
                )
            },
            |(up, under, controller, lag_seconds)| {
                up.iter().all(|u| *u == Some(1.0))
                    && *under == Some(0.0)
                    && controller.is_some_and(|c| (1.0..=3.0).contains(&c))
                    && lag_seconds.iter().all(|(_, s)| *s == 0.0)
            },
        );
    }
    // The controller state agrees: every node names the same leader, that node alone says it
    // leads, and every node has a term and has applied metadata.
    let controller = eventually(
        &cluster,
        "one controller leader, named by every node, the only one in the leader role",
        || {
            (0..3)
                .map(|i| {
                    let body = scrape_metrics(&cluster.http_addresses[i]).unwrap_or_default();
                    (
                        metric_sample(&body, "cairn_cluster_controller_leader"),
                        metric_sample(&body, "cairn_cluster_controller_role{role=\"leader\"}"),
                        metric_sample(&body, "cairn_cluster_controller_term"),
                        metric_sample(&body, "cairn_cluster_controller_applied_index"),
                    )
                })
                .collect::<Vec<_>>()
        },
        |nodes| {
            let leader = nodes[0].0;
            let leading: Vec<usize> = (0..3).filter(|i| nodes[*i].1 == Some(1.0)).collect();
            leader.is_some_and(|l| l >= 1.0)
                && nodes.iter().all(|n| n.0 == leader)
                && leading.len() == 1
                && leader == Some((leading[0] + 1) as f64)
                && nodes
                    .iter()
                    .all(|n| n.2.is_some_and(|t| t >= 1.0) && n.3.is_some_and(|a| a >= 0.0))
        },
    );
    eprintln!("controller (leader, is leader, term, applied) by node: {controller:?}");
    eventually(
        &cluster,
        "describe from the restarted node shows the cluster whole again",
        || describe(&cluster.addresses[2]),
        healthy,
    );
    for i in 0..3 {
        let address = cluster.addresses[i].clone();
        eventually(
            &cluster,
            &format!("node {} names all three replicas in sync again", i + 1),
            || isr_sets(&address),
            |sets| {
                sets.as_ref()
                    .is_some_and(|sets| sets.len() == 3 && sets.iter().all(|isr| isr.len() == 3))
            },
        );
    }
}

/// Each partition's in-sync replicas of the topic as `cairn topic describe --format json`
/// through `address` gives them; `None` while it fails.
fn isr_sets(address: &str) -> Option<Vec<Vec<i32>>> {
    let out = cli(address, &["topic", "describe", TOPIC, "--format", "json"]);
    let described: Value = serde_json::from_slice(&out.stdout).ok()?;
    described["partitions"]
        .as_array()?
        .iter()
        .map(|p| {
            p["in_sync_replicas"].as_array().map(|isr| {
                isr.iter()
                    .filter_map(|n| n.as_i64())
                    .map(|n| n as i32)
                    .collect()
            })
        })
        .collect()
}

#[test]
fn a_single_node_describes_a_cluster_of_one_and_exports_no_cluster_series() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_on_free_ports(&dir.path().join("data"))
        .spawn()
        .unwrap();
    let ready = wait_ready(&mut child);
    let (broker, http) = (ready_field(&ready, "grpc="), ready_field(&ready, "http="));
    cli_ok(&broker, &["topic", "create", "orders", "--partitions", "2"]);
    let described: Value = serde_json::from_str(&cli_ok(
        &broker,
        &["cluster", "describe", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(described["cluster_id"], Value::Null, "{described}");
    assert_eq!(described["controller_id"], Value::Null, "{described}");
    assert_eq!(described["answering_node_id"], 1, "{described}");
    let nodes = described["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{described}");
    let node = &nodes[0];
    assert_eq!(node["address"], broker.as_str(), "{described}");
    assert_eq!(node["state"], "alive", "{described}");
    assert_eq!(node["is_controller"], false, "{described}");
    // Every partition of every topic: orders' 2 and whatever the node keeps for itself
    // (its local __consumer_offsets), each one replica and one leadership.
    let replicas = node["replicas"].as_u64().unwrap();
    assert!(replicas >= 2, "{described}");
    assert_eq!(node["leaders"].as_u64(), Some(replicas), "{described}");
    let text = cli_ok(&broker, &["cluster", "describe"]);
    assert!(
        text.starts_with("cluster (none), controller (none), as node 1 sees it\n"),
        "{text}"
    );
    let body = scrape_metrics(&http).unwrap();
    assert!(!body.contains("cairn_cluster_"), "{body}");
    stop_broker(child);
}
