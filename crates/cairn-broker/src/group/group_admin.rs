//! The group operations an operator runs, not a member: list, describe with lag, reset a
//! group's offsets and delete a group. They share the coordinator's locks and checks (a group
//! with live members can be neither reset nor deleted).

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_log::Offset;

use super::assignor::TopicPartition;
use super::coordinator::DEAD_GROUPS_REMEMBERED;
use super::events;
use super::group_id::validate_group_id;
use super::offset_record::OffsetValue;
use super::state::{Group, GroupState};
use super::types::{CommittedOffset, GroupDescription, GroupListing, PartitionLag, ResetTo};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::fetch::OffsetQuery;

impl Broker {
    /// Every group with members or committed offsets, sorted by id.
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let groups = self.groups.groups.lock().unwrap_or_else(|e| e.into_inner());
        let offsets = self
            .groups
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let ids: BTreeSet<&String> = groups
            .iter()
            .filter(|(id, g)| g.member_count() > 0 || offsets.contains_key(*id))
            .map(|(id, _)| id)
            .chain(offsets.keys())
            .collect();
        ids.into_iter()
            .map(|id| {
                let group = groups.get(id);
                GroupListing {
                    group: id.clone(),
                    state: group.map_or(GroupState::Empty, Group::state),
                    members: group.map_or(0, Group::member_count),
                }
            })
            .collect()
    }

    /// Describes a group: state, members, committed offsets and lag.
    ///
    /// # Errors
    /// [`BrokerError::InvalidGroupId`], [`BrokerError::UnknownGroup`].
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription, BrokerError> {
        validate_group_id(group_id)?;
        self.check_coordinator(group_id)?;
        let (state, epoch, session_timeout_ms, members, subscribed) = {
            let groups = self.groups.groups.lock().unwrap_or_else(|e| e.into_inner());
            match groups.get(group_id) {
                Some(g) => (
                    g.state(),
                    g.epoch(),
                    g.session_timeout_ms(),
                    g.describe_members(),
                    g.subscribed_topics(),
                ),
                None => (
                    GroupState::Empty,
                    0,
                    super::state::DEFAULT_SESSION_TIMEOUT_MS,
                    Vec::new(),
                    BTreeSet::new(),
                ),
            }
        };
        let committed = self.committed_offsets(group_id);
        if members.is_empty() && committed.is_empty() && !self.group_has_state(group_id) {
            let dead = self.groups.dead.lock().unwrap_or_else(|e| e.into_inner());
            if dead.iter().any(|g| g == group_id) {
                return Ok(GroupDescription {
                    group: group_id.to_string(),
                    state: GroupState::Dead,
                    epoch: 0,
                    session_timeout_ms,
                    members: Vec::new(),
                    offsets: Vec::new(),
                });
            }
            return Err(BrokerError::UnknownGroup {
                group: group_id.to_string(),
            });
        }
        let mut partitions: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        for topic in &subscribed {
            if let Ok(count) = self.partition_count(topic) {
                partitions.extend((0..count).map(|partition| TopicPartition {
                    topic: topic.clone(),
                    partition,
                }));
            }
        }
        let offsets = partitions
            .into_iter()
            .map(|p| {
                let committed = committed.get(&p).copied();
                let (start, end) = self.partition_bounds(&p).unwrap_or((0, 0));
                let lag = (end - committed.unwrap_or(start)).max(0);
                PartitionLag {
                    partition: p,
                    committed,
                    end,
                    lag,
                }
            })
            .collect();
        Ok(GroupDescription {
            group: group_id.to_string(),
            state,
            epoch,
            session_timeout_ms,
            members,
            offsets,
        })
    }

    /// Moves a group's committed offsets for a topic (all its partitions when `partitions` is
    /// empty). Refused while the group has members.
    ///
    /// # Errors
    /// [`BrokerError::InvalidGroupId`], [`BrokerError::NonEmptyGroup`],
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`],
    /// [`BrokerError::OffsetNotInRange`], storage errors.
    pub async fn reset_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partitions: &[i64],
        to: ResetTo,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        self.check_open()?;
        validate_group_id(group_id)?;
        self.check_coordinator(group_id)?;
        let count = self.partition_count(topic)?;
        let partitions: BTreeSet<i64> = if partitions.is_empty() {
            (0..i64::from(count)).collect()
        } else {
            partitions.iter().copied().collect()
        };
        let writes = Arc::clone(&self.groups.writes).lock_owned().await;
        let _busy = self.mark_busy(group_id)?;
        let now = self.clock.now_ms();
        let mut values = Vec::with_capacity(partitions.len());
        for index in partitions {
            let offset = match to {
                ResetTo::Earliest => self.list_offset(topic, index, OffsetQuery::Earliest)?,
                ResetTo::Latest => self.list_offset(topic, index, OffsetQuery::Latest)?,
                ResetTo::Timestamp(ms) => {
                    self.list_offset(topic, index, OffsetQuery::Timestamp(ms))?
                }
                ResetTo::Offset(offset) => {
                    let start = self.list_offset(topic, index, OffsetQuery::Earliest)?;
                    Offset::from_i64(offset)
                        .filter(|o| *o >= start)
                        .ok_or_else(|| BrokerError::OffsetNotInRange {
                            topic: topic.to_string(),
                            partition: u32::try_from(index).unwrap_or(0),
                            offset,
                            log_start_offset: start.as_i64(),
                            high_watermark: self
                                .list_offset(topic, index, OffsetQuery::Latest)
                                .map_or(0, |o| o.as_i64()),
                        })?
                }
            };
            let partition = TopicPartition {
                topic: topic.to_string(),
                partition: self.topic(topic)?.partition(index)?.index(),
            };
            self.check_offset_in_range(&partition, offset.as_i64())?;
            let value = OffsetValue {
                offset: offset.as_i64(),
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: now,
            };
            values.push((partition, Some(value)));
        }
        let result = values
            .iter()
            .map(|(p, v)| CommittedOffset {
                partition: p.clone(),
                committed: v.clone(),
            })
            .collect();
        let before = self.committed_offsets(group_id);
        self.write_offsets(writes, group_id, values.clone()).await?;
        events::log_reset(group_id, topic, &before, &values);
        Ok(result)
    }

    /// Deletes a group and its committed offsets. Refused while it has members.
    ///
    /// # Errors
    /// [`BrokerError::InvalidGroupId`], [`BrokerError::UnknownGroup`],
    /// [`BrokerError::NonEmptyGroup`], storage errors.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), BrokerError> {
        self.check_open()?;
        validate_group_id(group_id)?;
        self.check_coordinator(group_id)?;
        let writes = Arc::clone(&self.groups.writes).lock_owned().await;
        let _busy = self.mark_busy(group_id)?;
        let committed: Vec<TopicPartition> = self
            .groups
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group_id)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        // `mark_busy` saw no members and keeps joins out, so only an empty group is removed.
        let had_state = self
            .groups
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group_id)
            .is_some();
        if committed.is_empty() && !had_state {
            return Err(BrokerError::UnknownGroup {
                group: group_id.to_string(),
            });
        }
        let offset_count = committed.len();
        if !committed.is_empty() {
            let tombstones = committed.into_iter().map(|p| (p, None)).collect();
            self.write_offsets(writes, group_id, tombstones).await?;
        }
        let mut dead = self.groups.dead.lock().unwrap_or_else(|e| e.into_inner());
        dead.retain(|g| g != group_id);
        if dead.len() >= DEAD_GROUPS_REMEMBERED {
            dead.remove(0);
        }
        dead.push(group_id.to_string());
        events::log_deleted(group_id, offset_count);
        Ok(())
    }
}
