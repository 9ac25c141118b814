//! The node's cluster machinery once it runs with peers: the controller group, the Raft
//! settings every group shares, and the tasks that keep the node in line with the committed
//! metadata: the bootstrap proposal, the reconcile loop that hosts this node's share of the
//! partitions, and the leader reports that keep the metadata's leaders current.
//!
//! Reconciling is level-triggered: each new metadata version is compared with what the node
//! holds, so a restart, a missed action or a snapshot install all converge the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_controller::{Command, ControllerError, PeerSpec};
use cairn_log::{Clock, LogConfig};
use cairn_raft::{CairnLogStorage, GroupRegistry, PeerTransport, RaftLog};
use openraft::{Config, SnapshotPolicy};
use tokio::sync::mpsc;

use super::controller::{ClusterError, Controller};
use super::controller_sm::ControllerRaft;
use super::directory::MetadataDirectory;
use crate::broker::Broker;
use crate::cluster_spec::ClusterSpec;
use crate::error::BrokerError;
use crate::partition::{GroupContext, LeaderReport};
use crate::topic_name::CONSUMER_OFFSETS_TOPIC;

/// Where the controller group's log lives in the data directory.
pub const METADATA_LOG_DIR: &str = "cluster/metadata";
/// Where this node's partition replicas live in the data directory (one directory per group,
/// so a topic deleted and created again never meets its old files).
pub const REPLICAS_DIR: &str = "replicas";

/// How long an admin call waits for the controller to commit its command.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The node's cluster machinery.
pub struct ClusterRuntime {
    pub(crate) spec: ClusterSpec,
    pub(crate) controller: Controller,
    pub(crate) ctx: GroupContext,
    pub(crate) directory: Arc<MetadataDirectory>,
    /// The node's data directory (for `node.meta`).
    data_dir: std::path::PathBuf,
    /// The producer-id block this node hands ids out of: (next, end).
    producer_ids: tokio::sync::Mutex<(u64, u64)>,
}

/// Longest a produce waits for this node's metadata to show its producer id's allocation.
const PRODUCER_ID_CATCH_UP: Duration = Duration::from_secs(2);

/// Producer ids a node takes from the controller at a time.
const PRODUCER_ID_BLOCK_LEN: u64 = 1_000;

impl std::fmt::Debug for ClusterRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRuntime")
            .field("node", &self.spec.node_id())
            .finish_non_exhaustive()
    }
}

/// The openraft settings of every group on this node, from the spec's timings. Snapshots are
/// never taken on a schedule: a partition's log is its own history (retention, not Raft,
/// decides what goes: each replica snapshots and purges only as far as retention wants, see
/// `partition::replicated`), and the controller's log is small.
fn raft_config(spec: &ClusterSpec, name: &str) -> Result<Config, BrokerError> {
    let timings = spec.timings();
    Config {
        cluster_name: name.to_string(),
        heartbeat_interval: timings.heartbeat_ms(),
        election_timeout_min: timings.election_timeout_min_ms(),
        election_timeout_max: timings.election_timeout_max_ms(),
        snapshot_policy: SnapshotPolicy::Never,
        // A restarted follower is caught up from the log, never by a snapshot while the
        // leader still holds the entries.
        max_in_snapshot_log_to_keep: u64::MAX,
        ..Config::default()
    }
    .validate()
    .map_err(|e| BrokerError::InvalidRequest(format!("raft settings: {e}")))
}

/// Entries the controller's log takes between two snapshots: leader reports are most of them
/// (one per election of any partition), so a cluster with many partitions snapshots every few
/// elections' worth of them rather than replaying its whole history at each start.
const CONTROLLER_SNAPSHOT_EVERY: u64 = 1024;

/// Entries kept behind the controller's snapshot, so a node that was down briefly catches up
/// from the log rather than by the whole metadata.
const CONTROLLER_ENTRIES_KEPT: u64 = 1024;

/// The controller group's openraft settings: the partitions' timings, but snapshots every
/// [`CONTROLLER_SNAPSHOT_EVERY`] entries (saved to disk by its state machine) and the log purged
/// behind them.
fn controller_raft_config(spec: &ClusterSpec) -> Result<Config, BrokerError> {
    Config {
        snapshot_policy: SnapshotPolicy::LogsSinceLast(CONTROLLER_SNAPSHOT_EVERY),
        max_in_snapshot_log_to_keep: CONTROLLER_ENTRIES_KEPT,
        ..raft_config(spec, "controller")?
    }
    .validate()
    .map_err(|e| BrokerError::InvalidRequest(format!("raft settings: {e}")))
}

/// The metadata log's settings: small segments, and every segment Raft has purged deleted
/// (retention by size with a limit of 0; the entry floor keeps what Raft has not purged).
pub(super) fn metadata_log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        retention_bytes: Some(0),
        retention_ms: None,
        ..LogConfig::default()
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A fresh cluster id: 16 random bytes as hex. Every node proposes one at start; the first to
/// commit wins and the others' are refused as a mismatch, which is expected.
fn fresh_cluster_id() -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if filled.is_err() {
        // No /dev/urandom: time and pid are unique enough to tell clusters apart.
        let seed = now_ms() as u64 ^ (u64::from(std::process::id()) << 32);
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterRuntime {
    /// Starts the controller group member of this node over its metadata log and the tasks
    /// that follow the metadata. `broker` is held weakly: the tasks end with it.
    ///
    /// # Errors
    /// The metadata log's open errors; openraft's start errors.
    pub(crate) async fn start(
        broker: &Arc<Broker>,
        spec: ClusterSpec,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn PeerTransport>,
        registry: Arc<GroupRegistry>,
    ) -> Result<Arc<ClusterRuntime>, BrokerError> {
        let me = spec.node_id();
        let dir = broker.cfg.data_dir.join(METADATA_LOG_DIR);
        let open_clock = Arc::clone(&clock);
        let snapshot_dir = dir.clone();
        let metadata_log = crate::broker::blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| BrokerError::io("create metadata log directory", &dir, e))?;
            RaftLog::open(&dir, metadata_log_config(), open_clock)
                .map_err(|e| BrokerError::InvalidRequest(format!("metadata log: {e}")))
        })
        .await?;
        let controller_config = Arc::new(controller_raft_config(&spec)?);
        let partition_config = Arc::new(raft_config(&spec, "partitions")?);
        let no_peers = BTreeMap::new();
        let initial_members = if spec.joins_existing_cluster() {
            &no_peers
        } else {
            spec.peers()
        };
        let (controller, _events) = Controller::start(
            me,
            initial_members,
            controller_config,
            Arc::clone(&transport),
            &registry,
            CairnLogStorage::<ControllerRaft>::new(metadata_log),
            Some(snapshot_dir),
        )
        .await
        .map_err(cluster_error)?;
        let directory = Arc::new(MetadataDirectory::new(controller.subscribe()));
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let held: super::liveness::HeldGroups = Arc::default();
        let reachability = super::liveness::PeerReachability::default();
        let timings = spec.timings();
        tokio::spawn(super::liveness::run(
            me,
            spec.peers().keys().copied().collect(),
            controller.subscribe(),
            Arc::clone(&transport),
            Arc::clone(&held),
            reachability.clone(),
            super::liveness::LivenessTimings {
                probe_every: Duration::from_millis(timings.heartbeat_ms()),
                dead_after: Duration::from_millis(timings.election_timeout_min_ms()),
                lease: Duration::from_millis(timings.election_timeout_max_ms()),
            },
        ));
        let retention_purge_interval = spec.retention_purge_interval();
        let runtime = Arc::new(ClusterRuntime {
            spec,
            controller,
            ctx: GroupContext {
                me,
                transport,
                registry,
                config: partition_config,
                leader_reports: reports_tx,
                held,
                retention_purge_interval,
                reachability,
                elections: Arc::default(),
                directory: Arc::clone(&directory),
                leaving: Arc::default(),
                heals: Arc::default(),
                producer_expiration: broker.cfg.producer_id_expiration,
            },
            directory,
            data_dir: broker.cfg.data_dir.clone(),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
        });
        tokio::spawn(bootstrap(
            Arc::clone(&runtime),
            broker.cfg.offsets_topic_partitions,
            broker.cfg.advertised_address.clone(),
        ));
        tokio::spawn(report_leaders(Arc::clone(&runtime), reports_rx));
        tokio::spawn(super::reassignment::run(Arc::clone(&runtime)));
        tokio::spawn(super::membership::run(Arc::clone(&runtime)));
        tokio::spawn(follow_metadata(
            Arc::downgrade(broker),
            Arc::clone(&runtime),
        ));
        Ok(runtime)
    }
}

impl ClusterRuntime {
    /// A producer id unique in the cluster: from this node's block, taking a new block from
    /// the controller when it runs out.
    ///
    /// # Errors
    /// [`BrokerError::ControllerUnavailable`] when no block could be had.
    pub(crate) async fn next_producer_id(&self) -> Result<i64, BrokerError> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let reply = self
                .controller
                .propose(
                    &Command::AllocateProducerIds {
                        node: self.spec.node_id(),
                        block_len: PRODUCER_ID_BLOCK_LEN,
                    },
                    ADMIN_TIMEOUT,
                )
                .await
                .map_err(cluster_error)?;
            match reply.outcome {
                cairn_controller::Outcome::ProducerIds(ids) => *block = (ids.first, ids.end()),
                other => {
                    return Err(BrokerError::ControllerUnavailable(format!(
                        "unexpected answer to a producer-id request: {other:?}"
                    )));
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        i64::try_from(id)
            .map_err(|_| BrokerError::ControllerUnavailable("producer ids exhausted".to_string()))
    }

    /// Whether some node may have handed out `producer_id`, waiting up to
    /// [`PRODUCER_ID_CATCH_UP`] for this node's metadata to show the allocation.
    pub(crate) async fn wait_producer_id_issued(&self, producer_id: i64) -> bool {
        let Ok(id) = u64::try_from(producer_id) else {
            return false;
        };
        let mut metadata = self.controller.subscribe();
        let deadline = tokio::time::Instant::now() + PRODUCER_ID_CATCH_UP;
        loop {
            if id < metadata.borrow_and_update().next_producer_id() {
                return true;
            }
            if tokio::time::timeout_at(deadline, metadata.changed())
                .await
                .map_or(true, |changed| changed.is_err())
            {
                return false;
            }
        }
    }
}

/// Maps a controller failure to the broker's error.
pub(crate) fn cluster_error(err: ClusterError) -> BrokerError {
    match err {
        ClusterError::Refused(refusal) => controller_refusal(refusal),
        other => BrokerError::ControllerUnavailable(other.to_string()),
    }
}

/// Maps a refusal of the metadata rules to the broker's typed error.
fn controller_refusal(refusal: ControllerError) -> BrokerError {
    match refusal {
        ControllerError::TopicExists { name, .. } => BrokerError::TopicExists { name },
        ControllerError::UnknownTopic { name } => BrokerError::UnknownTopic { topic: name },
        ControllerError::ReplicationFactorTooLarge {
            requested,
            alive_node_count,
            ..
        } => BrokerError::InvalidReplicationFactor {
            requested: i64::from(requested),
            node_count: alive_node_count,
        },
        // The cluster forms within moments of a majority starting: retriable.
        ControllerError::NotBootstrapped => {
            BrokerError::ControllerUnavailable(ControllerError::NotBootstrapped.to_string())
        }
        other @ (ControllerError::InvalidUser { .. }
        | ControllerError::UnknownUser { .. }
        | ControllerError::InvalidAcl(_)
        | ControllerError::InvalidQuota { .. }
        | ControllerError::UnknownQuota { .. }) => crate::security_admin::security_refusal(other),
        other => BrokerError::InvalidRequest(other.to_string()),
    }
}

/// Proposes the cluster's bootstrap until it is committed (by this node's proposal or
/// another's), then records the cluster id in `node.meta`, publishes this node's client
/// address, and makes sure the cluster has its replicated `__consumer_offsets`.
async fn bootstrap(
    runtime: Arc<ClusterRuntime>,
    offsets_topic_partitions: u32,
    advertised_address: String,
) {
    let peers: Vec<PeerSpec> = runtime
        .spec
        .peers()
        .iter()
        .map(|(node, addr)| PeerSpec {
            node: *node,
            addr: addr.clone(),
        })
        .collect();
    let joins = runtime.spec.joins_existing_cluster();
    if joins {
        tracing::info!(
            node = runtime.spec.node_id(),
            "joining a running cluster: waiting for a member's `cairn cluster add-node`"
        );
    }
    loop {
        if runtime.controller.metadata().is_bootstrapped() {
            break;
        }
        if joins {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let command = Command::Bootstrap {
            cluster_id: fresh_cluster_id(),
            peers: peers.clone(),
            at_ms: now_ms(),
        };
        match runtime.controller.propose(&command, ADMIN_TIMEOUT).await {
            Ok(_) | Err(ClusterError::Refused(_)) => {}
            Err(e) => {
                tracing::info!(error = %e, "cluster not formed yet; waiting for a majority of the peers")
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metadata = runtime.controller.metadata();
    let cluster_id = metadata.cluster_id().unwrap_or("?").to_string();
    tracing::info!(
        cluster_id = %cluster_id,
        node = runtime.spec.node_id(),
        nodes = metadata.nodes().len(),
        "cluster formed"
    );
    remember_cluster_id(&runtime.data_dir, &cluster_id).await;
    super::advertise::publish_client_address(&runtime, &advertised_address).await;
    create_offsets_topic(&runtime, offsets_topic_partitions).await;
}

/// Proposes the cluster's `__consumer_offsets` (compacted, `partitions` partitions, three copies
/// or one per node when fewer, segments of [`ClusterSpec::offsets_segment_bytes`]) until the
/// metadata has it. Every node proposes it once the
/// cluster forms; the controller takes the first and refuses the others as existing. The
/// partition count is the first proposer's: it can never change, since it places groups.
async fn create_offsets_topic(runtime: &ClusterRuntime, partitions: u32) {
    let replication_factor = u16::try_from(runtime.spec.node_count().min(3)).unwrap_or(3);
    let command = Command::CreateTopic {
        name: CONSUMER_OFFSETS_TOPIC.to_string(),
        partition_count: partitions,
        replication_factor,
        configs: [
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                runtime.spec.offsets_segment_bytes().to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    };
    while runtime
        .controller
        .metadata()
        .topic(CONSUMER_OFFSETS_TOPIC)
        .is_none()
    {
        match runtime.controller.propose(&command, ADMIN_TIMEOUT).await {
            Ok(_) => {
                tracing::info!(
                    partitions,
                    replication_factor,
                    "created the cluster's {CONSUMER_OFFSETS_TOPIC}"
                );
                return;
            }
            Err(ClusterError::Refused(ControllerError::TopicExists { .. })) => return,
            Err(e) => {
                tracing::info!(error = %e, "{CONSUMER_OFFSETS_TOPIC} not created yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Records the cluster's id in `node.meta`, so this data directory answers for this cluster
/// only from now on (its peer hello carries the id, and peers of another cluster refuse it).
async fn remember_cluster_id(data_dir: &std::path::Path, cluster_id: &str) {
    let Some(id) = parse_cluster_id(cluster_id) else {
        tracing::error!(
            cluster_id,
            "the cluster id is not 32 hex digits; not recorded in node.meta"
        );
        return;
    };
    let dir = data_dir.to_path_buf();
    let recorded = crate::broker::blocking(move || {
        crate::node_meta::set_cluster_id(&dir, id).map_err(BrokerError::from)
    })
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "this data directory belongs to another cluster: it must not serve this one; stop the node and give it an empty data directory");
    }
}

/// The 16 bytes of a cluster id written as 32 hex digits.
pub(crate) fn parse_cluster_id(text: &str) -> Option<crate::node_meta::ClusterId> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(crate::node_meta::ClusterId(bytes))
}

/// Turns leader reports (elections won, in-sync sets changed) into `ReportLeader` commands,
/// keeping only the newest per group.
async fn report_leaders(
    runtime: Arc<ClusterRuntime>,
    mut reports: mpsc::UnboundedReceiver<LeaderReport>,
) {
    while let Some(first) = reports.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = reports.try_recv() {
            batch.push(more);
        }
        // The newest report of each group: the highest term, and of one term the last sent
        // (a leader reports its in-sync set again as it changes). Reversed first, so that the
        // stable sort keeps the later of equal terms in front.
        batch.reverse();
        batch.sort_by_key(|r| (r.group, std::cmp::Reverse(r.term)));
        batch.dedup_by_key(|r| r.group);
        for report in batch {
            let command = Command::ReportLeader {
                group: cairn_controller::GroupId(report.group.0),
                leader: report.leader,
                epoch: report.term,
                isr: report.members.clone(),
            };
            if let Err(e) = runtime.controller.propose(&command, ADMIN_TIMEOUT).await {
                tracing::debug!(group = report.group.0, error = %e, "leader report not recorded");
            }
        }
    }
}

/// Reconciles the broker with every new metadata version until the broker goes away.
async fn follow_metadata(broker: Weak<Broker>, runtime: Arc<ClusterRuntime>) {
    let mut metadata = runtime.controller.subscribe();
    let mut known_peers = BTreeSet::new();
    let mut told_removed = false;
    loop {
        let current = Arc::clone(&metadata.borrow_and_update());
        follow_peer_addresses(&runtime, &current, &mut known_peers);
        note_own_removal(&runtime, &current, &mut told_removed);
        let Some(node) = broker.upgrade() else {
            return;
        };
        if let Err(e) = node.reconcile(&runtime, &current).await {
            tracing::warn!(error = %e, "reconciling with the cluster metadata; retrying at the next change");
        }
        drop(node);
        if metadata.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the transport's address book in line with the registered nodes: a node added to the
/// cluster is reached at its address, and a node forgotten is no longer called. Before the
/// cluster forms, the static peer list stands.
fn follow_peer_addresses(
    runtime: &ClusterRuntime,
    metadata: &cairn_controller::ClusterMetadata,
    known: &mut BTreeSet<cairn_raft::NodeId>,
) {
    if !metadata.is_bootstrapped() {
        return;
    }
    let me = runtime.spec.node_id();
    for (node, meta) in metadata.nodes() {
        if *node != me {
            runtime.ctx.transport.set_peer_address(*node, &meta.addr);
        }
    }
    for gone in known.iter().filter(|n| metadata.node(**n).is_none()) {
        tracing::info!(node = gone, "node left the cluster; no longer calling it");
        runtime.ctx.transport.forget_peer(*gone);
    }
    *known = metadata.nodes().keys().copied().collect();
}

/// Tells the operator once that this node, being removed, holds nothing any more: it is then
/// taken out of the controller group, after which it hears no more metadata and can be
/// stopped.
fn note_own_removal(
    runtime: &ClusterRuntime,
    metadata: &cairn_controller::ClusterMetadata,
    told: &mut bool,
) {
    let me = runtime.spec.node_id();
    let leaving = metadata
        .node(me)
        .is_some_and(|n| n.state == cairn_controller::NodeState::Leaving);
    if leaving && !*told && metadata.replicas_of(me).is_empty() {
        tracing::warn!(
            node = me,
            "this node's replicas have all moved to other nodes and it is leaving the cluster; stop it once `cairn cluster describe` no longer lists it"
        );
        *told = true;
    }
}
