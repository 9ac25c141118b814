//! Which groups this node coordinates. On a single node: every group, from the local
//! `__consumer_offsets` read at open. In a cluster: the groups whose partition of the replicated
//! `__consumer_offsets` this node leads (murmur2 of the group id, as Kafka places them), the
//! model of Kafka's group coordinator.
//!
//! A task follows the leadership of the offsets partitions. When this node comes to lead one,
//! it waits until its whole Raft log is applied (so the high watermark covers every commit ever
//! acknowledged), reads the partition back, and only then answers for its groups; until then a
//! call gets COORDINATOR_LOAD_IN_PROGRESS. When it stops leading one, it forgets the groups'
//! offsets and members at once, so a deposed coordinator never answers from a stale copy for
//! longer than one leadership check. Membership is not replicated (as in Kafka before KIP-848
//! kept it in the log): members of a moved group are unknown to the new coordinator, rejoin,
//! and resume from their committed offsets, which are.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cairn_codec::partition_for_key;

use super::offset_log;
use crate::broker::{Broker, blocking};
use crate::error::BrokerError;
use crate::node_identity::NodeIdentity;
use crate::partition::{LeaderHint, Partition};
use crate::topic_name::CONSUMER_OFFSETS_TOPIC;

/// How often the leadership of the offsets partitions is looked at. A coordinator that lost
/// its partition answers from memory for at most this long (its commits fail at once: they go
/// through Raft).
const LEADERSHIP_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Which groups this node answers for.
#[derive(Debug, Default)]
pub(crate) enum Coordination {
    /// Every group: a single node, which holds `__consumer_offsets` alone.
    #[default]
    All,
    /// The groups of these partitions of the replicated `__consumer_offsets`, by index.
    Partitions(BTreeMap<u32, Load>),
}

/// How far this node is in taking over one offsets partition's groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Load {
    /// Reading the partition back; the number tells attempts apart, so a load that finishes
    /// after leadership moved and came back does not claim the newer term.
    Loading(u64),
    /// Answering for its groups, as leader in this term.
    Loaded {
        /// The Raft term the partition was loaded in.
        term: u64,
    },
}

impl Broker {
    /// Refuses unless this node coordinates `group_id` now.
    ///
    /// # Errors
    /// [`BrokerError::NotCoordinator`] (naming the coordinator when known),
    /// [`BrokerError::CoordinatorLoadInProgress`], [`BrokerError::CoordinatorNotAvailable`].
    pub(crate) fn check_coordinator(&self, group_id: &str) -> Result<(), BrokerError> {
        let index = {
            let coordination = self.groups.coordination();
            let Coordination::Partitions(loads) = &*coordination else {
                return Ok(());
            };
            let Some(index) = self.offsets_partition_of(group_id) else {
                return Err(BrokerError::CoordinatorNotAvailable {
                    group: group_id.to_string(),
                });
            };
            match loads.get(&index) {
                Some(Load::Loaded { .. }) => return Ok(()),
                Some(Load::Loading(_)) => {
                    return Err(BrokerError::CoordinatorLoadInProgress {
                        group: group_id.to_string(),
                    });
                }
                None => index,
            }
        };
        match self.coordinator_of_partition(index) {
            Some(node) if node.node_id == self.node_id() => {
                // Leading, but the follower task has not started the load yet.
                Err(BrokerError::CoordinatorLoadInProgress {
                    group: group_id.to_string(),
                })
            }
            Some(node) => Err(BrokerError::NotCoordinator {
                group: group_id.to_string(),
                coordinator: Some(LeaderHint {
                    node_id: node.node_id,
                    address: Some(node.advertised_address).filter(|a| !a.is_empty()),
                }),
            }),
            None => Err(BrokerError::CoordinatorNotAvailable {
                group: group_id.to_string(),
            }),
        }
    }

    /// Which node coordinates `group_id` (Kafka's FindCoordinator): this node on a single
    /// node; in a cluster, the leader of the group's offsets partition as this node knows it.
    ///
    /// # Errors
    /// [`BrokerError::InvalidGroupId`]; [`BrokerError::CoordinatorNotAvailable`] while the
    /// partition has no known leader.
    pub fn find_coordinator(&self, group_id: &str) -> Result<NodeIdentity, BrokerError> {
        super::validate_group_id(group_id)?;
        if matches!(*self.groups.coordination(), Coordination::All) {
            return Ok(self.node().clone());
        }
        self.offsets_partition_of(group_id)
            .and_then(|index| self.coordinator_of_partition(index))
            .ok_or_else(|| BrokerError::CoordinatorNotAvailable {
                group: group_id.to_string(),
            })
    }

    /// Whether a group operation that meets `err` from the offsets log should answer as a
    /// coordinator refusal: the append found this node no longer leads the partition, or lost
    /// the leadership before its record was known committed (a commit is safe to send again,
    /// so the client finds the new coordinator and does).
    pub(crate) fn as_coordinator_error(&self, group_id: &str, err: BrokerError) -> BrokerError {
        match err {
            BrokerError::AppendOutcomeUnknown { .. } => BrokerError::NotCoordinator {
                group: group_id.to_string(),
                coordinator: None,
            },
            BrokerError::NotLeader { leader, .. } => BrokerError::NotCoordinator {
                group: group_id.to_string(),
                coordinator: leader.map(|hint| LeaderHint {
                    address: hint.address.or_else(|| self.node_address(hint.node_id)),
                    node_id: hint.node_id,
                }),
            },
            other => other,
        }
    }

    /// The index of `group_id`'s partition of `__consumer_offsets`, once the topic exists.
    pub(crate) fn offsets_partition_of(&self, group_id: &str) -> Option<u32> {
        let topic = self.topic(CONSUMER_OFFSETS_TOPIC).ok()?;
        Some(partition_for_key(
            group_id.as_bytes(),
            topic.partition_count(),
        ))
    }

    /// The leader of offsets partition `index`, with its address, as this node knows it.
    fn coordinator_of_partition(&self, index: u32) -> Option<NodeIdentity> {
        let topic = self.topic(CONSUMER_OFFSETS_TOPIC).ok()?;
        let partition = topic.partition(i64::from(index)).ok()?;
        let leader = partition.leadership(self.node()).leader?;
        Some(NodeIdentity {
            node_id: leader,
            advertised_address: self.node_address(leader).unwrap_or_default(),
        })
    }

    /// The client address of node `node_id`, from the cluster's node list.
    fn node_address(&self, node_id: i32) -> Option<String> {
        self.nodes()
            .into_iter()
            .find(|n| n.node_id == node_id)
            .map(|n| n.advertised_address)
    }

    /// Forgets the members and committed offsets of every group of offsets partition `index`
    /// (of `count`): this node no longer answers for them.
    fn forget_groups_of(&self, index: u32, count: std::num::NonZeroU32) {
        let in_partition = |group: &String| partition_for_key(group.as_bytes(), count) == index;
        self.groups.retain_groups(|group| !in_partition(group));
    }
}

/// Follows the leadership of the offsets partitions until the broker goes away: takes over the
/// groups of each partition this node comes to lead, lets go of those of each it stops leading.
pub(crate) async fn follow_offsets_leadership(broker: Weak<Broker>) {
    let mut tick = tokio::time::interval(LEADERSHIP_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut attempts = 0u64;
    loop {
        tick.tick().await;
        let Some(node) = broker.upgrade() else {
            return;
        };
        let Ok(topic) = node.topic(CONSUMER_OFFSETS_TOPIC) else {
            continue;
        };
        let count = topic.partition_count();
        let partitions: Vec<Arc<Partition>> = topic.partitions_now();
        for partition in partitions {
            let index = partition.index();
            let leadership = partition.leadership(node.node());
            let leads = partition.is_held_here() && leadership.leader == Some(node.node_id());
            let term = u64::try_from(leadership.leader_epoch.0).unwrap_or(0);
            let mut coordination = node.groups.coordination();
            let Coordination::Partitions(loads) = &mut *coordination else {
                return;
            };
            match (leads, loads.get(&index).copied()) {
                (true, None) => {}
                (true, Some(Load::Loaded { term: loaded })) if loaded != term => {}
                (true, Some(_)) => continue,
                (false, None) => continue,
                (false, Some(_)) => {
                    loads.remove(&index);
                    drop(coordination);
                    node.forget_groups_of(index, count);
                    tracing::info!(
                        partition = index,
                        "no longer coordinating the groups of this offsets partition"
                    );
                    continue;
                }
            }
            attempts += 1;
            loads.insert(index, Load::Loading(attempts));
            drop(coordination);
            tokio::spawn(take_over(Arc::downgrade(&node), partition, count, attempts));
        }
    }
}

/// Takes over the groups of one offsets partition this node leads: waits until the partition's
/// log is wholly applied, then (with offset writes held off) replaces whatever memory held for
/// its groups with what the log says. On failure the partition is left unclaimed and the next
/// leadership check tries again.
async fn take_over(
    broker: Weak<Broker>,
    partition: Arc<Partition>,
    count: std::num::NonZeroU32,
    attempt: u64,
) {
    let index = partition.index();
    let loaded = async {
        let term = partition.lead().await?;
        let node = broker.upgrade().ok_or(BrokerError::ShuttingDown)?;
        let writes = node.groups.write_lock().await;
        let reader = Arc::clone(&partition);
        let offsets = blocking(move || offset_log::load_partition(&reader)).await?;
        let groups = offsets.len();
        node.forget_groups_of(index, count);
        node.groups.add_offsets(offsets);
        drop(writes);
        Ok::<_, BrokerError>((term, groups))
    }
    .await;
    let Some(node) = broker.upgrade() else {
        return;
    };
    let mut coordination = node.groups.coordination();
    let Coordination::Partitions(loads) = &mut *coordination else {
        return;
    };
    if loads.get(&index) != Some(&Load::Loading(attempt)) {
        return;
    }
    match loaded {
        Ok((term, groups)) => {
            loads.insert(index, Load::Loaded { term });
            tracing::info!(
                partition = index,
                term,
                groups,
                "coordinating the groups of this offsets partition"
            );
        }
        Err(err) => {
            loads.remove(&index);
            tracing::debug!(partition = index, %err, "taking over an offsets partition's groups failed; retrying");
        }
    }
}

/// Locks `mutex`, whose data stays valid even if a holder panicked.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
