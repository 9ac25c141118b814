//! A cluster of real `cairn serve` processes on loopback: N nodes started with `--peers` on free
//! ports, each logging to a file in the test's directory, killed when the test ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ports::free_address;
use super::{PATIENCE, cairn, send, wait_ready};
use cairn_client::{Consumer, OutgoingRecord, Producer, ProducerConfig, Seek};

/// The nodes of a running cluster. Dropping it SIGKILLs every node still running.
pub struct Cluster {
    /// Node `i + 1`'s process, `None` once killed.
    pub nodes: Vec<Option<Child>>,
    /// Node `i + 1`'s gRPC address, `host:port`.
    pub addresses: Vec<String>,
    /// Node `i + 1`'s HTTP address (`/metrics`, `/health`), `host:port`.
    pub http_addresses: Vec<String>,
    /// Where node `i + 1` logs.
    pub logs: Vec<PathBuf>,
    /// Node `i + 1`'s `serve` arguments, to restart it as it was.
    args: Vec<Vec<String>>,
    /// Node `i + 1`'s network namespace, when it runs in one (`common::netns`).
    namespaces: Vec<Option<String>>,
}

/// Starts `count` nodes (ids 1 to `count`) of one cluster over `dir`, and waits until each
/// prints its ready line. The cluster itself forms in the background: see
/// [`Cluster::wait_for_leaders`].
pub fn start_cluster(dir: &Path, count: usize) -> Cluster {
    start_cluster_advertising(dir, count, |_| None)
}

/// [`start_cluster`], with node `i + 1` started with `--advertised-address advertise(its
/// listening address)` where that gives one.
pub fn start_cluster_advertising(
    dir: &Path,
    count: usize,
    advertise: impl Fn(&str) -> Option<String>,
) -> Cluster {
    let addresses: Vec<String> = (0..count).map(|_| free_address()).collect();
    let http: Vec<String> = (0..count).map(|_| free_address()).collect();
    let extra = addresses
        .iter()
        .map(|a| {
            advertise(a)
                .map(|to| vec!["--advertised-address".to_string(), to])
                .unwrap_or_default()
        })
        .collect();
    start_nodes(dir, addresses, http, vec![None; count], extra)
}

/// [`start_cluster`], with `extra` appended to every node's `serve` arguments (e.g.
/// `["--leader-balance-interval-ms", "500"]`).
pub fn start_cluster_with(dir: &Path, count: usize, extra: &[&str]) -> Cluster {
    let addresses: Vec<String> = (0..count).map(|_| free_address()).collect();
    let http: Vec<String> = (0..count).map(|_| free_address()).collect();
    let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    start_nodes(dir, addresses, http, vec![None; count], vec![extra; count])
}

/// Starts one node per host of `net` (ids 1 to its node count), each in its own namespace and
/// listening on its own address there.
pub fn start_cluster_in(dir: &Path, net: &super::netns::TestNet, count: usize) -> Cluster {
    let addresses = (1..=count).map(|n| format!("{}:7070", net.ip(n))).collect();
    let http = (1..=count).map(|n| format!("{}:7071", net.ip(n))).collect();
    let namespaces = (1..=count).map(|n| Some(net.namespace(n))).collect();
    // The namespaces' addresses are not loopback: plaintext there must be asked for.
    let plaintext = vec!["--allow-plaintext".to_string()];
    start_nodes(dir, addresses, http, namespaces, vec![plaintext; count])
}

fn start_nodes(
    dir: &Path,
    addresses: Vec<String>,
    http: Vec<String>,
    namespaces: Vec<Option<String>>,
    extra_args: Vec<Vec<String>>,
) -> Cluster {
    let peers: Vec<String> = addresses
        .iter()
        .enumerate()
        .map(|(i, address)| format!("{}={address}", i + 1))
        .collect();
    let peers = peers.join(",");
    let mut cluster = Cluster {
        nodes: Vec::new(),
        addresses: addresses.clone(),
        http_addresses: http.clone(),
        logs: Vec::new(),
        args: Vec::new(),
        namespaces: namespaces.clone(),
    };
    for (i, address) in addresses.iter().enumerate() {
        let node_id = (i + 1).to_string();
        let data_dir = dir.join(format!("node-{node_id}"));
        let log = dir.join(format!("node-{node_id}.log"));
        let args: Vec<String> = [
            "serve",
            "--node-id",
            &node_id,
            "--peers",
            &peers,
            "--grpc-addr",
            address,
            "--http-addr",
            &http[i],
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(extra_args[i].iter().cloned())
        .chain(serve_args_from_env())
        .collect();
        let child = spawn_node(&args, &log, namespaces[i].as_deref(), &[]);
        cluster.nodes.push(Some(child));
        cluster.logs.push(log);
        cluster.args.push(args);
    }
    cluster
}

/// Extra `serve` arguments for every node of every cluster from `CAIRN_TEST_SERVE_ARGS`
/// (whitespace-separated), to rerun a test under other settings without editing it, e.g.
/// `CAIRN_TEST_SERVE_ARGS="--leader-balance-interval-ms 200"`.
fn serve_args_from_env() -> Vec<String> {
    std::env::var("CAIRN_TEST_SERVE_ARGS")
        .map(|args| args.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Starts one node with `args` (in namespace `namespace`, if any, and under `wrapper`, a
/// program and its arguments that run the binary, such as `fiu-run -x`), appending its log to
/// `log`, and waits for its ready line.
fn spawn_node(args: &[String], log: &Path, namespace: Option<&str>, wrapper: &[&str]) -> Child {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = match (namespace, wrapper) {
        (None, []) => cairn(&args),
        // `ip netns exec` and the wrappers replace themselves with the program: the child's
        // pid is the node's.
        _ => {
            let mut line: Vec<&str> = Vec::new();
            if let Some(ns) = namespace {
                line.extend(["netns", "exec", ns]);
            }
            line.extend(wrapper);
            line.push(env!("CARGO_BIN_EXE_cairn"));
            line.extend(&args);
            let (program, rest) = match namespace {
                Some(_) => (super::netns::ip_program(), &line[..]),
                None => (line[0], &line[1..]),
            };
            let mut command = std::process::Command::new(program);
            command.args(rest).env_clear();
            command
        }
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    command
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log);
    let mut child = command.spawn().unwrap();
    wait_ready(&mut child);
    child
}

impl Cluster {
    /// Every node's address, comma-separated, the one at `first` (0-based) first.
    pub fn bootstrap_from(&self, first: usize) -> String {
        let mut list = vec![self.addresses[first].clone()];
        list.extend(
            self.addresses
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != first)
                .map(|(_, a)| a.clone()),
        );
        list.join(",")
    }

    /// Starts one more node (the next id) on loopback with `--join` and a `--peers` list of
    /// every node so far plus itself, data under `dir`, and waits for its ready line; returns
    /// its id. It stays outside the cluster until `cairn cluster add-node` brings it in.
    pub fn start_joining_node(&mut self, dir: &Path) -> i32 {
        self.start_joining_node_with(dir, &[])
    }

    /// [`Cluster::start_joining_node`], with `extra` appended to its `serve` arguments (e.g. its
    /// own TLS files).
    pub fn start_joining_node_with(&mut self, dir: &Path, extra: &[String]) -> i32 {
        let node_id = self.nodes.len() + 1;
        let address = free_address();
        let http = free_address();
        let mut peers: Vec<String> = self
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        peers.push(format!("{node_id}={address}"));
        let data_dir = dir.join(format!("node-{node_id}"));
        let log = dir.join(format!("node-{node_id}.log"));
        let args: Vec<String> = [
            "serve",
            "--node-id",
            &node_id.to_string(),
            "--peers",
            &peers.join(","),
            "--join",
            "--grpc-addr",
            &address,
            "--http-addr",
            &http,
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(extra.iter().cloned())
        .collect();
        let child = spawn_node(&args, &log, None, &[]);
        self.nodes.push(Some(child));
        self.addresses.push(address);
        self.http_addresses.push(http);
        self.logs.push(log);
        self.args.push(args);
        self.namespaces.push(None);
        i32::try_from(node_id).unwrap()
    }

    /// Whether node `node` (1-based) is running (not killed; a paused node counts).
    pub fn is_running(&self, node: usize) -> bool {
        self.nodes.get(node - 1).is_some_and(Option::is_some)
    }

    /// Starts node `node_id` (1-based) again as it was, over its data, after [`Cluster::kill`].
    pub fn restart(&mut self, node_id: i32) {
        self.restart_wrapped(node_id, &[]);
    }

    /// As [`Cluster::restart`], with the binary run by `wrapper` (e.g. `["fiu-run", "-x"]`,
    /// `["faketime", "+2h"]`; absolute paths, as the environment is cleared).
    pub fn restart_wrapped(&mut self, node_id: i32, wrapper: &[&str]) {
        let index = usize::try_from(node_id - 1).unwrap();
        assert!(self.nodes[index].is_none(), "node {node_id} is running");
        let child = spawn_node(
            &self.args[index],
            &self.logs[index],
            self.namespaces[index].as_deref(),
            wrapper,
        );
        self.nodes[index] = Some(child);
    }

    /// Node `node_id`'s process id while it runs.
    pub fn pid(&self, node_id: i32) -> Option<u32> {
        let index = usize::try_from(node_id - 1).ok()?;
        self.nodes.get(index)?.as_ref().map(Child::id)
    }

    /// SIGSTOPs node `node_id` (1-based): it holds its sockets and answers nothing.
    pub fn pause(&self, node_id: i32) {
        let index = usize::try_from(node_id - 1).unwrap();
        if let Some(child) = &self.nodes[index] {
            send(child, libc::SIGSTOP);
        }
    }

    /// SIGCONTs node `node_id` (1-based) after [`Cluster::pause`].
    pub fn resume(&self, node_id: i32) {
        let index = usize::try_from(node_id - 1).unwrap();
        if let Some(child) = &self.nodes[index] {
            send(child, libc::SIGCONT);
        }
    }

    /// SIGTERMs node `node_id` (1-based), a clean stop (a node in a cluster hands its
    /// leaderships over first), and waits for it to exit without blocking the runtime; returns
    /// its exit status. A node still running after [`PATIENCE`] is SIGKILLed and fails the test.
    pub async fn stop(&mut self, node_id: i32) -> std::process::ExitStatus {
        let index = usize::try_from(node_id - 1).unwrap();
        let mut child = self.nodes[index].take().expect("the node is running");
        send(&child, libc::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {node_id} did not exit after SIGTERM; log in {:?}",
                    self.logs[index]
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Node `node_id`'s (1-based) `/metrics` body, or `None` while it does not answer.
    pub fn metrics(&self, node_id: i32) -> Option<String> {
        let index = usize::try_from(node_id - 1).ok()?;
        scrape_metrics(self.http_addresses.get(index)?)
    }

    /// Waits until every node runs and each one's `/metrics` reports every node up, no
    /// partition under-replicated or without a leader, and a controller leader, and the nodes
    /// together lead `groups` partition groups (every one: a node killed and restarted at once
    /// leads nothing, although its peers may not have noticed it was gone). The cluster is
    /// whole again then; a restarted node has caught up.
    pub async fn wait_healthy(&self, groups: usize) {
        let deadline = Instant::now() + PATIENCE;
        let count = self.nodes.len();
        loop {
            let bodies: Vec<Option<String>> = (1..=count)
                .map(|node| {
                    self.is_running(node)
                        .then(|| self.metrics(i32::try_from(node).unwrap()))
                        .flatten()
                })
                .collect();
            let led: f64 = bodies
                .iter()
                .flatten()
                .filter_map(|body| super::metric_sample(body, "cairn_cluster_leaders"))
                .sum();
            let healthy = bodies
                .iter()
                .all(|body| body.as_deref().is_some_and(|body| whole(body, count)))
                && led == groups as f64;
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become whole again; logs in {:?}",
                self.logs
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs node `node_id` (1-based).
    pub fn kill(&mut self, node_id: i32) {
        let index = usize::try_from(node_id - 1).unwrap();
        if let Some(mut child) = self.nodes[index].take() {
            send(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Creates `topic` through the node at `address` once the cluster has formed (retrying
    /// while the controller has no majority yet), then waits until every partition has a
    /// leader, and returns each partition's leader id.
    pub async fn create_topic(
        &self,
        address: &str,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> Vec<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let created = match cairn_client::Admin::connect(address).await {
                Ok(admin) => {
                    admin
                        .create_topic(topic, partitions, replication_factor, Default::default())
                        .await
                }
                Err(err) => Err(err),
            };
            match created {
                Ok(_) => break,
                Err(err) if err.code() == Some(cairn_client::ErrorCode::TopicAlreadyExists) => {
                    break;
                }
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "the cluster never took the topic: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        self.wait_for_leaders(address, topic).await
    }

    /// Waits until the metadata (as the node at `address` sees it) names a leader for every
    /// partition of `topic` that is a node still running; returns the leader ids.
    pub async fn wait_for_leaders(&self, address: &str, topic: &str) -> Vec<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(admin) = cairn_client::Admin::connect(address).await
                && let Ok(metadata) = admin.metadata(&[topic.to_string()]).await
                && let Some(found) = metadata.topics.iter().find(|t| t.name == topic)
            {
                let leaders: Vec<i32> = found.partitions.iter().map(|p| p.leader_id).collect();
                let alive = |id: i32| {
                    usize::try_from(id - 1)
                        .ok()
                        .and_then(|i| self.nodes.get(i))
                        .is_some_and(Option::is_some)
                };
                if !leaders.is_empty() && leaders.iter().all(|&id| alive(id)) {
                    return leaders;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader for every partition of {topic}; logs in {:?}",
                self.logs
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether a node's `/metrics` body shows a whole cluster of `count` nodes: every node up,
/// nothing under-replicated or leaderless, a controller leader known.
fn whole(body: &str, count: usize) -> bool {
    let sample = |series: &str| super::metric_sample(body, series);
    (1..=count).all(|n| sample(&format!("cairn_cluster_node_up{{node=\"{n}\"}}")) == Some(1.0))
        && sample("cairn_cluster_under_replicated_partitions") == Some(0.0)
        && sample("cairn_cluster_offline_partitions") == Some(0.0)
        && sample("cairn_cluster_controller_leader").is_some_and(|c| c >= 1.0)
}

/// `GET /metrics` of the node whose HTTP address is `http`, or `None` while it does not
/// answer with 200.
pub fn scrape_metrics(http: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Every record of `topic` as `(partition, offset, value)`, read from the node list `brokers`
/// until each partition's high watermark (looked up first).
pub async fn consume_all(brokers: &str, topic: &str) -> Vec<(i32, i64, String)> {
    let mut consumer = Consumer::assign(brokers, topic, &[], Seek::Earliest)
        .await
        .unwrap();
    let ends = consumer.list_offsets(&[], Seek::Latest).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut records = Vec::new();
    while consumer
        .positions()
        .iter()
        .any(|(p, position)| position < ends.get(p).unwrap())
    {
        assert!(
            Instant::now() < deadline,
            "consuming never reached {ends:?}"
        );
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            records.push((record.partition, record.offset, value));
        }
    }
    records
}

/// A producer writing `v0`, `v1`, ... round-robin over three partitions of `topic` until stopped; returns
/// what was acknowledged (value -> partition, offset) and how many sends failed.
pub async fn spawn_producer(
    brokers: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(BTreeMap<String, (i32, i64)>, usize, usize)> {
    // Connected (its producer id taken) before any fault starts.
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut deliveries = Vec::new();
        let mut refused = 0;
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let record = OutgoingRecord {
                partition: Some(i32::try_from(i % 3).unwrap()),
                ..OutgoingRecord::keyed(format!("k{i}"), format!("v{i}"))
            };
            match producer.send(topic, record).await {
                Ok(delivery) => deliveries.push((i, delivery)),
                // Not taken (e.g. no node answered a metadata lookup): not acknowledged either.
                Err(_) => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            i += 1;
            if i.is_multiple_of(20) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let _ = producer.flush().await;
        let mut acknowledged = BTreeMap::new();
        let mut failed = refused;
        // Why deliveries failed, by error code, for the run's printout: a definite refusal
        // (a producer or topic the answering node did not know) reads differently from a
        // timeout whose outcome is unknown.
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (i, delivery) in deliveries {
            match delivery.await {
                Ok(placement) => {
                    acknowledged.insert(format!("v{i}"), (placement.partition, placement.offset));
                }
                Err(error) => {
                    failed += 1;
                    let kind = match error.code() {
                        Some(code) => format!("{code:?}"),
                        None => error.to_string().chars().take(40).collect(),
                    };
                    let reason = format!("{kind} (outcome unknown: {})", error.outcome_unknown());
                    *reasons.entry(reason).or_default() += 1;
                }
            }
        }
        if !reasons.is_empty() || refused > 0 {
            println!("sends refused before queuing: {refused}; deliveries failed: {reasons:?}");
        }
        (acknowledged, failed, i)
    })
}

/// Checks every acknowledged record is read exactly once where it was acknowledged; returns
/// (lost, duplicates). A record read away from where it was acknowledged fails the test with
/// every offset its value was read at.
pub fn tally(
    acknowledged: &BTreeMap<String, (i32, i64)>,
    records: &[(i32, i64, String)],
) -> (usize, usize) {
    tally_with(acknowledged, records, |_, _| String::new())
}

/// [`tally`] over a cluster in `dir` (nodes 1 to `nodes`) holding `topic`: a failure also
/// names, for each misplaced value, every batch of every copy that holds it (term, producer
/// id, epoch and sequence), and every duplicate is printed the same way.
pub fn tally_in(
    dir: &Path,
    topic: &str,
    nodes: usize,
    acknowledged: &BTreeMap<String, (i32, i64)>,
    records: &[(i32, i64, String)],
) -> (usize, usize) {
    tally_with(acknowledged, records, |partition, value| {
        super::placement::describe_placements(dir, topic, nodes, partition, value)
    })
}

/// Values printed in full when a run finds more duplicates than this.
const DUPLICATES_DESCRIBED: usize = 10;

fn tally_with(
    acknowledged: &BTreeMap<String, (i32, i64)>,
    records: &[(i32, i64, String)],
    describe: impl Fn(i32, &str) -> String,
) -> (usize, usize) {
    let mut seen: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (partition, offset, value) in records {
        seen.entry(value.as_str())
            .or_default()
            .push((*partition, *offset));
    }
    let mut report = String::new();
    let mut misplaced = 0;
    let mut duplicates_described = 0;
    for (value, at) in &seen {
        let acked = acknowledged.get(*value);
        let away = acked.is_some_and(|a| at.iter().any(|r| r != a));
        let duplicated = at.len() > 1 && duplicates_described < DUPLICATES_DESCRIBED;
        misplaced += usize::from(away);
        duplicates_described += usize::from(duplicated);
        if away || duplicated {
            let _ = std::fmt::Write::write_fmt(
                &mut report,
                format_args!(
                    "{value}: acknowledged at {acked:?}, read at {at:?}\n{}",
                    describe(at[0].0, value)
                ),
            );
        }
    }
    if !report.is_empty() {
        println!("placements of misplaced or duplicated records:\n{report}");
    }
    assert_eq!(
        misplaced, 0,
        "{misplaced} records read away from where they were acknowledged:\n{report}"
    );
    let lost = acknowledged
        .keys()
        .filter(|v| !seen.contains_key(v.as_str()))
        .count();
    let duplicates = seen.values().map(|at| at.len() - 1).sum();
    (lost, duplicates)
}

/// The bytes of every `.log` segment of partition `partition`'s copy on node `node`, in order.
pub fn replica_bytes(dir: &Path, topic: &str, node: usize, partition: i32) -> Vec<u8> {
    let replicas = dir.join(format!("node-{node}")).join("replicas");
    let Ok(entries) = std::fs::read_dir(&replicas) else {
        return Vec::new();
    };
    let prefix = format!("{topic}-{partition}.g");
    let mut bytes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A copy given up is renamed `<name>.<n>.deleting` and freed in the background.
        if !name.starts_with(&prefix) || name.ends_with(".deleting") {
            continue;
        }
        let mut segments: Vec<_> = std::fs::read_dir(entry.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        segments.sort();
        for segment in segments {
            let data = std::fs::read(segment).unwrap();
            bytes.extend_from_slice(&data[..super::segment_data_end(&data)]);
        }
    }
    bytes
}

/// Waits until every partition of `topic`'s three copies hold the same bytes (followers catch up within
/// moments once nothing is being written).
pub async fn wait_replicas_agree(dir: &Path, topic: &str, partitions: i32) {
    wait_copies_agree(dir, topic, partitions, &[1, 2, 3]).await;
}

/// [`wait_replicas_agree`] over the copies of nodes `nodes`.
pub async fn wait_copies_agree(dir: &Path, topic: &str, partitions: i32, nodes: &[usize]) {
    let deadline = Instant::now() + PATIENCE;
    for partition in 0..partitions {
        loop {
            let copies: Vec<Vec<u8>> = nodes
                .iter()
                .map(|n| replica_bytes(dir, topic, *n, partition))
                .collect();
            if !copies[0].is_empty() && copies.iter().all(|c| c == &copies[0]) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {partition}'s replicas differ: {:?} bytes",
                copies.iter().map(Vec::len).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A tiny deterministic generator, so a seed repeats a fault loop's choices exactly.
pub struct Rng(pub u64);

impl Rng {
    /// The next number (xorshift64).
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A fault loop's seed and round count: `CAIRN_FAULT_SEED` and `CAIRN_FAULT_ROUNDS` when set,
/// else the defaults given.
pub fn fault_seed_and_rounds(default_seed: u64, default_rounds: usize) -> (u64, usize) {
    let seed = std::env::var("CAIRN_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    let rounds = std::env::var("CAIRN_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_rounds);
    (seed, rounds)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().filter_map(Option::take) {
            let mut child = child;
            // A paused node must be woken to die promptly.
            send(&child, libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            keep_logs(&self.logs);
        }
    }
}

/// Copies a failed test's node logs out of its temporary directory, which is removed right
/// after the cluster: a failure message that names them would otherwise point at nothing.
fn keep_logs(logs: &[PathBuf]) {
    let kept = std::env::temp_dir().join(format!(
        "cairn-e2e-failed-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    if std::fs::create_dir_all(&kept).is_err() {
        return;
    }
    for log in logs {
        if let Some(name) = log.file_name() {
            let _ = std::fs::copy(log, kept.join(name));
        }
    }
    eprintln!("the failed test's node logs are kept in {}", kept.display());
}
