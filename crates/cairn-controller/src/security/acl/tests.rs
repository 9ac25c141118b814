use super::*;

fn acl(principal: &str, op: AclOperation, name: &str, pattern: PatternType) -> AclBinding {
    AclBinding {
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        resource_type: ResourceType::Topic,
        resource_name: name.into(),
        pattern_type: pattern,
        permission: Permission::Allow,
    }
}

fn deny(mut binding: AclBinding) -> AclBinding {
    binding.permission = Permission::Deny;
    binding
}

fn request<'a>(principal: &'a str, op: AclOperation, topic: &'a str) -> AclRequest<'a> {
    AclRequest {
        principal,
        host: Some("10.0.0.7".parse().unwrap()),
        operation: op,
        resource_type: ResourceType::Topic,
        resource_name: topic,
    }
}

use AclOperation::*;
use PatternType::*;

#[test]
fn literal_matches_only_its_name_and_prefix_matches_the_start() {
    let acls = [
        acl("User:alice", Write, "orders", Literal),
        acl("User:alice", Read, "pay", Prefixed),
    ];
    let alice = |op, topic| authorize(&acls, &request("User:alice", op, topic));
    assert_eq!(alice(Write, "orders"), AclDecision::Allowed);
    assert_eq!(alice(Write, "orders2"), AclDecision::NoMatch);
    assert_eq!(alice(Read, "payments"), AclDecision::Allowed);
    assert_eq!(alice(Read, "pay"), AclDecision::Allowed);
    assert_eq!(alice(Read, "xpay"), AclDecision::NoMatch);
    assert_eq!(alice(Write, "payments"), AclDecision::NoMatch);
}

#[test]
fn deny_wins_over_allow() {
    let acls = [
        acl("User:*", All, "*", Literal),
        deny(acl("User:bob", Write, "orders", Literal)),
    ];
    assert!(matches!(
        authorize(&acls, &request("User:bob", Write, "orders")),
        AclDecision::Denied(_)
    ));
    assert_eq!(
        authorize(&acls, &request("User:bob", Read, "orders")),
        AclDecision::Allowed
    );
    assert_eq!(
        authorize(&acls, &request("User:carol", Write, "orders")),
        AclDecision::Allowed
    );
}

#[test]
fn wildcard_principal_and_host_match_everyone_a_host_only_itself() {
    let mut from_one_host = acl("User:alice", Read, "t", Literal);
    from_one_host.host = "10.0.0.8".into();
    let acls = [from_one_host.clone()];
    assert_eq!(
        authorize(&acls, &request("User:alice", Read, "t")),
        AclDecision::NoMatch
    );
    from_one_host.host = "10.0.0.7".into();
    let acls = [from_one_host, acl("User:*", Describe, "t", Literal)];
    assert_eq!(
        authorize(&acls, &request("User:alice", Read, "t")),
        AclDecision::Allowed
    );
    assert_eq!(
        authorize(&acls, &request("User:ANONYMOUS", Describe, "t")),
        AclDecision::Allowed
    );
}

#[test]
fn implied_operations_follow_kafka() {
    let acls = [
        acl("User:a", Write, "t", Literal),
        acl("User:a", AlterConfigs, "t", Literal),
    ];
    let a = |op| authorize(&acls, &request("User:a", op, "t"));
    assert_eq!(a(Describe), AclDecision::Allowed);
    assert_eq!(a(DescribeConfigs), AclDecision::Allowed);
    assert_eq!(a(Read), AclDecision::NoMatch);
    // A deny of Write does not deny Describe.
    let acls = [
        acl("User:a", Describe, "t", Literal),
        deny(acl("User:a", Write, "t", Literal)),
    ];
    assert_eq!(
        authorize(&acls, &request("User:a", Describe, "t")),
        AclDecision::Allowed
    );
}

#[test]
fn other_resource_types_do_not_match() {
    let acls = [acl("User:a", All, "*", Literal)];
    let mut group = request("User:a", Read, "t");
    group.resource_type = ResourceType::Group;
    assert_eq!(authorize(&acls, &group), AclDecision::NoMatch);
}

#[test]
fn malformed_acls_name_the_field() {
    let good = acl("User:alice", Read, "orders", Literal);
    assert_eq!(good.check(), Ok(()));
    let cases = [
        (acl("alice", Read, "o", Literal), "principal"),
        (acl("Group:x", Read, "o", Literal), "principal"),
        (acl("User:", Read, "o", Literal), "principal"),
        (acl("User:a", Read, "", Literal), "resource_name"),
        (acl("User:a", Read, "or*", Prefixed), "resource_name"),
        (acl("User:a", Read, "*", Prefixed), "resource_name"),
        (
            AclBinding {
                host: "not-an-ip".into(),
                ..good.clone()
            },
            "host",
        ),
        (
            AclBinding {
                resource_type: ResourceType::Cluster,
                ..good.clone()
            },
            "resource_name",
        ),
    ];
    for (bad, field) in cases {
        assert_eq!(
            bad.check().map_err(|e| e.field),
            Err(field.to_string()),
            "{bad:?}"
        );
    }
}

#[test]
fn operations_parse_in_kafka_and_cli_spellings() {
    assert_eq!(AclOperation::parse("write"), Some(Write));
    assert_eq!(
        AclOperation::parse("DescribeConfigs"),
        Some(DescribeConfigs)
    );
    assert_eq!(
        AclOperation::parse("describe-configs"),
        Some(DescribeConfigs)
    );
    assert_eq!(AclOperation::parse("cluster_action"), Some(ClusterAction));
    assert_eq!(AclOperation::parse("fly"), None);
    for op in AclOperation::ALL {
        assert_eq!(AclOperation::parse(op.name()), Some(op));
    }
}
