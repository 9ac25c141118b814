use super::*;
use crate::reply::Outcome;
use crate::security::acl::{AclBinding, AclOperation, PatternType, Permission, ResourceType};
use crate::security::scram::ScramCredential;

fn upsert(name: &str, password: &[u8]) -> Command {
    Command::UpsertUser {
        name: name.into(),
        credential: ScramCredential::derive(password, b"saltsalt", 4096),
    }
}

fn write_acl(principal: &str, topic: &str) -> AclBinding {
    AclBinding {
        principal: principal.into(),
        host: "*".into(),
        operation: AclOperation::Write,
        resource_type: ResourceType::Topic,
        resource_name: topic.into(),
        pattern_type: PatternType::Literal,
        permission: Permission::Allow,
    }
}

#[test]
fn users_and_acls_apply_and_survive_a_snapshot() {
    let mut metadata = cluster(3);
    let reply = metadata.apply(upsert("alice", b"pw")).unwrap();
    assert_eq!(reply.outcome, Outcome::UserUpserted { created: true });
    assert!(reply.actions.is_empty());
    let reply = metadata
        .apply(Command::CreateAcls {
            acls: vec![write_acl("User:alice", "orders")],
        })
        .unwrap();
    assert_eq!(reply.outcome, Outcome::AclsCreated { added: 1 });
    let restored = ClusterMetadata::from_snapshot(&metadata.to_snapshot()).unwrap();
    assert_eq!(restored, metadata);
    assert!(restored.security().user("alice").unwrap().verify(b"pw"));
    assert_eq!(restored.security().acls().len(), 1);
}

#[test]
fn a_snapshot_from_before_users_still_loads() {
    // Written by a build without the `security` field: it must load, as empty users and ACLs.
    let old = br#"{"v":1,"metadata":{"cluster_id":"c1","nodes":{"1":{"addr":"h:1","state":"alive","registered_at_ms":0,"state_changed_at_ms":0}},"topics":{},"next_topic_id":1,"next_group_id":1,"next_producer_id":0,"producer_id_blocks":{}}}"#;
    let metadata = ClusterMetadata::from_snapshot(old).unwrap();
    assert!(metadata.security().is_empty());
    // And a state without users is written without the field, byte for byte as before.
    assert_eq!(metadata.to_snapshot(), old.to_vec());
}

#[test]
fn refused_security_commands_change_nothing() {
    let mut metadata = cluster(1);
    assert!(matches!(
        refused(&mut metadata, upsert("a b", b"pw")),
        ControllerError::InvalidUser { .. }
    ));
    assert!(matches!(
        refused(
            &mut metadata,
            Command::DeleteUser {
                name: "nobody".into()
            }
        ),
        ControllerError::UnknownUser { .. }
    ));
    assert!(matches!(
        refused(
            &mut metadata,
            Command::CreateAcls {
                acls: vec![write_acl("User:a", "ok"), write_acl("alice", "t")]
            }
        ),
        ControllerError::InvalidAcl(ref e) if e.field == "principal"
    ));
}

#[test]
fn deleting_a_user_keeps_its_acls_and_delete_acls_counts() {
    let mut metadata = cluster(1);
    metadata.apply(upsert("alice", b"pw")).unwrap();
    let acl = write_acl("User:alice", "orders");
    metadata
        .apply(Command::CreateAcls {
            acls: vec![acl.clone()],
        })
        .unwrap();
    metadata
        .apply(Command::DeleteUser {
            name: "alice".into(),
        })
        .unwrap();
    assert_eq!(metadata.security().acls().len(), 1);
    let reply = metadata
        .apply(Command::DeleteAcls {
            acls: vec![acl.clone(), acl],
        })
        .unwrap();
    assert_eq!(reply.outcome, Outcome::AclsDeleted { removed: 1 });
    assert!(metadata.security().is_empty());
}

#[test]
fn quotas_apply_and_survive_a_snapshot() {
    use crate::security::quota::{QuotaEntity, QuotaLimits};
    let mut metadata = cluster(3);
    let limits = QuotaLimits {
        producer_byte_rate: Some(1024),
        max_partitions: Some(6),
        ..QuotaLimits::default()
    };
    let alice = QuotaEntity::Principal("User:alice".into());
    let reply = metadata
        .apply(Command::SetQuota {
            entity: alice.clone(),
            limits,
        })
        .unwrap();
    assert_eq!(reply.outcome, Outcome::QuotaSet);
    assert!(reply.actions.is_empty());
    let default = QuotaLimits {
        request_rate: Some(50),
        ..QuotaLimits::default()
    };
    metadata
        .apply(Command::SetQuota {
            entity: QuotaEntity::Default,
            limits: default,
        })
        .unwrap();
    let restored = ClusterMetadata::from_snapshot(&metadata.to_snapshot()).unwrap();
    assert_eq!(restored, metadata);
    assert_eq!(restored.security().quotas().get(&alice), Some(&limits));
    assert_eq!(
        restored
            .security()
            .quotas()
            .effective("User:alice")
            .request_rate,
        Some(50)
    );
    let reply = metadata
        .apply(Command::RemoveQuota { entity: alice })
        .unwrap();
    assert_eq!(reply.outcome, Outcome::QuotaRemoved);
    assert_eq!(metadata.security().quotas().entries().len(), 1);
}

#[test]
fn refused_quota_commands_change_nothing() {
    use crate::security::quota::{QuotaEntity, QuotaLimits};
    let mut metadata = cluster(1);
    let zero = Command::SetQuota {
        entity: QuotaEntity::Default,
        limits: QuotaLimits {
            consumer_byte_rate: Some(0),
            ..QuotaLimits::default()
        },
    };
    assert!(matches!(
        refused(&mut metadata, zero),
        ControllerError::InvalidQuota { ref field, .. } if field == "consumer_byte_rate"
    ));
    assert!(matches!(
        refused(
            &mut metadata,
            Command::RemoveQuota {
                entity: QuotaEntity::Default
            }
        ),
        ControllerError::UnknownQuota { .. }
    ));
    assert!(metadata.security().is_empty());
}

#[test]
fn the_creation_ledger_applies_and_survives_a_snapshot() {
    let mut metadata = cluster(1);
    metadata
        .apply(Command::RecordTopicCreator {
            topic: "orders".into(),
            principal: "User:alice".into(),
            partitions: 4,
        })
        .unwrap();
    let restored = ClusterMetadata::from_snapshot(&metadata.to_snapshot()).unwrap();
    assert_eq!(restored, metadata);
    let quotas = restored.security().quotas();
    assert_eq!(quotas.created_by("User:alice").partitions, 4);
    metadata
        .apply(Command::ForgetTopicCreator {
            topic: "orders".into(),
        })
        .unwrap();
    assert!(metadata.security().is_empty());
    assert!(matches!(
        refused(
            &mut metadata,
            Command::RecordTopicCreator {
                topic: "t".into(),
                principal: String::new(),
                partitions: 1,
            }
        ),
        ControllerError::InvalidQuota { .. }
    ));
}
