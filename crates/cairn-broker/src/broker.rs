//! [`Broker`]: the topics of this node and the operations on them (create, describe, alter,
//! delete, add partitions), over partitions that each own a group-committing log writer.
//! Produce and fetch live in `produce.rs` and `fetch.rs`.
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

use crate::cluster_spec::{ClusterSpec, ClusterSpecError};
use crate::disk_space::check_room_for_partitions;
use crate::error::BrokerError;
use crate::group::Groups;
use crate::node_identity::NodeIdentity;
use crate::partition::{Partition, PartitionProblem};
use crate::producer_ids::ProducerIds;
use crate::topic_config::TopicConfig;
use crate::topic_name::{CONSUMER_OFFSETS_TOPIC, is_internal, validate_topic_name};
use crate::topic_open::{
    OnOpenError, close_partitions, disk_full_or, open_partitions, open_topic, remove_failed_create,
};
use crate::topic_store::{self, write_topic};
use cairn_codec::{StickyPartitioner, XorShift64};

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
    /// Node ids holding a copy, leader first.
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

    /// Creates a topic with `partitions` partitions and the given config overrides.
    /// `replication_factor` 0 means the cluster's default; any other value must be from 1 to
    /// the node count.
    ///
    /// # Errors
    /// [`BrokerError::InvalidTopicName`], [`BrokerError::TopicExists`],
    /// [`BrokerError::InvalidPartitions`], [`BrokerError::InvalidReplicationFactor`], config
    /// errors naming the key, I/O errors.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i64,
        replication_factor: i64,
        configs: &[(String, String)],
    ) -> Result<TopicInfo, BrokerError> {
        refuse_internal(name)?;
        if let Some(runtime) = self.runtime() {
            return self
                .create_replicated_topic(runtime, name, partitions, replication_factor, configs)
                .await;
        }
        self.cfg
            .cluster
            .replication_factor(replication_factor)
            .map_err(|err| match err {
                ClusterSpecError::InvalidReplicationFactor {
                    requested,
                    node_count,
                } => BrokerError::InvalidReplicationFactor {
                    requested,
                    node_count,
                },
                other => BrokerError::InvalidRequest(other.to_string()),
            })?;
        self.create_topic_unchecked(name, partitions, configs).await
    }

    /// Creates a topic, internal ones included.
    pub(crate) async fn create_topic_unchecked(
        &self,
        name: &str,
        partitions: i64,
        configs: &[(String, String)],
    ) -> Result<TopicInfo, BrokerError> {
        validate_topic_name(name)?;
        let partition_count = check_partition_count(partitions)?;
        let mut config = self.cfg.topic_defaults.clone();
        config.set_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let _admin = self.admin.lock().await;
        self.check_open()?;
        if self.topic(name).is_ok() {
            return Err(BrokerError::TopicExists {
                name: name.to_string(),
            });
        }
        self.check_partition_limit(partition_count)?;
        let overrides = overrides_text(&config, &self.cfg.topic_defaults);
        let configs_logged = overrides.trim_end().replace('\n', ",");
        let (data_dir, name_owned, clock) = (
            self.cfg.data_dir.clone(),
            name.to_string(),
            Arc::clone(&self.clock),
        );
        let topic = blocking(move || {
            check_room_for_partitions(&data_dir, partition_count)?;
            // Logs first, then the topic file: a crash in between leaves directories that no
            // topic owns (removed at the next start), never a topic without its logs.
            let created = open_topic(
                &data_dir,
                &name_owned,
                partition_count,
                config,
                &clock,
                OnOpenError::Fail,
            )
            .and_then(|topic| {
                match write_topic(&data_dir, &name_owned, partition_count, &overrides) {
                    Ok(()) => Ok(topic),
                    Err(err) => {
                        close_partitions(
                            &topic
                                .partitions
                                .into_inner()
                                .unwrap_or_else(|e| e.into_inner()),
                        );
                        Err(err)
                    }
                }
            });
            created.map_err(|err| {
                remove_failed_create(&data_dir, &name_owned, 0..partition_count, true);
                disk_full_or(err)
            })
        })
        .await?;
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(topic));
        tracing::info!(
            topic = name,
            partitions = partition_count,
            configs = %configs_logged,
            "topic created"
        );
        self.describe_topic(name)
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
        let moves = self.pending_moves(name);
        let partitions = topic.partitions.read().unwrap_or_else(|e| e.into_inner());
        let partitions = partitions
            .iter()
            .map(|p| {
                let (adding_replicas, removing_replicas) =
                    moves.get(p.index() as usize).cloned().unwrap_or_default();
                // A stopped partition's offsets are unknown; it reports zeros and its health
                // problem says why.
                let offsets = p.offsets().unwrap_or_default();
                let leadership = p.leadership(&self.node);
                PartitionInfo {
                    partition: p.index(),
                    leader: leadership.leader.unwrap_or(-1),
                    leader_epoch: leadership.leader_epoch,
                    replicas: leadership.replicas,
                    in_sync_replicas: leadership.in_sync_replicas,
                    adding_replicas,
                    removing_replicas,
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

    /// Deletes a topic: its writers are closed, then its logs and file removed.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], I/O errors.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        refuse_internal(name)?;
        if let Some(runtime) = self.runtime()
            && self.topic(name).is_ok_and(|t| t.topic_id.is_some())
        {
            return self.delete_replicated_topic(runtime, name).await;
        }
        let _admin = self.admin.lock().await;
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let topic = topic.ok_or_else(|| BrokerError::UnknownTopic {
            topic: name.to_string(),
        })?;
        let partitions: Vec<Arc<Partition>> = topic.partitions_now();
        for partition in &partitions {
            if let Err(err) = partition.close().await {
                tracing::warn!(topic = name, partition = partition.index(), %err, "closing a deleted topic's partition");
            }
        }
        let (data_dir, name_owned) = (self.cfg.data_dir.clone(), name.to_string());
        let dirs: Vec<PathBuf> = partitions.iter().map(|p| p.dir().to_path_buf()).collect();
        blocking(move || {
            // The topic file goes first: a crash then leaves orphan directories, never a topic
            // whose logs are half gone.
            topic_store::remove_topic(&data_dir, &name_owned)?;
            for dir in dirs {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(BrokerError::io("delete partition directory", &dir, e));
                    }
                    _ => {}
                }
            }
            topic_store::fsync_dir(&data_dir)
        })
        .await?;
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Raises a topic's partition count to `total` (never lowers it, as in Kafka).
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::InvalidPartitions`], I/O errors.
    pub async fn add_partitions(&self, name: &str, total: i64) -> Result<TopicInfo, BrokerError> {
        refuse_internal(name)?;
        self.refuse_replicated(name, "adding partitions")?;
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        let current = topic.partition_count().get();
        let total = check_partition_count(total)?;
        if total <= current {
            return Err(BrokerError::InvalidPartitions {
                requested: i64::from(total),
                reason: "a topic's partition count can only grow",
            });
        }
        let config = topic
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let overrides = overrides_text(&config, &self.cfg.topic_defaults);
        let (data_dir, name_owned, clock) = (
            self.cfg.data_dir.clone(),
            name.to_string(),
            Arc::clone(&self.clock),
        );
        self.check_partition_limit(total - current)?;
        let added = blocking(move || {
            check_room_for_partitions(&data_dir, total - current)?;
            let log_config = config.to_log_config();
            let added = open_partitions(
                &data_dir,
                &name_owned,
                current..total,
                &log_config,
                &clock,
                OnOpenError::Fail,
            )
            .and_then(|added| {
                match write_topic(&data_dir, &name_owned, total, &overrides) {
                    Ok(()) => Ok(added),
                    Err(err) => {
                        close_partitions(&added);
                        Err(err)
                    }
                }
            });
            // Only the new partitions' directories go; the topic file keeps the old count.
            added.map_err(|err| {
                remove_failed_create(&data_dir, &name_owned, current..total, false);
                disk_full_or(err)
            })
        })
        .await?;
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(added);
        tracing::info!(
            topic = name,
            partitions = total,
            previous_partitions = current,
            "partitions added"
        );
        self.describe_topic(name)
    }

    /// Sets and removes topic configs; the new values take effect at once on every partition.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], config errors naming the key (nothing changes then),
    /// I/O errors.
    pub async fn alter_configs(
        &self,
        name: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<TopicInfo, BrokerError> {
        // A retention policy on the offsets topic would delete acknowledged commits.
        refuse_internal(name)?;
        self.refuse_replicated(name, "altering configs")?;
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        let mut config = topic
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let before = config.entries();
        let defaults = self.cfg.topic_defaults.entries();
        for key in delete {
            let default = defaults
                .iter()
                .find(|(k, _)| k == key)
                .ok_or_else(|| BrokerError::UnknownConfig { key: key.clone() })?;
            config.set(key, &default.1)?;
        }
        config.set_all(set.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let overrides = overrides_text(&config, &self.cfg.topic_defaults);
        let partition_count = topic.partition_count().get();
        let (data_dir, name_owned) = (self.cfg.data_dir.clone(), name.to_string());
        blocking(move || write_topic(&data_dir, &name_owned, partition_count, &overrides)).await?;
        let log_config = config.to_log_config();
        *topic.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        let partitions: Vec<Arc<Partition>> = topic.partitions_now();
        for partition in partitions {
            // A stopped partition takes the new configs when it opens again (from the file).
            partition.set_config(log_config.clone()).await?;
        }
        let after = topic
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries();
        tracing::info!(topic = name, changes = %config_changes(&before, &after), "topic config changed");
        self.describe_topic(name)
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

    /// Refuses `operation` on a replicated topic (one the cluster metadata owns), which would
    /// otherwise change this node's copy alone.
    fn refuse_replicated(&self, name: &str, operation: &'static str) -> Result<(), BrokerError> {
        if self.topic(name).is_ok_and(|t| t.topic_id.is_some()) {
            return Err(BrokerError::NotYetReplicated {
                operation,
                topic: name.to_string(),
            });
        }
        Ok(())
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

    /// Partitions held now, over all topics.
    fn partition_total(&self) -> u64 {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .values()
            .map(|topic| u64::from(topic.partition_count().get()))
            .sum()
    }

    /// Refuses `adding` more partitions past [`BrokerConfig::max_partitions`]. Called under the
    /// admin lock, so the count cannot change before the partitions are added.
    fn check_partition_limit(&self, adding: u32) -> Result<(), BrokerError> {
        let existing = self.partition_total();
        if existing + u64::from(adding) > u64::from(self.cfg.max_partitions) {
            return Err(BrokerError::TooManyPartitions {
                requested: adding,
                existing,
                limit: self.cfg.max_partitions,
            });
        }
        Ok(())
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

pub(crate) fn check_partition_count(requested: i64) -> Result<u32, BrokerError> {
    u32::try_from(requested)
        .ok()
        .filter(|count| (1..=MAX_PARTITIONS_PER_TOPIC).contains(count))
        .ok_or(BrokerError::InvalidPartitions {
            requested,
            reason: "must be between 1 and 1024",
        })
}

/// `key: old -> new` for every config whose value differs, comma-separated; `none` when no
/// value changed (an alter that set the values already in force).
fn config_changes(before: &[(&'static str, String)], after: &[(&'static str, String)]) -> String {
    let changes: Vec<String> = after
        .iter()
        .filter_map(|(key, new)| {
            let old = before.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            (old != Some(new)).then(|| format!("{key}: {} -> {new}", old.map_or("unset", |v| v)))
        })
        .collect();
    if changes.is_empty() {
        "none".to_string()
    } else {
        changes.join(", ")
    }
}

/// The `key=value` lines of the configs that differ from the defaults.
fn overrides_text(config: &TopicConfig, defaults: &TopicConfig) -> String {
    let defaults = defaults.entries();
    config
        .entries()
        .into_iter()
        .filter(|(key, value)| !defaults.iter().any(|(k, v)| k == key && v == value))
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect()
}

/// Runs blocking file work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| BrokerError::InvalidRequest(format!("blocking task failed: {join}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_name_old_and_new_values() {
        let before = [
            ("retention.ms", "1".to_string()),
            ("segment.bytes", "9".to_string()),
        ];
        let after = [
            ("retention.ms", "2".to_string()),
            ("segment.bytes", "9".to_string()),
        ];
        assert_eq!(config_changes(&before, &after), "retention.ms: 1 -> 2");
        assert_eq!(config_changes(&after, &after), "none");
    }
}
