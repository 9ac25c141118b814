//! The group coordinator: the [`Broker`] operations of a consumer group's members (heartbeat,
//! commit, fetch offsets) over the pure [`Group`] state machine and the `__consumer_offsets`
//! topic, and the state, locks and checks that `group_admin` (list, describe, reset, delete)
//! shares.
//!
//! Committed offsets live in memory for reads and in `__consumer_offsets` for durability: a
//! commit is appended (and fsynced under the topic's flush policy) before it is applied in
//! memory and acknowledged, and the topic is read back in full when the broker opens. A group's
//! records all go to one partition of the topic (murmur2 of the group id, as in Kafka), so they
//! stay in commit order. Writes are serialized, so memory always matches the log's order.
//!
//! The offsets log itself (loading, record layout into produce records, applying a record) is
//! `offset_log`; the answers' types are `types`.
//!
//! Membership is kept in memory only: after a restart, members find their ids unknown, rejoin,
//! and resume from the committed offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cairn_codec::partition_for_key;
use cairn_log::Clock;

use super::assignor::TopicPartition;
use super::coordination::{Coordination, lock};
use super::events::{self, HeartbeatFacts};
use super::group_id::validate_group_id;
use super::offset_log::{self, OffsetsByGroup};
use super::offset_record::{MAX_OFFSET_METADATA_BYTES, OffsetValue};
use super::state::{Group, HeartbeatInput, HeartbeatOutput};
use super::types::{CommittedOffset, OffsetCommit};
use crate::broker::{Broker, blocking};
use crate::error::BrokerError;
use crate::produce::append_internal;
use crate::topic_name::CONSUMER_OFFSETS_TOPIC;

/// How often silent members are looked for.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Deleted groups remembered (to describe them as dead) before the oldest is forgotten.
pub(super) const DEAD_GROUPS_REMEMBERED: usize = 1024;

/// The coordinator's state, shared with the expiry task and with offset writes.
///
/// Lock order: `writes` (async, held across the append) before any std mutex; among the std
/// mutexes `groups`, then `offsets`, then `dead` and `busy`; no std guard is held across an
/// `.await`.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    pub(super) groups: Arc<Mutex<BTreeMap<String, Group>>>,
    pub(super) offsets: Arc<Mutex<OffsetsByGroup>>,
    pub(super) dead: Mutex<Vec<String>>,
    /// Groups a reset or delete is working on: joins wait (a retriable error) until it is done,
    /// so no member reads offsets that are about to move.
    busy: Mutex<BTreeSet<String>>,
    /// Serializes writes to `__consumer_offsets`, so memory follows the log's order. Owned
    /// guards travel into the task that appends and applies, which a cancelled caller cannot
    /// stop halfway.
    pub(super) writes: Arc<tokio::sync::Mutex<()>>,
    next_member: AtomicU64,
    /// Target assignments recomputed (group epoch bumps) since the broker opened, all groups.
    rebalance_count: Arc<AtomicU64>,
    /// Which groups this node answers for (every group, or those of the offsets partitions it
    /// leads in a cluster).
    coordination: Mutex<Coordination>,
}

impl Groups {
    /// Which groups this node answers for, locked.
    pub(super) fn coordination(&self) -> std::sync::MutexGuard<'_, Coordination> {
        lock(&self.coordination)
    }

    /// Holds off offset writes (commits, resets, deletes) until the guard is dropped.
    pub(super) async fn write_lock(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.writes).lock_owned().await
    }

    /// Keeps the members and committed offsets of only the groups `keep` names.
    pub(super) fn retain_groups(&self, keep: impl Fn(&String) -> bool) {
        lock(&self.groups).retain(|id, _| keep(id));
        lock(&self.offsets).retain(|id, _| keep(id));
    }

    /// Adds committed offsets read back from the log.
    pub(super) fn add_offsets(&self, offsets: OffsetsByGroup) {
        lock(&self.offsets).extend(offsets);
    }

    /// Starts the task that removes members whose session timed out. It stops when the
    /// coordinator is dropped.
    pub(crate) fn spawn_expiry(&self, clock: Arc<dyn Clock>) {
        let groups: Weak<Mutex<BTreeMap<String, Group>>> = Arc::downgrade(&self.groups);
        let rebalance_count = Arc::clone(&self.rebalance_count);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(groups) = groups.upgrade() else {
                    return;
                };
                let now = session_clock_ms(&*clock);
                let mut groups = groups.lock().unwrap_or_else(|e| e.into_inner());
                for (id, group) in groups.iter_mut() {
                    let counts = group.topic_counts().clone();
                    let expired = group.expire(&counts, now);
                    if !expired.is_empty() {
                        rebalance_count.fetch_add(1, Ordering::Relaxed);
                        events::log_expired(id, &expired, group);
                    }
                }
                // A group without members keeps nothing worth memory: its offsets live apart.
                groups.retain(|_, group| group.member_count() > 0);
            }
        });
    }
}

impl Broker {
    /// Creates `__consumer_offsets` if it does not exist and loads every committed offset from
    /// it. Called once by [`Broker::open`]. In a cluster the topic is the cluster's, replicated,
    /// created by the controller; this node answers for no group until it leads one of its
    /// partitions (see `coordination`).
    pub(crate) async fn open_groups(&self) -> Result<(), BrokerError> {
        self.groups.spawn_expiry(Arc::clone(&self.clock));
        if !self.cfg.cluster.is_single_node() {
            *self.groups.coordination() = Coordination::Partitions(BTreeMap::new());
            return Ok(());
        }
        if self.topic(CONSUMER_OFFSETS_TOPIC).is_err() {
            let partitions = i64::from(self.cfg.offsets_topic_partitions);
            let configs = [("cleanup.policy".to_string(), "compact".to_string())];
            self.create_topic_unchecked(CONSUMER_OFFSETS_TOPIC, partitions, &configs)
                .await?;
        }
        let topic = self.topic(CONSUMER_OFFSETS_TOPIC)?;
        let offsets = blocking(move || Ok(offset_log::load(&topic))).await?;
        *lock(&self.groups.offsets) = offsets;
        Ok(())
    }

    /// A member's heartbeat: join (epoch 0), heartbeat, or leave (epoch -1).
    ///
    /// # Errors
    /// [`BrokerError::InvalidGroupId`], [`BrokerError::UnknownMember`],
    /// [`BrokerError::FencedMemberEpoch`], [`BrokerError::InvalidRequest`].
    pub fn group_heartbeat(
        &self,
        group_id: &str,
        input: HeartbeatInput,
    ) -> Result<HeartbeatOutput, BrokerError> {
        self.check_open()?;
        validate_group_id(group_id)?;
        // A topic that does not exist yet may be subscribed to (it is assigned once created),
        // but one that could never exist is refused, rather than kept in the group's state.
        for topic in input.subscribed.iter().flatten() {
            crate::topic_name::validate_topic_name(topic)?;
        }
        self.check_coordinator(group_id)?;
        let topics = self.partition_counts();
        let now = session_clock_ms(&*self.clock);
        let mut groups = self.groups.groups.lock().unwrap_or_else(|e| e.into_inner());
        if input.member_epoch == 0
            && self
                .groups
                .busy
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(group_id)
        {
            return Err(BrokerError::GroupBusy {
                group: group_id.to_string(),
            });
        }
        // Before "no such member": an epoch that means nothing is the mistake to name.
        if input.member_epoch < -1 {
            return Err(super::state::invalid_member_epoch(input.member_epoch));
        }
        if input.member_epoch != 0 && !groups.contains_key(group_id) {
            return Err(BrokerError::UnknownMember {
                group: group_id.to_string(),
                member: input.member_id,
            });
        }
        let next = &self.groups.next_member;
        let node = self.node_id();
        let clock = &self.clock;
        let facts = HeartbeatFacts::of(&input);
        let epoch_before = groups.get(group_id).map_or(0, Group::epoch);
        let new_id = || {
            let n = next.fetch_add(1, Ordering::Relaxed);
            format!("cairn-{node}-{:x}-{n}", clock.now_ms())
        };
        let result = match groups.get_mut(group_id) {
            Some(group) => group.heartbeat(input, &topics, now, new_id),
            None => {
                // A group comes to exist with its first successful join, not with a refused one.
                let mut group = Group::new(group_id);
                let result = group.heartbeat(input, &topics, now, new_id);
                if result.is_ok() {
                    groups.insert(group_id.to_string(), group);
                }
                result
            }
        };
        if events::log_heartbeat(
            group_id,
            &facts,
            &result,
            groups.get(group_id),
            epoch_before,
        ) {
            self.groups.rebalance_count.fetch_add(1, Ordering::Relaxed);
        }
        if result.is_ok() {
            self.groups
                .dead
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|g| g != group_id);
        }
        result
    }

    /// How many times any group's target assignment was recomputed (its group epoch moved:
    /// a join, a leave, an expiry, a subscription or partition count change) since the broker
    /// opened.
    pub fn group_rebalance_count(&self) -> u64 {
        self.groups.rebalance_count.load(Ordering::Relaxed)
    }

    /// Commits offsets for a group, all or nothing, durably before returning.
    ///
    /// # Errors
    /// [`BrokerError::InvalidGroupId`], the fencing errors of [`Group::check_owner`],
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`],
    /// [`BrokerError::OffsetNotInRange`], [`BrokerError::OffsetMetadataTooLarge`], and storage
    /// errors (then nothing is committed in memory either).
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        commits: &[OffsetCommit],
    ) -> Result<(), BrokerError> {
        self.check_open()?;
        validate_group_id(group_id)?;
        self.check_coordinator(group_id)?;
        if commits.is_empty() {
            return Err(BrokerError::InvalidRequest(
                "no offsets to commit".to_string(),
            ));
        }
        for commit in commits {
            self.check_offset_in_range(&commit.partition, commit.offset)?;
            if commit.metadata.len() > MAX_OFFSET_METADATA_BYTES {
                return Err(BrokerError::OffsetMetadataTooLarge {
                    len: commit.metadata.len(),
                    max: MAX_OFFSET_METADATA_BYTES,
                });
            }
        }
        let writes = Arc::clone(&self.groups.writes).lock_owned().await;
        self.check_member_owns(group_id, member_id, member_epoch, commits)?;
        let now = self.clock.now_ms();
        let values: Vec<(TopicPartition, Option<OffsetValue>)> = commits
            .iter()
            .map(|c| {
                let value = OffsetValue {
                    offset: c.offset,
                    leader_epoch: -1,
                    metadata: c.metadata.clone(),
                    commit_timestamp_ms: now,
                };
                (c.partition.clone(), Some(value))
            })
            .collect();
        self.write_offsets(writes, group_id, values).await
    }

    /// Checks that a group member may fetch a partition (a fetch that names its group).
    ///
    /// # Errors
    /// As [`Group::check_owner`]; [`BrokerError::UnknownMember`] when the group has no state.
    pub fn check_group_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        partition: &TopicPartition,
    ) -> Result<(), BrokerError> {
        validate_group_id(group_id)?;
        if self.check_coordinator(group_id).is_err() {
            // In a cluster a partition's leader is often not the group's coordinator, and only
            // the coordinator knows the members. Fetches are reads: they are not fenced there,
            // as Kafka does not fence them; commits, which are what a zombie could spoil, are
            // fenced by the coordinator.
            return Ok(());
        }
        let groups = self.groups.groups.lock().unwrap_or_else(|e| e.into_inner());
        match groups.get(group_id) {
            Some(group) => group.check_owner(member_id, member_epoch, [partition]),
            None => Err(BrokerError::UnknownMember {
                group: group_id.to_string(),
                member: member_id.to_string(),
            }),
        }
    }

    /// A group's committed offsets: for `partitions`, or every one when it is empty.
    ///
    /// # Errors
    /// [`BrokerError::InvalidGroupId`]; [`BrokerError::UnknownGroup`] when every offset is
    /// asked for and the group has neither members nor offsets.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        validate_group_id(group_id)?;
        self.check_coordinator(group_id)?;
        let offsets = self
            .groups
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mine = offsets.get(group_id);
        if partitions.is_empty() {
            if mine.is_none() && !self.group_has_state(group_id) {
                return Err(BrokerError::UnknownGroup {
                    group: group_id.to_string(),
                });
            }
            return Ok(mine
                .into_iter()
                .flatten()
                .map(|(p, v)| CommittedOffset {
                    partition: p.clone(),
                    committed: Some(v.clone()),
                })
                .collect());
        }
        let wanted: BTreeSet<&TopicPartition> = partitions.iter().collect();
        Ok(wanted
            .into_iter()
            .map(|p| CommittedOffset {
                partition: p.clone(),
                committed: mine.and_then(|m| m.get(p)).cloned(),
            })
            .collect())
    }

    /// Appends `values` (a `None` is a tombstone) to the group's partition of
    /// `__consumer_offsets`, then applies them in memory. `writes` is the caller's guard of the
    /// write lock: it moves into a task that finishes the append and the apply even when the
    /// caller's future is dropped (a client gone, a deadline), so memory never misses a record
    /// the log has.
    pub(super) async fn write_offsets(
        &self,
        writes: tokio::sync::OwnedMutexGuard<()>,
        group_id: &str,
        values: Vec<(TopicPartition, Option<OffsetValue>)>,
    ) -> Result<(), BrokerError> {
        let topic = self.topic(CONSUMER_OFFSETS_TOPIC)?;
        let partition = partition_for_key(group_id.as_bytes(), topic.partition_count());
        let records = offset_log::records(group_id, &values);
        let now_ms = self.clock.now_ms();
        let offsets = Arc::clone(&self.groups.offsets);
        let group_id_for_errors = group_id.to_string();
        let group_id = group_id.to_string();
        let task = tokio::spawn(async move {
            let _writes = writes;
            append_internal(&topic, partition, &records, now_ms).await?;
            let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
            for (partition, value) in values {
                offset_log::apply(&mut offsets, &group_id, partition, value);
            }
            Ok(())
        });
        task.await
            .map_err(|e| BrokerError::InvalidRequest(format!("offset write task failed: {e}")))?
            .map_err(|e| self.as_coordinator_error(&group_id_for_errors, e))
    }

    /// Marks a group as being reset or deleted, once it has no members; joins are refused
    /// with [`BrokerError::GroupBusy`] until the returned guard is dropped.
    pub(super) fn mark_busy(&self, group_id: &str) -> Result<BusyGuard<'_>, BrokerError> {
        let groups = self.groups.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = groups
            .get(group_id)
            .map(Group::member_count)
            .filter(|&m| m > 0)
        {
            return Err(BrokerError::NonEmptyGroup {
                group: group_id.to_string(),
                members,
            });
        }
        let mut busy = self.groups.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(group_id.to_string());
        Ok(BusyGuard {
            busy: &self.groups.busy,
            group: group_id.to_string(),
        })
    }

    pub(super) fn check_member_owns(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        commits: &[OffsetCommit],
    ) -> Result<(), BrokerError> {
        let groups = self.groups.groups.lock().unwrap_or_else(|e| e.into_inner());
        match groups.get(group_id) {
            Some(group) => group.check_owner(
                member_id,
                member_epoch,
                commits.iter().map(|c| &c.partition),
            ),
            None if member_id.is_empty() && member_epoch < 0 => Ok(()),
            None => Err(BrokerError::UnknownMember {
                group: group_id.to_string(),
                member: member_id.to_string(),
            }),
        }
    }

    pub(super) fn check_offset_in_range(
        &self,
        partition: &TopicPartition,
        offset: i64,
    ) -> Result<(), BrokerError> {
        if !matches!(*self.groups.coordination(), Coordination::All) {
            // In a cluster the coordinator is often not the partition's leader and cannot see
            // its high watermark (a follower's lags): only the partition's existence and the
            // sign are checked, as Kafka's coordinator checks no bound at all.
            self.topic(&partition.topic)?
                .partition(i64::from(partition.partition))?;
            if offset < 0 {
                return Err(BrokerError::OffsetNotInRange {
                    topic: partition.topic.clone(),
                    partition: partition.partition,
                    offset,
                    log_start_offset: 0,
                    high_watermark: 0,
                });
            }
            return Ok(());
        }
        let (start, end) = self.partition_bounds(partition)?;
        // Below the log start is allowed, as in Kafka: a slow group's offset may fall behind
        // retention and the consumer then resets. Past the end or negative is a client bug.
        if offset < 0 || offset > end {
            return Err(BrokerError::OffsetNotInRange {
                topic: partition.topic.clone(),
                partition: partition.partition,
                offset,
                log_start_offset: start,
                high_watermark: end,
            });
        }
        Ok(())
    }

    pub(super) fn partition_bounds(
        &self,
        partition: &TopicPartition,
    ) -> Result<(i64, i64), BrokerError> {
        let part = self
            .topic(&partition.topic)?
            .partition(i64::from(partition.partition))?;
        let offsets = part.offsets()?;
        Ok((
            offsets.log_start_offset.as_i64(),
            offsets.high_watermark.as_i64(),
        ))
    }

    /// A group's committed offsets by partition (empty for an unknown group).
    pub(super) fn committed_offsets(&self, group_id: &str) -> BTreeMap<TopicPartition, i64> {
        self.groups
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group_id)
            .map(|m| m.iter().map(|(p, v)| (p.clone(), v.offset)).collect())
            .unwrap_or_default()
    }

    pub(super) fn group_has_state(&self, group_id: &str) -> bool {
        self.groups
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group_id)
            .is_some_and(|g| g.member_count() > 0)
    }

    /// Every topic's partition count.
    pub(super) fn partition_counts(&self) -> BTreeMap<String, u32> {
        self.list_topics(false)
            .into_iter()
            .filter_map(|name| self.partition_count(&name).ok().map(|c| (name, c)))
            .collect()
    }
}

/// Clears a group's busy mark when a reset or delete ends, however it ends.
pub(super) struct BusyGuard<'a> {
    busy: &'a Mutex<BTreeSet<String>>,
    group: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.group);
    }
}

/// The time session and rebalance timeouts are measured on: monotonic, so a step of the wall
/// clock neither expires every member at once nor keeps a dead one for as long as it stepped.
fn session_clock_ms(clock: &dyn Clock) -> u64 {
    clock.monotonic_ms()
}
