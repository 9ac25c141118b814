//! The broker in a cluster: joining it, holding this node's share of the partitions as the
//! committed metadata says (reconcile), and admin calls that go through the controller instead
//! of this node's topic files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_codec::{StickyPartitioner, XorShift64};
use cairn_controller::{ClusterMetadata, Command, TopicMeta};
use cairn_raft::{GroupRegistry, PeerTransport};

use super::runtime::{ADMIN_TIMEOUT, ClusterRuntime, cluster_error};
use crate::broker::{Broker, Topic, TopicInfo, refuse_internal};
use crate::error::BrokerError;
use crate::node_identity::NodeIdentity;
use crate::partition::Partition;
use crate::topic_config::TopicConfig;
use crate::topic_name::{is_internal, validate_topic_name};

/// How often an admin call looks for its committed effect on this node.
const EFFECT_POLL: Duration = Duration::from_millis(20);

impl Broker {
    /// Joins the cluster of this node's [`crate::ClusterSpec`]: starts its controller group
    /// member over `transport` (peers' calls arrive through `registry`) and the tasks that
    /// keep this node's partitions in line with the metadata. A cluster of one does nothing:
    /// its partitions stay single copies, exactly as before clustering.
    ///
    /// # Errors
    /// The metadata log's open errors; openraft's start errors.
    pub async fn join_cluster(
        self: &Arc<Self>,
        transport: Arc<dyn PeerTransport>,
        registry: Arc<GroupRegistry>,
    ) -> Result<(), BrokerError> {
        if self.cfg.cluster.is_single_node() {
            return Ok(());
        }
        let runtime = ClusterRuntime::start(
            self,
            self.cfg.cluster.clone(),
            Arc::clone(&self.clock),
            transport,
            registry,
        )
        .await?;
        // Set once: `join_cluster` runs once at start-up.
        let _ = self.cluster_runtime.set(runtime);
        tokio::spawn(crate::group::follow_offsets_leadership(Arc::downgrade(
            self,
        )));
        crate::group::spawn_copy_forward(
            Arc::downgrade(self),
            self.cfg.cluster.retention_purge_interval(),
        );
        tokio::spawn(super::leader_balance::run(
            Arc::downgrade(self),
            self.cfg.cluster.leader_balance(),
        ));
        Ok(())
    }

    /// The cluster's id once the cluster has formed (32 hex digits); `None` on a cluster of one
    /// and before the first bootstrap commits.
    pub fn cluster_id(&self) -> Option<String> {
        let metadata = self.runtime()?.directory.current();
        metadata.cluster_id().map(str::to_string)
    }

    /// The cluster this data directory was recorded as belonging to (`node.meta`), if any.
    ///
    /// # Errors
    /// An unreadable `node.meta`.
    pub fn recorded_cluster_id(&self) -> Result<Option<String>, BrokerError> {
        Ok(crate::node_meta::read(&self.cfg.data_dir)?
            .and_then(|meta| meta.cluster_id)
            .map(|id| id.to_string()))
    }

    /// Whether this node has been taken out of the cluster (`cairn cluster remove-node`): the
    /// metadata it last applied marks it leaving with no replica left. The controller then
    /// drops it from its group, once it holds that entry, and the node hears no more. It keeps
    /// answering from that last view, so health turns NOT_SERVING to say it is on its way out.
    pub fn has_left_cluster(&self) -> bool {
        self.runtime().is_some_and(|runtime| {
            super::membership::removable(&runtime.directory.current()).contains(&runtime.ctx.me)
        })
    }

    /// The cluster machinery, when this node runs with peers.
    pub(crate) fn runtime(&self) -> Option<&Arc<ClusterRuntime>> {
        self.cluster_runtime.get()
    }

    /// The nodes of the cluster with their client addresses (this node alone for a cluster of
    /// one).
    pub(crate) fn cluster_nodes(&self) -> Option<Vec<NodeIdentity>> {
        let runtime = self.runtime()?;
        let metadata = runtime.directory.current();
        let nodes: Vec<NodeIdentity> = if metadata.nodes().is_empty() {
            runtime
                .spec
                .peers()
                .iter()
                .map(|(id, addr)| NodeIdentity {
                    node_id: i32::try_from(*id).unwrap_or(i32::MAX),
                    advertised_address: addr.clone(),
                })
                .collect()
        } else {
            metadata
                .nodes()
                .iter()
                .map(|(id, meta)| NodeIdentity {
                    node_id: i32::try_from(*id).unwrap_or(i32::MAX),
                    advertised_address: meta.client_address().to_string(),
                })
                .collect()
        };
        Some(nodes)
    }

    /// Creates a replicated topic through the controller, and answers once this node holds
    /// it as committed.
    pub(crate) async fn create_replicated_topic(
        &self,
        runtime: &ClusterRuntime,
        name: &str,
        partitions: i64,
        replication_factor: i64,
        configs: &[(String, String)],
    ) -> Result<TopicInfo, BrokerError> {
        refuse_internal(name)?;
        validate_topic_name(name)?;
        let partition_count = crate::broker::check_partition_count(name, partitions)?;
        let replication_factor = runtime
            .spec
            .replication_factor(replication_factor)
            .map_err(|_| BrokerError::InvalidReplicationFactor {
                requested: replication_factor,
                node_count: runtime.spec.node_count(),
            })?;
        let mut config = self.cfg.topic_defaults.clone();
        config.set_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let command = Command::CreateTopic {
            name: name.to_string(),
            partition_count,
            replication_factor: u16::try_from(replication_factor).unwrap_or(u16::MAX),
            configs: configs.iter().cloned().collect(),
        };
        runtime
            .controller
            .propose(&command, ADMIN_TIMEOUT)
            .await
            .map_err(cluster_error)?;
        self.wait_for(|b| {
            b.topic(name)
                .ok()
                .is_some_and(|t| t.partition_count().get() == partition_count)
        })
        .await?;
        tracing::info!(
            topic = name,
            partitions = partition_count,
            replication_factor,
            "topic created in the cluster"
        );
        self.describe_topic(name)
    }

    /// Deletes a replicated topic through the controller, answering once this node let it go.
    pub(crate) async fn delete_replicated_topic(
        &self,
        runtime: &ClusterRuntime,
        name: &str,
    ) -> Result<(), BrokerError> {
        refuse_internal(name)?;
        runtime
            .controller
            .propose(
                &Command::DeleteTopic {
                    name: name.to_string(),
                },
                ADMIN_TIMEOUT,
            )
            .await
            .map_err(cluster_error)?;
        self.wait_for(|b| b.topic(name).is_err()).await?;
        tracing::info!(topic = name, "topic deleted in the cluster");
        Ok(())
    }

    /// Waits until `done` holds on this node (the reconcile of a committed command).
    pub(crate) async fn wait_for(&self, done: impl Fn(&Broker) -> bool) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
        while !done(self) {
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::ControllerUnavailable(
                    "the command committed but this node did not apply it in time".to_string(),
                ));
            }
            tokio::time::sleep(EFFECT_POLL).await;
        }
        Ok(())
    }

    /// Brings the topics this node holds in line with `metadata`: opens the partitions of new
    /// topics (this node's replicas as Raft copies, the rest as pointers to their leaders),
    /// and closes and removes topics the metadata no longer has. Topics that exist only on this
    /// node (the local `__consumer_offsets`) are left alone.
    pub(crate) async fn reconcile(
        &self,
        runtime: &ClusterRuntime,
        metadata: &ClusterMetadata,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().await;
        let held: BTreeMap<String, Option<u64>> = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, topic)| (name.clone(), topic.topic_id))
            .collect();
        let wanted: BTreeSet<&String> = metadata.topics().keys().collect();
        for (name, topic_id) in &held {
            let Some(id) = topic_id else { continue };
            let current = metadata.topic(name).map(|t| t.id.0);
            if current != Some(*id) {
                self.drop_replicated_topic(name).await;
            }
        }
        for name in wanted {
            let Some(meta) = metadata.topic(name) else {
                continue;
            };
            let present = self
                .topics
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name.as_str())
                .map(|t| t.topic_id);
            match present {
                Some(Some(id)) if id == meta.id.0 => {
                    let topic = self.topic(name)?;
                    self.reconcile_partitions(runtime, metadata, &topic, meta)
                        .await?;
                }
                Some(None) if is_internal(name) => {}
                Some(_) => {
                    tracing::warn!(topic = %name, "a local topic has the name of a cluster topic; the local one stays");
                }
                None => {
                    self.open_replicated_topic(runtime, metadata, name, meta)
                        .await?
                }
            }
        }
        Ok(())
    }

    async fn open_replicated_topic(
        &self,
        runtime: &ClusterRuntime,
        metadata: &ClusterMetadata,
        name: &str,
        meta: &TopicMeta,
    ) -> Result<(), BrokerError> {
        let mut config: TopicConfig = self.cfg.topic_defaults.clone();
        if let Err(e) = config.set_all(meta.configs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            tracing::warn!(topic = name, error = %e, "a cluster topic's configs do not apply here; defaults used");
        }
        let log_config = config.to_log_config();
        let topic_name: Arc<str> = Arc::from(name);
        let mut partitions = Vec::with_capacity(meta.partitions.len());
        for (index, partition) in meta.partitions.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let opened = self
                .open_partition_here(
                    runtime,
                    metadata,
                    &topic_name,
                    index,
                    partition,
                    log_config.clone(),
                )
                .await;
            match opened {
                Ok(p) => partitions.push(Arc::new(p)),
                Err(e) => {
                    for p in &partitions {
                        let _ = p.close().await;
                    }
                    return Err(e);
                }
            }
        }
        let seed = self.clock.now_ms() as u64 ^ meta.id.0;
        let topic = Topic {
            name: name.to_string(),
            config: RwLock::new(config),
            partitions: RwLock::new(partitions),
            sticky: Mutex::new(StickyPartitioner::new(XorShift64::new(seed))),
            topic_id: Some(meta.id.0),
        };
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(topic));
        tracing::info!(
            topic = name,
            partitions = meta.partitions.len(),
            "holding cluster topic"
        );
        Ok(())
    }

    /// Closes a replicated topic's copies on this node and removes their directories.
    async fn drop_replicated_topic(&self, name: &str) {
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let Some(topic) = topic else { return };
        let partitions: Vec<Arc<Partition>> = topic.partitions_now();
        for partition in &partitions {
            if partition.is_held_here() {
                super::replica_set::release_copy(partition).await;
            }
        }
        tracing::info!(topic = name, "released cluster topic");
    }
}
