//! The three-node Compose cluster, end to end: `deploy/docker/compose-cluster.yaml` started from
//! an image of the `cairn` binary under test comes up with every container healthy, takes a
//! topic with three replicas, acknowledges records with `acks=all` through the nodes' loopback
//! addresses, loses its controller node to `docker kill`, takes more records from the two
//! survivors, and gives back every acknowledged record exactly once.
//!
//! Needs a Docker engine and Compose, as the `docker compose` plugin or `docker-compose`.
//! Where either is missing the test says so loudly on stderr and passes. It moves the cluster
//! to free loopback ports and a project name of its own, and removes the containers, volumes
//! and image it made whether it passes or not.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Output, Stdio};

use common::docker::{Project, compose_or_skip, docker, wait_for};
use common::*;
use serde_json::Value;

const TOPIC: &str = "orders";

/// Records produced before the kill, and again after it: enough to reach every partition
/// many times over, few enough to keep the test short.
const RECORDS_PER_ROUND: usize = 300;

const COMPOSE_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/docker/compose-cluster.yaml"
);

/// `cairn produce orders` of `order-{i}` for `i` in `range`, keyed by customer, with
/// `acks=all`, through `brokers`; the command's output (it succeeds only if every record was
/// acknowledged).
fn produce(brokers: &str, range: std::ops::Range<usize>) -> Output {
    let input: String = range
        .map(|i| format!("customer-{}:order-{i}\n", i % 17))
        .collect();
    let mut child = cairn(&[
        "--broker",
        brokers,
        "produce",
        TOPIC,
        "--key-separator",
        ":",
        "--acks",
        "all",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every `order-{i}` value of the topic read from the earliest offset to the end, with how many
/// times each was read.
fn consume_counts(brokers: &str) -> BTreeMap<usize, usize> {
    let lines = consume_json_with_cli(brokers, TOPIC);
    let mut counts = BTreeMap::new();
    for line in lines.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let value = record["value"].as_str().unwrap();
        let i: usize = value.strip_prefix("order-").unwrap().parse().unwrap();
        *counts.entry(i).or_insert(0) += 1;
    }
    counts
}

#[test]
fn the_compose_cluster_keeps_every_acknowledged_record_when_a_container_is_killed() {
    let Some(program) = compose_or_skip("the Compose cluster test") else {
        return;
    };
    let project = Project::new(program, COMPOSE_FILE, "cairn-e2e-cluster", &[]);
    project.build_image();
    let containers = project.up_healthy();
    let all = project.all_addresses();

    // A topic created moments after start can meet a controller still forming: that refusal
    // is retriable, so retry it until the cluster takes the topic.
    wait_for("the cluster to take the topic", || {
        let out = cairn(&[
            "--broker",
            &all,
            "topic",
            "create",
            TOPIC,
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ])
        .output()
        .unwrap();
        out.status.success() || String::from_utf8_lossy(&out.stderr).contains("exists")
    });

    let first = produce(&all, 0..RECORDS_PER_ROUND);
    assert!(
        first.status.success(),
        "produce before the kill: {}",
        String::from_utf8_lossy(&first.stderr)
    );

    // Kill the controller's node: the metadata group and that node's partition leaderships
    // must both move.
    let described: Value =
        serde_json::from_str(&cli_ok(&all, &["cluster", "describe", "--format", "json"])).unwrap();
    let victim = usize::try_from(described["controller_id"].as_i64().unwrap()).unwrap();
    assert!((1..=3).contains(&victim), "{described}");
    let victim_container = &containers[victim - 1];
    eprintln!("killing node {victim} (the controller), container {victim_container}");
    let killed = docker(&["kill", victim_container]);
    assert!(killed.status.success(), "docker kill: {killed:?}");
    let running = docker(&[
        "inspect",
        "--format",
        "{{.State.Running}}",
        victim_container,
    ]);
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "false");

    let survivors = (1..=3)
        .filter(|n| *n != victim)
        .map(|n| project.address(n))
        .collect::<Vec<_>>()
        .join(",");
    let second = produce(&survivors, RECORDS_PER_ROUND..2 * RECORDS_PER_ROUND);
    assert!(
        second.status.success(),
        "produce after the kill: {}",
        String::from_utf8_lossy(&second.stderr)
    );

    let counts = consume_counts(&all);
    let missing: Vec<usize> = (0..2 * RECORDS_PER_ROUND)
        .filter(|i| !counts.contains_key(i))
        .collect();
    let repeated: Vec<(usize, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, n)| (*i, *n))
        .collect();
    assert!(missing.is_empty(), "acknowledged records lost: {missing:?}");
    assert!(repeated.is_empty(), "records read twice: {repeated:?}");
    assert_eq!(
        counts.len(),
        2 * RECORDS_PER_ROUND,
        "records never produced"
    );
}
