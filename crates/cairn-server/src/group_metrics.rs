//! Consumer-group figures for `/metrics`, read from the broker's coordinator at scrape time:
//! members and state per group, rebalances, and per partition the committed offset, the lag in
//! records (high watermark minus committed offset) and in seconds (the age of the next record
//! not consumed), the figures operators alert on.
//!
//! Partitions of deleted topics are left out, so their series go with the topic. The lag in
//! seconds costs one batch read per partition that is behind; partitions caught up cost none.

use std::fmt::Write;

use cairn_broker::{Broker, GroupState};

/// Most groups exported, so a broker with very many groups cannot blow up a scrape.
const MAX_GROUPS_EXPORTED: usize = 1000;

/// Appends the group series to `out`.
pub fn render(broker: &Broker, out: &mut String) {
    let mut members = String::from(
        "# HELP cairn_group_members Members of a consumer group.\n# TYPE cairn_group_members gauge\n",
    );
    let mut states = String::from(
        "# HELP cairn_group_state 1 for the state a consumer group is in.\n# TYPE cairn_group_state gauge\n",
    );
    let mut committed = String::from(
        "# HELP cairn_group_committed_offset The offset a group committed for a partition.\n# TYPE cairn_group_committed_offset gauge\n",
    );
    let mut lag = String::from(
        "# HELP cairn_group_lag Records of a partition the group has not committed yet (high watermark minus committed offset).\n# TYPE cairn_group_lag gauge\n",
    );
    let mut lag_seconds = String::from(
        "# HELP cairn_group_lag_seconds Age of the next record the group has not consumed in a partition with a committed offset (now minus its timestamp); 0 when caught up.\n# TYPE cairn_group_lag_seconds gauge\n",
    );
    for listing in broker.list_groups().into_iter().take(MAX_GROUPS_EXPORTED) {
        let Ok(group) = broker.describe_group(&listing.group) else {
            continue;
        };
        let id = escape(&group.group);
        let _ = writeln!(
            members,
            "cairn_group_members{{group=\"{id}\"}} {}",
            group.members.len()
        );
        // Not `Dead`: a deleted group is never listed, so that series could only be 0.
        for state in [GroupState::Empty, GroupState::Assigning, GroupState::Stable] {
            let _ = writeln!(
                states,
                "cairn_group_state{{group=\"{id}\",state=\"{}\"}} {}",
                state.as_str(),
                u8::from(state == group.state)
            );
        }
        for partition in &group.offsets {
            if broker.partition_count(&partition.partition.topic).is_err() {
                continue;
            }
            let labels = format!(
                "group=\"{id}\",topic=\"{}\",partition=\"{}\"",
                partition.partition.topic, partition.partition.partition
            );
            if let Some(offset) = partition.committed {
                let _ = writeln!(
                    committed,
                    "cairn_group_committed_offset{{{labels}}} {offset}"
                );
                let age_ms = if partition.lag > 0 {
                    broker.next_record_age_ms(&partition.partition, offset)
                } else {
                    Ok(0)
                };
                // A damaged batch at the offset leaves the series out rather than guessing.
                if let Ok(age_ms) = age_ms {
                    let _ = writeln!(
                        lag_seconds,
                        "cairn_group_lag_seconds{{{labels}}} {}",
                        age_ms as f64 / 1000.0
                    );
                }
            }
            let _ = writeln!(lag, "cairn_group_lag{{{labels}}} {}", partition.lag);
        }
    }
    for section in [members, states, committed, lag, lag_seconds] {
        out.push_str(&section);
    }
    let _ = writeln!(
        out,
        "# HELP cairn_group_rebalances_total Target assignments recomputed (a group epoch moved: a join, leave, expiry, or subscription or partition count change), all groups.\n\
         # TYPE cairn_group_rebalances_total counter\n\
         cairn_group_rebalances_total {}",
        broker.group_rebalance_count()
    );
}

/// Escapes a label value as the Prometheus text format asks (group ids are free text).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
