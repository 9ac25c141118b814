//! Consumer-group figures for `/metrics`, read from the broker's coordinator at scrape time:
//! members and state per group, and per partition the committed offset and the lag (high
//! watermark minus committed offset), the figure operators alert on.

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
        for state in [
            GroupState::Empty,
            GroupState::Assigning,
            GroupState::Stable,
            GroupState::Dead,
        ] {
            let _ = writeln!(
                states,
                "cairn_group_state{{group=\"{id}\",state=\"{}\"}} {}",
                state.as_str(),
                u8::from(state == group.state)
            );
        }
        for partition in &group.offsets {
            let labels = format!(
                "group=\"{id}\",topic=\"{}\",partition=\"{}\"",
                partition.partition.topic, partition.partition.partition
            );
            if let Some(offset) = partition.committed {
                let _ = writeln!(
                    committed,
                    "cairn_group_committed_offset{{{labels}}} {offset}"
                );
            }
            let _ = writeln!(lag, "cairn_group_lag{{{labels}}} {}", partition.lag);
        }
    }
    for section in [members, states, committed, lag] {
        out.push_str(&section);
    }
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
