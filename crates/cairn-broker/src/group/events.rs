//! The INFO log of consumer-group changes an operator looks for after the fact: joins, leaves,
//! fencing, expiry, rebalances (with the new target assignment), offset resets and deletes.
//! Offset commits are deliberately not logged: they come every few seconds per member.
//!
//! Every line carries `group` and, where there is one, `member`, so `grep group=orders-svc`
//! tells a group's story. The functions here only format and log; they decide nothing, and
//! counting a rebalance is the caller's (it owns the counter).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::assignor::TopicPartition;
use super::offset_record::OffsetValue;
use super::state::{Group, HeartbeatInput, HeartbeatOutput};
use crate::error::BrokerError;

/// What a heartbeat's log line needs from its input, taken before the input is consumed.
pub(super) struct HeartbeatFacts {
    member_epoch: i32,
    member_id: String,
    client_id: String,
    host: String,
    subscribed: Option<BTreeSet<String>>,
}

impl HeartbeatFacts {
    /// The facts of `input`; the subscription is copied only for a join, which logs it.
    pub(super) fn of(input: &HeartbeatInput) -> HeartbeatFacts {
        HeartbeatFacts {
            member_epoch: input.member_epoch,
            member_id: input.member_id.clone(),
            client_id: input.client_id.clone(),
            host: input.host.clone(),
            subscribed: (input.member_epoch == 0)
                .then(|| input.subscribed.clone())
                .flatten(),
        }
    }
}

/// Logs what a heartbeat changed: a join, a leave, a refusal that fences the member, and a
/// rebalance when the group epoch moved from `epoch_before`. Returns true for a rebalance.
pub(super) fn log_heartbeat(
    group_id: &str,
    facts: &HeartbeatFacts,
    result: &Result<HeartbeatOutput, BrokerError>,
    group: Option<&Group>,
    epoch_before: i32,
) -> bool {
    match result {
        Ok(out) if facts.member_epoch == 0 => tracing::info!(
            group = group_id,
            member = %out.member_id,
            client_id = %facts.client_id,
            host = %facts.host,
            topics = %join_names(facts.subscribed.iter().flatten()),
            "group member joined"
        ),
        Ok(out) if facts.member_epoch == -1 => {
            tracing::info!(group = group_id, member = %out.member_id, "group member left");
        }
        Ok(_) => {}
        Err(err @ (BrokerError::FencedMemberEpoch { .. } | BrokerError::UnknownMember { .. })) => {
            tracing::info!(
                group = group_id,
                member = %facts.member_id,
                epoch = facts.member_epoch,
                %err,
                "group member fenced: it must rejoin"
            )
        }
        Err(_) => {}
    }
    match group {
        Some(group) if result.is_ok() && group.epoch() != epoch_before => {
            log_rebalance(group_id, group, "membership or subscription changed");
            true
        }
        _ => false,
    }
}

/// Logs members removed for a silent session or a revoke not finished in time.
pub(super) fn log_expired(group_id: &str, expired: &[String], group: &Group) {
    for member in expired {
        tracing::info!(
            group = group_id,
            member = %member,
            "group member removed: session or rebalance timeout"
        );
    }
    log_rebalance(group_id, group, "members expired");
}

/// Logs a new target assignment.
fn log_rebalance(group_id: &str, group: &Group, reason: &str) {
    tracing::info!(
        group = group_id,
        epoch = group.epoch(),
        members = group.member_count(),
        assignment = %assignment_text(group.target_assignment()),
        reason,
        "group rebalanced"
    );
}

/// Logs an offset reset: each partition's offset before and after.
pub(super) fn log_reset(
    group_id: &str,
    topic: &str,
    before: &BTreeMap<TopicPartition, i64>,
    after: &[(TopicPartition, Option<OffsetValue>)],
) {
    let mut changes = String::new();
    for (partition, value) in after {
        let old = before
            .get(partition)
            .map_or_else(|| "none".to_string(), i64::to_string);
        let new = value
            .as_ref()
            .map_or_else(|| "none".to_string(), |v| v.offset.to_string());
        if !changes.is_empty() {
            changes.push_str(", ");
        }
        let _ = write!(changes, "{}: {old} -> {new}", partition.partition);
    }
    tracing::info!(group = group_id, topic, offsets = %changes, "group offsets reset");
}

/// Logs a deleted group and how many committed offsets went with it.
pub(super) fn log_deleted(group_id: &str, offset_count: usize) {
    tracing::info!(
        group = group_id,
        offsets_deleted = offset_count,
        "group deleted"
    );
}

/// `member=[topic-0,topic-1] other=[]`, members in id order.
fn assignment_text(target: &BTreeMap<String, BTreeSet<TopicPartition>>) -> String {
    let mut text = String::new();
    for (member, partitions) in target {
        if !text.is_empty() {
            text.push(' ');
        }
        let names = partitions
            .iter()
            .map(|p| format!("{}-{}", p.topic, p.partition));
        let _ = write!(text, "{member}=[{}]", join_names(names));
    }
    text
}

fn join_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for name in names {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: u32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }

    #[test]
    fn assignment_text_lists_each_member_partitions_in_order() {
        let mut target = BTreeMap::new();
        target.insert("b".to_string(), BTreeSet::from([tp("orders", 1)]));
        target.insert(
            "a".to_string(),
            BTreeSet::from([tp("orders", 2), tp("orders", 0)]),
        );
        target.insert("c".to_string(), BTreeSet::new());
        assert_eq!(
            assignment_text(&target),
            "a=[orders-0,orders-2] b=[orders-1] c=[]"
        );
    }
}
