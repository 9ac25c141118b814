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
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

const SERVICES: [&str; 3] = ["cairn-1", "cairn-2", "cairn-3"];

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The Compose command this machine has: the `docker compose` plugin, else the standalone
/// `docker-compose`; `None` when neither runs.
fn compose_program() -> Option<Vec<&'static str>> {
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .find(|program| {
            Command::new(program[0])
                .args(&program[1..])
                .arg("version")
                .output()
                .is_ok_and(|out| out.status.success())
        })
}

/// One Compose project of the cluster file, and what the test made for it. Dropping it takes
/// the project down with its volumes and removes the image, whether the test passed or not.
struct Project {
    program: Vec<&'static str>,
    name: String,
    image: String,
    /// The Compose file's variables: the image and the six loopback ports.
    env: Vec<(String, String)>,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        let (program, pre) = self.program.split_first().unwrap();
        Command::new(program)
            .args(pre)
            .args(["--project-name", &self.name, "--file", COMPOSE_FILE])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The container id of `service`.
    fn container(&self, service: &str) -> String {
        let id = self.compose_ok(&["ps", "-q", service]);
        assert!(!id.is_empty(), "compose has no container for {service}");
        id
    }

    /// The variable's value, as given to Compose.
    fn var(&self, key: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == key).unwrap().1
    }

    /// Node `node`'s gRPC address on the host.
    fn address(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.var(&format!("CAIRN_PORT_{node}")))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if thread::panicking() {
            // The nodes' logs are the evidence; print them before they go.
            let logs = self.compose(&["logs", "--no-color", "--tail", "60"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let down = self.compose(&["down", "--volumes", "--timeout", "10"]);
        if !down.status.success() {
            eprintln!(
                "compose down failed; remove project {} by hand: {}",
                self.name,
                String::from_utf8_lossy(&down.stderr)
            );
        }
        let _ = docker(&["rmi", "--force", &self.image]);
    }
}

/// Six ports free on the loopback now. The cluster binds them moments later; another process
/// taking one in between fails the start loudly rather than silently.
fn free_ports() -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..6)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn wait_for(project: &Project, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} (project {})",
            project.name
        );
        thread::sleep(Duration::from_millis(250));
    }
}

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
    if !engine_answers() {
        eprintln!(
            "\n*** SKIPPED the Compose cluster test: no Docker engine answers `docker info` here. ***\n"
        );
        return;
    }
    let Some(program) = compose_program() else {
        eprintln!(
            "\n*** SKIPPED the Compose cluster test: neither `docker compose` nor `docker-compose` runs here. ***\n"
        );
        return;
    };
    // Unique across CI jobs that share one engine but not a PID namespace.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let id = format!("{}-{nanos:x}", std::process::id());
    let image = format!("cairn-e2e-cluster:{id}");
    let ports = free_ports();
    let mut env = vec![("CAIRN_IMAGE".to_string(), image.clone())];
    for node in 1..=3 {
        let (grpc, http) = (ports[2 * (node - 1)], ports[2 * (node - 1) + 1]);
        env.push((format!("CAIRN_PORT_{node}"), grpc.to_string()));
        env.push((format!("CAIRN_HTTP_PORT_{node}"), http.to_string()));
    }
    let project = Project {
        program,
        name: format!("cairn-e2e-cluster-{id}"),
        image,
        env,
    };

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/docker/build-image.sh"
    );
    let built = Command::new(script)
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_cairn"),
            "--tag",
            &project.image,
        ])
        .output()
        .unwrap();
    assert!(built.status.success(), "build-image.sh: {built:?}");

    project.compose_ok(&["up", "--detach"]);
    let containers: Vec<String> = SERVICES.iter().map(|s| project.container(s)).collect();
    for (service, container) in SERVICES.iter().zip(&containers) {
        wait_for(
            &project,
            &format!("docker to report {service} healthy"),
            || {
                let health =
                    docker(&["inspect", "--format", "{{.State.Health.Status}}", container]);
                String::from_utf8_lossy(&health.stdout).trim() == "healthy"
            },
        );
    }
    let all = (1..=3)
        .map(|n| project.address(n))
        .collect::<Vec<_>>()
        .join(",");

    // A topic created moments after start can meet a controller still forming: that refusal
    // is retriable, so retry it until the cluster takes the topic.
    wait_for(&project, "the cluster to take the topic", || {
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
