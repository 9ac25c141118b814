//! Replication figures for `/metrics` on a node in a cluster (the `cairn_cluster_*` series),
//! from the broker's [`ReplicationStatus`] and [`LeaderBalanceStatus`] read at scrape time. A single node has no cluster
//! machinery and renders none of them, so its exposition is unchanged.
//!
//! Follower lag is the one family per partition, in two units: one series per follower of each
//! partition led here, so a node leading a third of 1,000 partitions with three copies renders
//! about 670 lines of each.

use std::fmt::Write as _;

use cairn_broker::cluster::{ControllerRole, LeaderBalanceStatus, ReplicationStatus};

/// Appends the cluster series to `out`.
pub fn render(status: &ReplicationStatus, out: &mut String) {
    gauge(
        out,
        "cairn_cluster_leaders",
        "Partitions whose Raft group this node leads.",
        status.leader_count,
    );
    gauge(
        out,
        "cairn_cluster_under_replicated_partitions",
        "Partitions this node leads with fewer in-sync replicas than replicas (a follower over 1000 entries behind, or on a node this node's probes cannot reach).",
        status.under_replicated_count,
    );
    gauge(
        out,
        "cairn_cluster_offline_partitions",
        "Partitions held on this node whose group knows no leader.",
        status.offline_count,
    );
    let _ = writeln!(
        out,
        "# HELP cairn_cluster_elections_total Times a partition group on this node became leader (each term won counts once) since the process started.\n\
         # TYPE cairn_cluster_elections_total counter\n\
         cairn_cluster_elections_total {}",
        status.elections_total
    );
    let _ = writeln!(
        out,
        "# HELP cairn_cluster_heals_total Damaged spans of committed entries this node's copies rewrote with a peer's good copies since the process started.\n\
         # TYPE cairn_cluster_heals_total counter\n\
         cairn_cluster_heals_total {}",
        status.heals_total
    );
    let _ = writeln!(
        out,
        "# HELP cairn_cluster_controller_leader The controller leader's node id as this node knows it; -1 when there is none.\n\
         # TYPE cairn_cluster_controller_leader gauge\n\
         cairn_cluster_controller_leader {}",
        status.controller_leader.unwrap_or(-1)
    );
    out.push_str(
        "# HELP cairn_cluster_controller_role This node's role in the controller Raft group: 1 for the role it has, 0 for the others (the leader is the active controller).\n# TYPE cairn_cluster_controller_role gauge\n",
    );
    for role in ControllerRole::ALL {
        let _ = writeln!(
            out,
            "cairn_cluster_controller_role{{role=\"{}\"}} {}",
            role.as_str(),
            u8::from(role == status.controller_role)
        );
    }
    gauge(
        out,
        "cairn_cluster_controller_term",
        "The controller group's Raft term as this node knows it; it grows with each controller election.",
        status.controller_term,
    );
    let _ = writeln!(
        out,
        "# HELP cairn_cluster_controller_applied_index Raft index of the last cluster metadata entry this node applied; -1 before the first. A node behind the others for long serves stale metadata.\n\
         # TYPE cairn_cluster_controller_applied_index gauge\n\
         cairn_cluster_controller_applied_index {}",
        status
            .controller_applied_index
            .map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX))
    );
    out.push_str(
        "# HELP cairn_cluster_node_up 1 while a node answers this node's liveness probes, 0 once it has been silent past the election timeout (this node is always 1).\n# TYPE cairn_cluster_node_up gauge\n",
    );
    for node in &status.nodes_up {
        let _ = writeln!(
            out,
            "cairn_cluster_node_up{{node=\"{}\"}} {}",
            node.node_id,
            u8::from(node.up)
        );
    }
    out.push_str(
        "# HELP cairn_cluster_follower_lag_entries Raft entries a follower of a partition led by this node lacks (the leader's last log index minus the follower's matched index).\n# TYPE cairn_cluster_follower_lag_entries gauge\n",
    );
    for lag in &status.follower_lags {
        // Topic names are [a-zA-Z0-9._-] only: nothing to escape.
        let _ = writeln!(
            out,
            "cairn_cluster_follower_lag_entries{{topic=\"{}\",partition=\"{}\",follower=\"{}\"}} {}",
            lag.topic, lag.partition, lag.follower, lag.lag_entries
        );
    }
    out.push_str(
        "# HELP cairn_cluster_follower_lag_seconds How long a follower of a partition led by this node has been behind: seconds since the leader's log first grew past the end of the follower's copy, 0 while it holds everything the leader has (Kafka's time since the follower was last caught up). Counted from when this node became leader at the earliest; a silent follower with nothing to copy reads 0 (see cairn_cluster_node_up).\n# TYPE cairn_cluster_follower_lag_seconds gauge\n",
    );
    for lag in &status.follower_lags {
        let _ = writeln!(
            out,
            "cairn_cluster_follower_lag_seconds{{topic=\"{}\",partition=\"{}\",follower=\"{}\"}} {}",
            lag.topic,
            lag.partition,
            lag.follower,
            Seconds(lag.lag_ms)
        );
    }
}

/// Appends the preferred-leader balancing series to `out`.
pub fn render_leader_balance(status: &LeaderBalanceStatus, out: &mut String) {
    gauge(
        out,
        "cairn_cluster_preferred_leader_imbalance",
        "Partitions this node leads whose preferred replica (the first in the metadata) is another node; summed over the nodes, the cluster's partitions led off their preferred replicas.",
        status.imbalance_count,
    );
    let _ = writeln!(
        out,
        "# HELP cairn_cluster_leader_balance_moves_total Leaderships this node moved back to their preferred replicas (automatic and asked-for passes) since the process started.\n\
         # TYPE cairn_cluster_leader_balance_moves_total counter\n\
         cairn_cluster_leader_balance_moves_total {}\n\
         # HELP cairn_cluster_leader_balance_failed_moves_total Moves to a preferred replica this node started that failed (the replica did not take over in time, the leadership went elsewhere, the group stopped); the old leader keeps leading.\n\
         # TYPE cairn_cluster_leader_balance_failed_moves_total counter\n\
         cairn_cluster_leader_balance_failed_moves_total {}",
        status.moves_total, status.failed_moves_total
    );
}

/// Milliseconds shown as seconds with three decimals, exactly (no float rounding).
struct Seconds(u64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000, self.0 % 1_000)
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    crate::metrics::write_single_sample(out, name, "gauge", help, value);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_broker::cluster::{FollowerLag, NodeUp};

    use super::*;

    #[test]
    fn renders_every_family_with_help_type_and_labels() {
        let status = ReplicationStatus {
            leader_count: 2,
            under_replicated_count: 1,
            offline_count: 3,
            elections_total: 5,
            heals_total: 2,
            controller_leader: None,
            controller_role: ControllerRole::Candidate,
            controller_term: 9,
            controller_applied_index: None,
            nodes_up: vec![
                NodeUp {
                    node_id: 1,
                    up: true,
                },
                NodeUp {
                    node_id: 2,
                    up: false,
                },
            ],
            follower_lags: vec![FollowerLag {
                topic: Arc::from("orders"),
                partition: 4,
                follower: 2,
                lag_entries: 17,
                lag_ms: 2_045,
            }],
        };
        let mut out = String::new();
        render(&status, &mut out);
        for line in [
            "cairn_cluster_leaders 2",
            "cairn_cluster_under_replicated_partitions 1",
            "cairn_cluster_offline_partitions 3",
            "cairn_cluster_elections_total 5",
            "cairn_cluster_heals_total 2",
            "cairn_cluster_controller_leader -1",
            "cairn_cluster_node_up{node=\"1\"} 1",
            "cairn_cluster_node_up{node=\"2\"} 0",
            "cairn_cluster_follower_lag_entries{topic=\"orders\",partition=\"4\",follower=\"2\"} 17",
            "cairn_cluster_follower_lag_seconds{topic=\"orders\",partition=\"4\",follower=\"2\"} 2.045",
            "cairn_cluster_controller_role{role=\"candidate\"} 1",
            "cairn_cluster_controller_role{role=\"leader\"} 0",
            "cairn_cluster_controller_term 9",
            "cairn_cluster_controller_applied_index -1",
            "# TYPE cairn_cluster_elections_total counter",
            "# TYPE cairn_cluster_follower_lag_entries gauge",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "missing {line:?} in:\n{out}"
            );
        }
        // Every sample's family has exactly one HELP and one TYPE line.
        for family in [
            "cairn_cluster_leaders",
            "cairn_cluster_under_replicated_partitions",
            "cairn_cluster_offline_partitions",
            "cairn_cluster_elections_total",
            "cairn_cluster_heals_total",
            "cairn_cluster_controller_leader",
            "cairn_cluster_node_up",
            "cairn_cluster_follower_lag_entries",
            "cairn_cluster_follower_lag_seconds",
            "cairn_cluster_controller_role",
            "cairn_cluster_controller_term",
            "cairn_cluster_controller_applied_index",
        ] {
            let help = format!("# HELP {family} ");
            let kind = format!("# TYPE {family} ");
            assert_eq!(
                out.lines().filter(|l| l.starts_with(&help)).count(),
                1,
                "{family}"
            );
            assert_eq!(
                out.lines().filter(|l| l.starts_with(&kind)).count(),
                1,
                "{family}"
            );
        }
        // One role is set, whichever it is.
        let roles_set = out
            .lines()
            .filter(|l| l.starts_with("cairn_cluster_controller_role{") && l.ends_with(" 1"))
            .count();
        assert_eq!(roles_set, 1, "{out}");
    }

    #[test]
    fn renders_the_balancing_series_with_help_and_type() {
        let status = LeaderBalanceStatus {
            imbalance_count: 4,
            moves_total: 7,
            failed_moves_total: 1,
        };
        let mut out = String::new();
        render_leader_balance(&status, &mut out);
        for line in [
            "cairn_cluster_preferred_leader_imbalance 4",
            "cairn_cluster_leader_balance_moves_total 7",
            "cairn_cluster_leader_balance_failed_moves_total 1",
            "# TYPE cairn_cluster_preferred_leader_imbalance gauge",
            "# TYPE cairn_cluster_leader_balance_moves_total counter",
            "# TYPE cairn_cluster_leader_balance_failed_moves_total counter",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "missing {line:?} in:\n{out}"
            );
        }
        assert_eq!(out.lines().filter(|l| l.starts_with("# HELP ")).count(), 3);
    }

    #[test]
    fn lag_seconds_are_exact_milliseconds() {
        for (ms, shown) in [
            (0, "0.000"),
            (7, "0.007"),
            (1_000, "1.000"),
            (61_250, "61.250"),
        ] {
            assert_eq!(Seconds(ms).to_string(), shown);
        }
    }
}
