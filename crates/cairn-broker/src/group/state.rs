//! One consumer group's membership state machine (the model of Kafka's KIP-848), pure: time
//! comes in as milliseconds and new member ids through a closure, so every transition can be
//! replayed in a test.
//!
//! The group keeps three things apart:
//! - the **target assignment**: what the assignor wants each member to own, recomputed (with the
//!   previous target as the sticky starting point) whenever the group epoch moves, that is when a
//!   member joins or leaves, a subscription changes or a subscribed topic gains partitions;
//! - each member's **granted** partitions: what the coordinator has allowed it to own, each with
//!   the member epoch it was granted at;
//! - the partition **owners** index: at most one member per partition, always.
//!
//! A member converges on its target in two steps, so no partition ever has two owners: first it
//! is told to give up the granted partitions its target no longer holds, and they stay granted
//! (and committable) until a heartbeat no longer lists them as owned; only then does it move to
//! the group epoch and receive the partitions of its target that no other member holds. A
//! partition still held by its old owner is given at a later heartbeat, so members that wait
//! for one are told to heartbeat again soon.
//!
//! Member epochs fence zombies: a commit or fetch is accepted only from a known member, at an
//! epoch no newer than its own and no older than the epoch its partition was granted at.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{MemberSpec, TopicPartition, assign};
use super::group_id::validate_member_id;
use crate::error::BrokerError;

/// Session timeout of a group whose members ask for none (Kafka's default).
pub const DEFAULT_SESSION_TIMEOUT_MS: u32 = 45_000;
/// Shortest session timeout a member may ask for.
pub const MIN_SESSION_TIMEOUT_MS: u32 = 500;
/// Longest session timeout a member may ask for.
pub const MAX_SESSION_TIMEOUT_MS: u32 = 30 * 60 * 1000;
/// Time a member has to give up revoked partitions when it asks for no other limit.
pub const DEFAULT_REBALANCE_TIMEOUT_MS: u32 = 60_000;
/// Longest heartbeat interval handed out.
const MAX_HEARTBEAT_INTERVAL_MS: u32 = 3_000;
/// Heartbeat interval of a member that waits for partitions or has some to give up.
const RECONCILING_HEARTBEAT_INTERVAL_MS: u32 = 200;

/// The state of a group, as `describe` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Some member does not own exactly its target assignment yet.
    Assigning,
    /// Every member owns exactly its target assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The lowercase name (`empty`, `assigning`, `stable`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "empty",
            GroupState::Assigning => "assigning",
            GroupState::Stable => "stable",
            GroupState::Dead => "dead",
        }
    }
}

/// A heartbeat as the coordinator receives it.
#[derive(Clone, Debug, Default)]
pub struct HeartbeatInput {
    /// The member id; empty on a join asks the coordinator for one.
    pub member_id: String,
    /// 0 to join, the current epoch to heartbeat, -1 to leave.
    pub member_epoch: i32,
    /// The client's name.
    pub client_id: String,
    /// The peer's address.
    pub host: String,
    /// A new subscription (required on a join); `None` keeps the current one.
    pub subscribed: Option<BTreeSet<String>>,
    /// The partitions the member owns now. They are only compared with what the member was
    /// granted: a granted partition it no longer lists is released, and a heartbeat at the
    /// previous epoch must list granted ones only. A listed partition the coordinator does not
    /// know (past the topic's partition count, or of an unknown topic) is therefore ignored,
    /// not refused, as Kafka's coordinator does (KIP-848: ConsumerGroupHeartbeat validates the
    /// member id and epoch, not the owned partitions). A member lists what it was given under
    /// an earlier view: the topic may since have been deleted, or re-created with fewer
    /// partitions, and refusing its heartbeat would keep it from ever hearing its new
    /// assignment. Negative indexes never get here: the API refuses them as malformed.
    pub owned: BTreeSet<TopicPartition>,
    /// 0 for the default.
    pub session_timeout_ms: u32,
    /// 0 for the default.
    pub rebalance_timeout_ms: u32,
}

/// The coordinator's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatOutput {
    /// The member id.
    pub member_id: String,
    /// The member's epoch (-1 after a leave).
    pub member_epoch: i32,
    /// When to heartbeat next, at the latest.
    pub heartbeat_interval_ms: u32,
    /// The partitions the member may own now.
    pub assignment: BTreeSet<TopicPartition>,
    /// The group's session timeout.
    pub session_timeout_ms: u32,
    /// True when `assignment` is the member's whole target.
    pub assignment_complete: bool,
}

/// One member, as `describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// The client's name.
    pub client_id: String,
    /// The address it connects from.
    pub host: String,
    /// Its epoch.
    pub member_epoch: i32,
    /// Its subscription.
    pub subscribed: BTreeSet<String>,
    /// The partitions it owns.
    pub assignment: BTreeSet<TopicPartition>,
    /// Partitions of its target it does not own yet.
    pub pending: BTreeSet<TopicPartition>,
}

#[derive(Clone, Debug)]
struct Member {
    client_id: String,
    host: String,
    epoch: i32,
    /// The epoch before the last bump: a heartbeat whose answer was lost still carries it.
    previous_epoch: i32,
    subscribed: BTreeSet<String>,
    /// Partition -> the member epoch it was granted at.
    granted: BTreeMap<TopicPartition, i32>,
    last_heartbeat_ms: u64,
    /// This member's own session timeout: members of one group may differ, and a short one
    /// must not expire the others.
    session_timeout_ms: u32,
    rebalance_timeout_ms: u32,
    /// Since when the member has been asked to give up partitions.
    revoking_since_ms: Option<u64>,
}

/// One consumer group's membership and assignment.
#[derive(Clone, Debug)]
pub struct Group {
    id: String,
    epoch: i32,
    session_timeout_ms: u32,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, BTreeSet<TopicPartition>>,
    owners: BTreeMap<TopicPartition, String>,
    /// Partition counts of the subscribed topics when the target was computed.
    topic_counts: BTreeMap<String, u32>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            epoch: 0,
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            owners: BTreeMap::new(),
            topic_counts: BTreeMap::new(),
        }
    }

    /// The group epoch.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Partition counts of the subscribed topics when the target was last computed.
    pub fn topic_counts(&self) -> &BTreeMap<String, u32> {
        &self.topic_counts
    }

    /// The target assignment: what the assignor wants each member to own, by member id.
    pub fn target_assignment(&self) -> &BTreeMap<String, BTreeSet<TopicPartition>> {
        &self.target
    }

    /// The session timeout of the group's newest join (each member keeps its own).
    pub fn session_timeout_ms(&self) -> u32 {
        self.session_timeout_ms
    }

    /// How many members it has.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The topics some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// The state, derived from the members.
    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            return GroupState::Empty;
        }
        let converged = self.members.iter().all(|(id, member)| {
            member.epoch == self.epoch && self.target_of(id).eq(member.granted.keys())
        });
        if converged {
            GroupState::Stable
        } else {
            GroupState::Assigning
        }
    }

    /// Every member, sorted by id.
    pub fn describe_members(&self) -> Vec<MemberDescription> {
        self.members
            .iter()
            .map(|(id, member)| MemberDescription {
                member_id: id.clone(),
                client_id: member.client_id.clone(),
                host: member.host.clone(),
                member_epoch: member.epoch,
                subscribed: member.subscribed.clone(),
                assignment: member.granted.keys().cloned().collect(),
                pending: self
                    .target_of(id)
                    .filter(|p| !member.granted.contains_key(*p))
                    .cloned()
                    .collect(),
            })
            .collect()
    }

    /// Handles a heartbeat: a join, a heartbeat or a leave. `topics` maps every topic to its
    /// partition count; `new_member_id` names a member that joins without an id.
    ///
    /// # Errors
    /// [`BrokerError::UnknownMember`], [`BrokerError::FencedMemberEpoch`], and
    /// [`BrokerError::InvalidRequest`] for a join without a subscription, a bad member id or
    /// an out-of-range timeout. A refused heartbeat changes nothing.
    pub fn heartbeat(
        &mut self,
        input: HeartbeatInput,
        topics: &BTreeMap<String, u32>,
        now_ms: u64,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<HeartbeatOutput, BrokerError> {
        let session_timeout_ms = check_timeout(
            "session timeout",
            input.session_timeout_ms,
            DEFAULT_SESSION_TIMEOUT_MS,
        )?;
        let rebalance_timeout_ms = check_timeout(
            "rebalance timeout",
            input.rebalance_timeout_ms,
            DEFAULT_REBALANCE_TIMEOUT_MS,
        )?;
        let member_id = match input.member_epoch {
            0 => self.join(&input, new_member_id, session_timeout_ms, now_ms)?,
            -1 => {
                self.leave(&input.member_id)?;
                return Ok(HeartbeatOutput {
                    member_id: input.member_id,
                    member_epoch: -1,
                    heartbeat_interval_ms: 0,
                    assignment: BTreeSet::new(),
                    session_timeout_ms: self.session_timeout_ms,
                    assignment_complete: true,
                });
            }
            epoch if epoch > 0 => {
                self.check_heartbeat_epoch(&input.member_id, epoch, &input.owned)?;
                input.member_id.clone()
            }
            epoch => return Err(invalid_member_epoch(epoch)),
        };
        if input.member_epoch > 0 && input.subscribed.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(BrokerError::InvalidRequest(
                "a subscription needs at least one topic".to_string(),
            ));
        }
        let mut bump = false;
        if let Some(member) = self.members.get_mut(&member_id) {
            member.last_heartbeat_ms = now_ms;
            member.rebalance_timeout_ms = rebalance_timeout_ms;
            if input.session_timeout_ms != 0 {
                member.session_timeout_ms = session_timeout_ms;
            }
            if !input.client_id.is_empty() {
                member.client_id = input.client_id.clone();
            }
            if !input.host.is_empty() {
                member.host = input.host.clone();
            }
            if input.member_epoch > 0
                && let Some(subscribed) = &input.subscribed
                && *subscribed != member.subscribed
            {
                member.subscribed = subscribed.clone();
                bump = true;
            }
        }
        if bump || input.member_epoch == 0 {
            self.epoch += 1;
        }
        self.refresh_target(topics, bump || input.member_epoch == 0);
        Ok(self.reconcile(&member_id, &input.owned, now_ms))
    }

    /// Removes members whose session timed out or who did not give up revoked partitions in
    /// time; returns their ids. `topics` is as for [`Group::heartbeat`].
    pub fn expire(&mut self, topics: &BTreeMap<String, u32>, now_ms: u64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                let silent =
                    now_ms.saturating_sub(m.last_heartbeat_ms) > u64::from(m.session_timeout_ms);
                let stuck = m.revoking_since_ms.is_some_and(|since| {
                    now_ms.saturating_sub(since) > u64::from(m.rebalance_timeout_ms)
                });
                silent || stuck
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                self.remove_member(id);
            }
            self.epoch += 1;
            self.refresh_target(topics, true);
        }
        expired
    }

    /// Checks that `member_id` at `member_epoch` may commit or fetch `partitions`. An empty
    /// member id with epoch -1 is a commit from outside the group, allowed only while it has no
    /// members.
    ///
    /// # Errors
    /// [`BrokerError::UnknownMember`], [`BrokerError::FencedMemberEpoch`],
    /// [`BrokerError::StaleMemberEpoch`], [`BrokerError::PartitionNotAssigned`].
    pub fn check_owner<'a>(
        &self,
        member_id: &str,
        member_epoch: i32,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Result<(), BrokerError> {
        if member_id.is_empty() && member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or_else(|| self.unknown_member(member_id))?;
        if member_epoch > member.epoch || member_epoch <= 0 {
            return Err(self.fenced(member_id, member_epoch, member.epoch));
        }
        for partition in partitions {
            match member.granted.get(partition) {
                None => {
                    return Err(BrokerError::PartitionNotAssigned {
                        group: self.id.clone(),
                        member: member_id.to_string(),
                        topic: partition.topic.clone(),
                        partition: partition.partition,
                    });
                }
                Some(&granted_at) if member_epoch < granted_at => {
                    return Err(BrokerError::StaleMemberEpoch {
                        group: self.id.clone(),
                        member: member_id.to_string(),
                        epoch: member_epoch,
                        required: granted_at,
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn join(
        &mut self,
        input: &HeartbeatInput,
        new_member_id: impl FnOnce() -> String,
        session_timeout_ms: u32,
        now_ms: u64,
    ) -> Result<String, BrokerError> {
        let subscribed = input
            .subscribed
            .clone()
            .filter(|topics| !topics.is_empty())
            .ok_or_else(|| {
                BrokerError::InvalidRequest(
                    "a join needs the topics the member subscribes to".to_string(),
                )
            })?;
        let id = if input.member_id.is_empty() {
            new_member_id()
        } else {
            validate_member_id(&input.member_id)?;
            input.member_id.clone()
        };
        // A member that joins again under its own id lost its state: whatever it held is
        // released, as if it had left.
        self.remove_member(&id);
        self.session_timeout_ms = session_timeout_ms;
        self.members.insert(
            id.clone(),
            Member {
                client_id: input.client_id.clone(),
                host: input.host.clone(),
                epoch: 0,
                previous_epoch: 0,
                subscribed,
                granted: BTreeMap::new(),
                last_heartbeat_ms: now_ms,
                session_timeout_ms,
                rebalance_timeout_ms: DEFAULT_REBALANCE_TIMEOUT_MS,
                revoking_since_ms: None,
            },
        );
        Ok(id)
    }

    fn leave(&mut self, member_id: &str) -> Result<(), BrokerError> {
        if !self.members.contains_key(member_id) {
            return Err(self.unknown_member(member_id));
        }
        self.remove_member(member_id);
        self.epoch += 1;
        let counts = self.topic_counts.clone();
        self.refresh_target(&counts, true);
        Ok(())
    }

    fn check_heartbeat_epoch(
        &self,
        member_id: &str,
        epoch: i32,
        owned: &BTreeSet<TopicPartition>,
    ) -> Result<(), BrokerError> {
        let member = self
            .members
            .get(member_id)
            .ok_or_else(|| self.unknown_member(member_id))?;
        if epoch == member.epoch {
            return Ok(());
        }
        // The answer that moved the member to its current epoch may have been lost; it may
        // carry the epoch before, as long as it owns nothing it was not granted.
        if epoch == member.previous_epoch && owned.iter().all(|p| member.granted.contains_key(p)) {
            return Ok(());
        }
        Err(self.fenced(member_id, epoch, member.epoch))
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            for partition in member.granted.keys() {
                self.owners.remove(partition);
            }
        }
        self.target.remove(member_id);
    }

    /// Recomputes the target when `force`, or when a subscribed topic's partition count moved.
    fn refresh_target(&mut self, topics: &BTreeMap<String, u32>, force: bool) {
        let subscribed = self.subscribed_topics();
        let counts: BTreeMap<String, u32> = subscribed
            .iter()
            .filter_map(|t| topics.get(t).map(|&c| (t.clone(), c)))
            .collect();
        if !force && counts == self.topic_counts {
            return;
        }
        if !force {
            self.epoch += 1;
        }
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .iter()
            .map(|(id, member)| {
                let spec = MemberSpec {
                    subscribed: member.subscribed.clone(),
                    previous: self.target.get(id).cloned().unwrap_or_default(),
                };
                (id.clone(), spec)
            })
            .collect();
        self.target = assign(&specs, &counts);
        self.topic_counts = counts;
    }

    fn reconcile(
        &mut self,
        member_id: &str,
        owned: &BTreeSet<TopicPartition>,
        now_ms: u64,
    ) -> HeartbeatOutput {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let group_epoch = self.epoch;
        let session_timeout_ms = self.session_timeout_ms;
        let Some(member) = self.members.get_mut(member_id) else {
            return HeartbeatOutput {
                member_id: member_id.to_string(),
                member_epoch: -1,
                heartbeat_interval_ms: 0,
                assignment: BTreeSet::new(),
                session_timeout_ms,
                assignment_complete: true,
            };
        };
        // Partitions the member has stopped owning and should give up are free now.
        let released: Vec<TopicPartition> = member
            .granted
            .keys()
            .filter(|p| !target.contains(*p) && !owned.contains(*p))
            .cloned()
            .collect();
        for partition in &released {
            member.granted.remove(partition);
            self.owners.remove(partition);
        }
        let revoking = member.granted.keys().any(|p| !target.contains(p));
        if !released.is_empty() {
            // Progress: the rebalance timeout runs from the newest request to revoke.
            member.revoking_since_ms = None;
        }
        if revoking {
            member.revoking_since_ms.get_or_insert(now_ms);
        } else {
            member.revoking_since_ms = None;
            if member.epoch != group_epoch {
                member.previous_epoch = member.epoch;
                member.epoch = group_epoch;
            }
            for partition in &target {
                if !member.granted.contains_key(partition) && !self.owners.contains_key(partition) {
                    member.granted.insert(partition.clone(), member.epoch);
                    self.owners.insert(partition.clone(), member_id.to_string());
                }
            }
        }
        let assignment: BTreeSet<TopicPartition> = member
            .granted
            .keys()
            .filter(|p| target.contains(*p))
            .cloned()
            .collect();
        let converged = !revoking && assignment.len() == target.len();
        let steady = (member.session_timeout_ms / 3).clamp(100, MAX_HEARTBEAT_INTERVAL_MS);
        HeartbeatOutput {
            member_id: member_id.to_string(),
            member_epoch: member.epoch,
            heartbeat_interval_ms: if converged {
                steady
            } else {
                RECONCILING_HEARTBEAT_INTERVAL_MS.min(steady)
            },
            assignment,
            session_timeout_ms: member.session_timeout_ms,
            assignment_complete: converged,
        }
    }

    fn target_of<'a>(&'a self, member_id: &str) -> impl Iterator<Item = &'a TopicPartition> {
        self.target.get(member_id).into_iter().flatten()
    }

    fn unknown_member(&self, member_id: &str) -> BrokerError {
        BrokerError::UnknownMember {
            group: self.id.clone(),
            member: member_id.to_string(),
        }
    }

    fn fenced(&self, member_id: &str, epoch: i32, current: i32) -> BrokerError {
        BrokerError::FencedMemberEpoch {
            group: self.id.clone(),
            member: member_id.to_string(),
            epoch,
            current,
        }
    }
}

fn check_timeout(what: &str, value: u32, default: u32) -> Result<u32, BrokerError> {
    match value {
        0 => Ok(default),
        v if (MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&v) => Ok(v),
        v => Err(BrokerError::InvalidRequest(format!(
            "{what} {v} ms is outside {MIN_SESSION_TIMEOUT_MS}..={MAX_SESSION_TIMEOUT_MS} ms"
        ))),
    }
}

/// The error for a member epoch below -1: none means anything.
pub(super) fn invalid_member_epoch(epoch: i32) -> BrokerError {
    BrokerError::InvalidRequest(format!(
        "member epoch {epoch}: use 0 to join, -1 to leave, or the epoch last given"
    ))
}

#[cfg(test)]
mod tests;
