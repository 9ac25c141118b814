//! `cairn cluster balance-leaders`: moves partition leaderships back to their preferred
//! replicas now (Kafka's `kafka-leader-election --election-type preferred`), on every node.
//!
//! Each node moves only the leaderships it holds (the Admin service's BalanceLeaders), so the
//! command asks the cluster for its nodes and then each node at its own address, in turn. A
//! node the command cannot reach is reported, not fatal: balancing the others is still worth
//! doing while one is down. A refusal of the request itself (an unknown topic) is fatal, since
//! every node would give the same answer.

use anyhow::Context as _;
use cairn_client::{Admin, BalanceLeadersResponse, ClientError, ErrorCode, LeaderNotMovedReason};
use serde::Serialize;

use crate::target::Target;
use crate::topic::Format;

/// What the command reports, in JSON as in text.
#[derive(Debug, Default, Serialize)]
struct BalanceJson {
    /// Leaderships moved, over every node asked.
    moved_count: usize,
    moved: Vec<MovedJson>,
    /// Leaderships off their preferred replicas that stayed, with why.
    not_moved: Vec<NotMovedJson>,
    /// Every node of the cluster, with whether it was asked successfully.
    nodes: Vec<NodeJson>,
}

#[derive(Debug, Serialize)]
struct MovedJson {
    topic: String,
    partition: i32,
    from: i32,
    to: i32,
}

#[derive(Debug, Serialize)]
struct NotMovedJson {
    topic: String,
    partition: i32,
    leader: i32,
    preferred: i32,
    /// The reason's code, e.g. "preferred_not_in_sync".
    reason: String,
    /// The reason in words.
    detail: String,
}

#[derive(Debug, Serialize)]
struct NodeJson {
    node_id: i32,
    address: String,
    /// Whether the node ran a pass for this command.
    answered: bool,
    /// Why it did not, when it did not.
    error: Option<String>,
}

/// The reason's code as the JSON shows it: the enum value's name without its prefix, in lower
/// case (`LEADER_NOT_MOVED_REASON_DEFERRED` is `deferred`).
fn reason_code(reason: i32) -> String {
    let name = LeaderNotMovedReason::try_from(reason)
        .unwrap_or(LeaderNotMovedReason::Unspecified)
        .as_str_name();
    name.trim_start_matches("LEADER_NOT_MOVED_REASON_")
        .to_ascii_lowercase()
}

impl BalanceJson {
    fn add(&mut self, response: BalanceLeadersResponse) {
        self.moved_count += response.moved.len();
        self.moved
            .extend(response.moved.into_iter().map(|m| MovedJson {
                topic: m.topic,
                partition: m.partition,
                from: m.from_node_id,
                to: m.to_node_id,
            }));
        self.not_moved
            .extend(response.not_moved.into_iter().map(|n| NotMovedJson {
                reason: reason_code(n.reason),
                topic: n.topic,
                partition: n.partition,
                leader: n.leader_node_id,
                preferred: n.preferred_node_id,
                detail: n.detail,
            }));
    }
}

/// Whether `err` is the broker refusing the request itself (the same on every node), rather
/// than this node failing to answer.
fn is_refusal(err: &ClientError) -> bool {
    matches!(
        err.code(),
        Some(ErrorCode::UnknownTopicOrPartition | ErrorCode::InvalidRequest)
    )
}

/// Runs `cairn cluster balance-leaders`.
///
/// # Errors
/// No node of `target` answers; a node refuses the request (an unknown topic).
pub async fn run(
    target: &Target,
    topic: Option<&str>,
    max_moves: i32,
    format: Format,
) -> anyhow::Result<()> {
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    let cluster = admin
        .describe_cluster()
        .await
        .context("listing the cluster's nodes")?;
    let mut report = BalanceJson::default();
    for node in cluster.nodes {
        let asked = match Admin::connect_with(&node.address, target.timeouts()).await {
            Ok(admin) => admin.balance_leaders(topic, max_moves).await,
            Err(err) => Err(err),
        };
        let error = match asked {
            Ok(response) if response.answering_node_id == node.node_id => {
                report.add(response);
                None
            }
            Ok(response) => Some(format!(
                "not reached (node {} answered instead)",
                response.answering_node_id
            )),
            Err(err) if is_refusal(&err) => {
                return Err(err).with_context(|| format!("node {} refused", node.node_id));
            }
            Err(err) => Some(err.to_string()),
        };
        report.nodes.push(NodeJson {
            node_id: node.node_id,
            address: node.address,
            answered: error.is_none(),
            error,
        });
    }
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Text => print_text(&report)?,
    }
    Ok(())
}

fn print_text(report: &BalanceJson) -> std::io::Result<()> {
    outln!(
        "moved {} leadership{} to the preferred replica; {} stayed off it",
        report.moved_count,
        if report.moved_count == 1 { "" } else { "s" },
        report.not_moved.len()
    )?;
    for moved in &report.moved {
        outln!(
            "  {}-{}  node {} -> node {}",
            moved.topic,
            moved.partition,
            moved.from,
            moved.to
        )?;
    }
    for stayed in &report.not_moved {
        outln!(
            "  {}-{}  stays on node {} (preferred {}): {}",
            stayed.topic,
            stayed.partition,
            stayed.leader,
            stayed.preferred,
            stayed.detail
        )?;
    }
    for node in report.nodes.iter().filter(|n| !n.answered) {
        outln!(
            "node {} at {} not asked: {}",
            node.node_id,
            node.address,
            node.error.as_deref().unwrap_or("no answer")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_short_lower_case_names() {
        assert_eq!(
            reason_code(LeaderNotMovedReason::PreferredNotInSync as i32),
            "preferred_not_in_sync"
        );
        assert_eq!(reason_code(999), "unspecified");
    }
}
