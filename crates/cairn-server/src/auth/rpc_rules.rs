//! The calls whose resource is the cluster, by gRPC path, with the operation each needs: the
//! layer checks these before the service runs. Calls on topics and groups are checked by their
//! services, which know the resource only once the request is decoded. Health and reflection
//! are listed as open.

use cairn_controller::security::acl::AclOperation;

/// What the layer does with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PathRule {
    /// No authentication and no check (health, reflection).
    Open,
    /// Needs this operation on the cluster.
    Cluster(AclOperation),
    /// Checked by the service (or needs nothing beyond authentication).
    InService,
}

/// The rule for a gRPC path (`/package.Service/Method`).
pub(super) fn rule_for(path: &str) -> PathRule {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return PathRule::Open;
    }
    if path.starts_with("/cairn.cluster.v1.Peer/") {
        return PathRule::Cluster(AclOperation::ClusterAction);
    }
    let Some(method) = path.strip_prefix("/cairn.v1.Admin/") else {
        return PathRule::InService;
    };
    match method {
        "DescribeCluster" | "ListUsers" | "ListAcls" | "ListQuotas" => {
            PathRule::Cluster(AclOperation::Describe)
        }
        "BalanceLeaders" | "AddNode" | "RemoveNode" | "ReassignPartitions" | "UpsertUser"
        | "DeleteUser" | "CreateAcls" | "DeleteAcls" | "SetQuota" | "RemoveQuota" => {
            PathRule::Cluster(AclOperation::Alter)
        }
        _ => PathRule::InService,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_method_has_a_deliberate_rule() {
        for method in crate::metrics::ADMIN_METHODS {
            let rule = rule_for(&format!("/cairn.v1.Admin/{method}"));
            let topic_level = matches!(
                method,
                "CreateTopic"
                    | "ListTopics"
                    | "DescribeTopic"
                    | "DeleteTopic"
                    | "AddPartitions"
                    | "AlterConfigs"
            );
            assert_eq!(
                rule == PathRule::InService,
                topic_level,
                "{method}: {rule:?}"
            );
        }
        assert_eq!(rule_for("/grpc.health.v1.Health/Check"), PathRule::Open);
        assert_eq!(
            rule_for("/cairn.cluster.v1.Peer/Stream"),
            PathRule::Cluster(AclOperation::ClusterAction)
        );
    }
}
