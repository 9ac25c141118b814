//! [`Broker`]: the topics of this node and the operations on them (create, describe, alter,
//! delete, add partitions), over partitions that each own a group-committing log writer.
//! The operations that change what the node holds (create, delete, add partitions, alter) live
//! in `broker/topic_admin.rs`; produce and fetch in `produce.rs` and `fetch.rs`.
//!
//! File I/O (opening logs, writing topic files, deleting directories) runs on blocking threads,
//! so every operation here is `async` and safe to call from request handlers.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cairn_codec::{LeaderEpoch, Offset};
use cairn_log::Clock;

use crate::cluster_spec::ClusterSpec;
use crate::error::BrokerError;
use crate::group::Groups;
use crate::node_identity::NodeIdentity;
use crate::partition::{Partition, PartitionProblem};
use crate::producer_ids::ProducerIds;
use crate::producer_state::ProducerExpiration;
use crate::topic_config::TopicConfig;
use crate::topic_name::{CONSUMER_OFFSETS_TOPIC, is_internal};
use crate::topic_open::{OnOpenError, open_topic};
use crate::topic_store;
use cairn_codec::{StickyPartitioner, XorShift64};

mod topic_admin;

/// Most partitions one topic may have on this node (each holds a writer thread and open files).
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 1024;

/// Most partitions this node holds over all topics, `__consumer_offsets` included, unless
/// configured otherwise. Each partition holds a writer thread, about five open files and their
/// maps; 4,096 stays well inside a default `vm.max_map_count` (65,530) and thread limits.
pub const DEFAULT_MAX_PARTITIONS: u32 = 4096;

/// Partitions of `__consumer_offsets` when the broker creates it (Kafka's default is 50; a
/// partition here costs a writer thread, so fewer).
pub const DEFAULT_OFFSETS_TOPIC_PARTITIONS: u32 = 8;

/// How a broker is set up.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Where topics and their logs live.
    pub data_dir: PathBuf,
    /// The cluster this node starts in: its id, its peers, the Raft timings and the default
    /// replication factor. [`ClusterSpec::default`] is a cluster of one, node 1.
    pub cluster: ClusterSpec,
    /// The address clients reach this node at ("host:port").
    pub advertised_address: String,
    /// Configs a topic gets unless it overrides them.
    pub topic_defaults: TopicConfig,
    /// Partitions of `__consumer_offsets` when it is created (fixed afterwards: a group's
    /// partition is the hash of its id modulo this count).
    pub offsets_topic_partitions: u32,
    /// Most partitions this node holds over all topics, `__consumer_offsets` included
    /// (default [`DEFAULT_MAX_PARTITIONS`]). Creates past it are refused; topics already on
    /// disk always open.
    pub max_partitions: u32,
    /// How long a partition remembers an idempotent producer after its last write (Kafka's
    /// `producer.id.expiration.ms`; default a day, see [`ProducerExpiration`]).
    pub producer_id_expiration: ProducerExpiration,
}

impl BrokerConfig {
    /// How this node opens its single-copy partitions.
    pub(crate) fn local_options(&self) -> crate::partition::LocalOptions {
        crate::partition::LocalOptions {
            writer: self.cluster.local_writer_options(),
            producer_expiration: self.producer_id_expiration,
        }
    }
}

/// One partition's place and offsets, as `describe` and metadata report them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: u32,
    /// Node id of the leader (-1 while there is none).
    pub leader: i32,
    /// The leader's epoch.
    pub leader_epoch: LeaderEpoch,
    /// Node ids holding a copy, in assignment order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// Node ids whose copy is caught up with the leader, leader first.
    pub in_sync_replicas: Vec<i32>,
    /// During a reassignment (Kafka's KIP-455 fields): nodes joining the replica set.
    pub adding_replicas: Vec<i32>,
    /// During a reassignment: nodes leaving the replica set once the move is done.
    pub removing_replicas: Vec<i32>,
    /// The earliest readable offset.
    pub log_start_offset: Offset,
    /// The end of what is readable.
    pub high_watermark: Offset,
}

/// A topic as `describe` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// The name.
    pub name: String,
    /// Its partitions in order.
    pub partitions: Vec<PartitionInfo>,
    /// Every config with its effective value, sorted by key.
    pub configs: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) config: RwLock<TopicConfig>,
    pub(crate) partitions: RwLock<Vec<Arc<Partition>>>,
    pub(crate) sticky: Mutex<StickyPartitioner<XorShift64>>,
    /// The cluster metadata's id of the topic, for a replicated topic (`None`: this node's own,
    /// single-copy topic). A topic deleted and created again gets a new id.
    pub(crate) topic_id: Option<u64>,
}

impl Topic {
    pub(crate) fn partition(&self, index: i64) -> Result<Arc<Partition>, BrokerError> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|idx| partitions.get(idx).cloned())
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: self.name.clone(),
                partition: index,
                partition_count: partitions.len() as u32,
            })
    }

    /// The topic's partitions as they are now (a copy of the list: adding partitions later
    /// does not change it, and no lock is held while the caller works through it).
    pub(crate) fn partitions_now(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn partition_count(&self) -> NonZeroU32 {
        let count = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u32;
        NonZeroU32::new(count).expect("a topic always has at least one partition")
    }
}

/// The topics of this node.
#[derive(Debug)]
pub struct Broker {
    pub(crate) cfg: BrokerConfig,
    /// Who this node is; built from `cfg` at open.
    node: NodeIdentity,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// The cluster machinery, once [`Broker::join_cluster`] started it (never for a cluster of
    /// one).
    pub(crate) cluster_runtime: std::sync::OnceLock<Arc<crate::cluster::ClusterRuntime>>,
    pub(crate) producer_ids: Arc<ProducerIds>,
    pub(crate) groups: Groups,
    /// Serializes admin operations, so two creates of one name cannot race.
    pub(crate) admin: tokio::sync::Mutex<()>,
    /// Preferred-leader balancing's counters and back-off (used only in a cluster).
    pub(crate) leader_balancer: crate::cluster::leader_balance::LeaderBalancer,
    /// Users and ACLs of a cluster of one (`DATA/security.json`); unused in a cluster, whose
    /// metadata holds them.
    pub(crate) local_security: RwLock<Arc<cairn_controller::Security>>,
    shutting_down: AtomicBool,
}

impl Broker {
    /// Opens the broker: creates the data directory if needed, checks it belongs to this node
    /// (`node.meta`, claimed if the directory has none yet), and opens (recovering) every
    /// topic's partitions.
    ///
    /// # Errors
    /// [`BrokerError::NodeMeta`] when the directory is another node's or its `node.meta` is
    /// unreadable (nothing else is touched then); I/O errors, an unreadable topic file, or a
    /// partition log that will not open.
    pub async fn open(cfg: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Broker, BrokerError> {
        let data_dir = cfg.data_dir.clone();
        let defaults = cfg.topic_defaults.clone();
        let cluster = cfg.cluster.clone();
        let opener = Arc::clone(&clock);
        let local_options = cfg.local_options();
        let topics = blocking(move || {
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| BrokerError::io("create data directory", &data_dir, e))?;
            crate::node_meta::check_or_claim(&data_dir, &cluster)?;
            let stored_topics = topic_store::load_topics(&data_dir, &defaults)?;
            topic_store::remove_leftovers(&data_dir, &stored_topics)?;
            let mut topics = BTreeMap::new();
            for stored in stored_topics {
                if stored.name == CONSUMER_OFFSETS_TOPIC && !cluster.is_single_node() {
                    // Written by a build that kept a local copy in a cluster: the cluster's
                    // offsets live in its replicated topic, and a local one would make this
                    // node answer for every group.
                    tracing::warn!(
                        "a local {CONSUMER_OFFSETS_TOPIC} is left on disk, unused: a cluster keeps committed offsets in its replicated one"
                    );
                    continue;
                }
                let topic = open_topic(
                    &data_dir,
                    &stored.name,
                    stored.partition_count,
                    stored.config,
                    &opener,
                    local_options,
                    OnOpenError::Stop,
                )?;
                topics.insert(stored.name, Arc::new(topic));
            }
            Ok(topics)
        })
        .await?;
        tracing::info!(topics = topics.len(), data_dir = %cfg.data_dir.display(), "broker opened");
        let data_dir = cfg.data_dir.clone();
        let producer_ids = Arc::new(blocking(move || ProducerIds::open(&data_dir)).await?);
        let data_dir = cfg.data_dir.clone();
        let local_security = blocking(move || crate::security_store::load(&data_dir)).await?;
        let node = NodeIdentity {
            node_id: cfg.cluster.wire_node_id(),
            advertised_address: cfg.advertised_address.clone(),
        };
        let broker = Broker {
            node,
            cfg,
            clock,
            topics: RwLock::new(topics),
            producer_ids,
            groups: Groups::default(),
            cluster_runtime: std::sync::OnceLock::new(),
            admin: tokio::sync::Mutex::new(()),
            leader_balancer: Default::default(),
            local_security: RwLock::new(Arc::new(local_security)),
            shutting_down: AtomicBool::new(false),
        };
        broker.open_groups().await?;
        Ok(broker)
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node.node_id
    }

    /// The cluster this node started in.
    pub fn cluster(&self) -> &ClusterSpec {
        &self.cfg.cluster
    }

    /// This node's client-facing address.
    pub fn advertised_address(&self) -> &str {
        &self.node.advertised_address
    }

    /// Who this node is: its id and the address clients reach it at.
    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }

    /// Every node of the cluster as this node knows it, by id. A single node knows itself.
    pub fn nodes(&self) -> Vec<NodeIdentity> {
        self.cluster_nodes()
            .unwrap_or_else(|| vec![self.node.clone()])
    }

    /// Topic names, sorted; internal ones (`__...`) only when asked.
    pub fn list_topics(&self, include_internal: bool) -> Vec<String> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .keys()
            .filter(|name| include_internal || !is_internal(name))
            .cloned()
            .collect()
    }

    /// Describes a topic: partitions with their offsets, and every config.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`].
    pub fn describe_topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        let topic = self.topic(name)?;
        let assignments = self.assignments(name);
        let partitions = topic.partitions.read().unwrap_or_else(|e| e.into_inner());
        let partitions = partitions
            .iter()
            .map(|p| {
                let assigned = assignments
                    .get(p.index() as usize)
                    .cloned()
                    .unwrap_or_default();
                // A stopped partition's offsets are unknown; it reports zeros and its health
                // problem says why.
                let offsets = p.offsets().unwrap_or_default();
                let leadership = p.leadership(&self.node);
                PartitionInfo {
                    partition: p.index(),
                    leader: leadership.leader.unwrap_or(-1),
                    leader_epoch: leadership.leader_epoch,
                    // In assignment order, as Kafka shows them, where the cluster metadata
                    // has them: the group's voters put the leader first, which hid the
                    // preferred leader (and moved with every election).
                    replicas: if assigned.replicas.is_empty() {
                        leadership.replicas
                    } else {
                        assigned.replicas
                    },
                    in_sync_replicas: leadership.in_sync_replicas,
                    adding_replicas: assigned.adding,
                    removing_replicas: assigned.removing,
                    log_start_offset: offsets.log_start_offset,
                    high_watermark: offsets.high_watermark,
                }
            })
            .collect();
        let config = topic.config.read().unwrap_or_else(|e| e.into_inner());
        let configs = config
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        Ok(TopicInfo {
            name: topic.name.clone(),
            partitions,
            configs,
        })
    }

    /// Bytes of record batches a partition holds: its `.log` files up to the high watermark,
    /// indexes excluded.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`],
    /// [`BrokerError::PartitionStopped`].
    pub fn partition_size_bytes(&self, topic: &str, partition: i64) -> Result<u64, BrokerError> {
        self.topic(topic)?.partition(partition)?.size_bytes()
    }

    /// Idempotent producers partition `partition` of `topic` remembers on this node (for
    /// `cairn_partition_producer_ids`; see [`ProducerExpiration`]).
    ///
    /// # Errors
    /// An unknown topic or partition; [`BrokerError::PartitionStopped`].
    pub fn partition_producer_ids(
        &self,
        topic: &str,
        partition: i64,
    ) -> Result<usize, BrokerError> {
        self.topic(topic)?.partition(partition)?.producer_ids()
    }

    /// A fresh producer id (epoch 0) for an idempotent producer.
    ///
    /// # Errors
    /// I/O errors persisting the id block.
    pub async fn init_producer_id(&self) -> Result<(i64, i16), BrokerError> {
        self.check_open()?;
        if let Some(runtime) = self.runtime() {
            return Ok((runtime.next_producer_id().await?, 0));
        }
        let ids = Arc::clone(&self.producer_ids);
        Ok((blocking(move || ids.next()).await?, 0))
    }

    /// Closes every partition cleanly (finishing queued appends) and refuses further work.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let _admin = self.admin.lock().await;
        for topic in self.topics_snapshot() {
            let partitions: Vec<Arc<Partition>> = topic.partitions_now();
            for partition in partitions {
                if let Err(err) = partition.close().await {
                    tracing::warn!(topic = %topic.name, partition = partition.index(), %err, "closing partition at shutdown");
                }
            }
        }
        tracing::info!("broker closed");
    }

    /// Every partition that is stopped or damaged, by topic and partition: what health checks
    /// and metrics report. Cheap: no I/O.
    pub fn problems(&self) -> Vec<PartitionProblem> {
        self.topics_snapshot()
            .iter()
            .flat_map(|topic| {
                let partitions = topic.partitions.read().unwrap_or_else(|e| e.into_inner());
                partitions
                    .iter()
                    .filter_map(|p| p.problem())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every topic, internal ones included, as they are now.
    pub(crate) fn topics_snapshot(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    pub(crate) fn check_open(&self) -> Result<(), BrokerError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            Err(BrokerError::ShuttingDown)
        } else {
            Ok(())
        }
    }
}

/// Clients may not create, delete, repartition or write `__consumer_offsets`: the broker owns
/// it, and a group's partition in it is fixed by the partition count.
pub(crate) fn refuse_internal(name: &str) -> Result<(), BrokerError> {
    if name == CONSUMER_OFFSETS_TOPIC {
        return Err(BrokerError::InternalTopic {
            topic: name.to_string(),
        });
    }
    Ok(())
}

/// `requested` as a partition count for `topic`, if it is in 1..=1024.
pub(crate) fn check_partition_count(topic: &str, requested: i64) -> Result<u32, BrokerError> {
    u32::try_from(requested)
        .ok()
        .filter(|count| (1..=MAX_PARTITIONS_PER_TOPIC).contains(count))
        .ok_or_else(|| BrokerError::InvalidPartitions {
            topic: topic.to_string(),
            requested,
            reason: "must be between 1 and 1024",
        })
}

/// Runs blocking file work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| BrokerError::InvalidRequest(format!("blocking task failed: {join}")))?
}
