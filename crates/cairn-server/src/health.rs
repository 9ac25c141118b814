//! The node's health as `grpc.health.v1` reports it: SERVING unless a partition is stopped (its
//! log would not open, or a write or fsync failed and poisoned it), or the node has been taken
//! out of its cluster. A partition that merely holds damaged batches keeps the node SERVING: it
//! serves every other offset, and restarting the node would not mend it. The detail (which
//! partitions, why) is `cairn.v1.Metadata/GetNodeHealth` and `GET /health`.
//!
//! The status is polled from the broker rather than pushed by it: the broker knows nothing of
//! gRPC, and a poll per second over in-memory state costs nothing.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use cairn_broker::{Broker, PartitionCondition, PartitionProblem};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often the status is brought up to date.
pub const HEALTH_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// True unless a partition in `problems` is stopped.
pub fn serving(problems: &[PartitionProblem]) -> bool {
    !problems
        .iter()
        .any(|p| matches!(p.condition, PartitionCondition::Stopped { .. }))
}

/// The node's status: [`serving`], and still a member of its cluster. A node taken out with
/// `cairn cluster remove-node` keeps running on its last view of the cluster until it is
/// stopped; NOT_SERVING says so to whatever checks it.
pub fn node_serving(broker: &Broker, problems: &[PartitionProblem]) -> bool {
    serving(problems) && !broker.has_left_cluster()
}

/// The line that says why a node taken out of its cluster does not serve. It does not say the
/// process can be stopped now: until the controller has dropped it from its voters, stopping
/// it can hold the removal up (in a two-node cluster the change needs both).
pub const LEFT_CLUSTER: &str = "this node is taken out of the cluster (cairn cluster remove-node) and serves nothing: stop its process once remove-node --wait has returned";

/// One line per problem, for `GET /health` and the log.
pub fn describe(problem: &PartitionProblem) -> String {
    match &problem.condition {
        PartitionCondition::Stopped { reason } => {
            format!("stopped {}-{}: {reason}", problem.topic, problem.partition)
        }
        PartitionCondition::Damaged(damage) => format!(
            "damaged {}-{}: batch at {} (offset {} or later): {}; {} reads answered CORRUPT_MESSAGE",
            problem.topic,
            problem.partition,
            damage.location,
            damage.offset,
            damage.reason,
            problem.corrupt_reads
        ),
    }
}

/// Sets the server-wide status (service `""`) from the broker's partitions now; returns
/// whether the node serves. Called once before the server announces it is ready, so the first
/// health check already tells the truth.
pub async fn set_now(broker: &Broker, reporter: &HealthReporter) -> bool {
    let problems = broker.problems();
    let now_serving = node_serving(broker, &problems);
    report(broker, &problems, now_serving, reporter).await;
    now_serving
}

/// Keeps the server-wide status in step with the broker until the task is dropped, logging each
/// change. `was_serving` is what [`set_now`] found.
pub async fn watch(broker: Arc<Broker>, reporter: HealthReporter, mut was_serving: bool) {
    let mut ticker = tokio::time::interval(HEALTH_POLL_INTERVAL);
    loop {
        ticker.tick().await;
        let problems = broker.problems();
        let now_serving = node_serving(&broker, &problems);
        if now_serving != was_serving {
            was_serving = now_serving;
            report(&broker, &problems, now_serving, &reporter).await;
        }
    }
}

async fn report(
    broker: &Broker,
    problems: &[PartitionProblem],
    serving: bool,
    reporter: &HealthReporter,
) {
    if serving {
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
    } else {
        if broker.has_left_cluster() {
            tracing::warn!("health: NOT_SERVING: {LEFT_CLUSTER}");
        } else {
            let detail: Vec<String> = problems.iter().map(describe).collect();
            tracing::error!(problems = ?detail, "health: NOT_SERVING while a partition is stopped");
        }
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
    }
}

/// Renders the partitions' health for `/metrics`: how many are stopped and damaged (always
/// present, so an alert can fire on them), and one series per partition that is, naming it.
pub fn render_metrics(problems: &[PartitionProblem], out: &mut String) {
    let stopped = problems.len() - problems.iter().filter(|p| is_damaged(p)).count();
    let damaged = problems.len() - stopped;
    out.push_str("# HELP cairn_partitions_stopped Partitions that take no requests: their log would not open, or a write or fsync failed.\n# TYPE cairn_partitions_stopped gauge\n");
    let _ = writeln!(out, "cairn_partitions_stopped {stopped}");
    out.push_str("# HELP cairn_partitions_damaged Partitions that serve but hold damaged batches (reads of them answer CORRUPT_MESSAGE).\n# TYPE cairn_partitions_damaged gauge\n");
    let _ = writeln!(out, "cairn_partitions_damaged {damaged}");
    if problems.is_empty() {
        return;
    }
    out.push_str("# HELP cairn_partition_unhealthy 1 for each partition that is stopped or damaged, by state.\n# TYPE cairn_partition_unhealthy gauge\n");
    for p in problems {
        let state = if is_damaged(p) { "damaged" } else { "stopped" };
        let _ = writeln!(
            out,
            "cairn_partition_unhealthy{{topic=\"{}\",partition=\"{}\",state=\"{state}\"}} 1",
            p.topic, p.partition
        );
    }
    out.push_str("# HELP cairn_partition_corrupt_reads_total Reads of a partition answered CORRUPT_MESSAGE since the node started.\n# TYPE cairn_partition_corrupt_reads_total counter\n");
    for p in problems.iter().filter(|p| p.corrupt_reads > 0) {
        let _ = writeln!(
            out,
            "cairn_partition_corrupt_reads_total{{topic=\"{}\",partition=\"{}\"}} {}",
            p.topic, p.partition, p.corrupt_reads
        );
    }
}

fn is_damaged(problem: &PartitionProblem) -> bool {
    matches!(problem.condition, PartitionCondition::Damaged(_))
}
