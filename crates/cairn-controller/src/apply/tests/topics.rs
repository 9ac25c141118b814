//! CreateTopic, DeleteTopic, AlterTopicConfigs and AddPartitions.

use super::*;
use crate::MAX_PARTITIONS_PER_TOPIC;
use crate::error::{IdKind, TopicNameRule};
use crate::ids::TopicId;
use crate::node::NodeState;
use crate::reply::Outcome;
#[test]
fn create_topic_places_balanced_replicas_and_tells_each_host() {
    let mut metadata = cluster(3);
    let reply = metadata.apply(create("orders", 3, 3)).unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::TopicCreated {
            topic_id: TopicId(1),
            first_group: GroupId(1)
        }
    );
    let topic = metadata.topic("orders").unwrap();
    let leaders: Vec<NodeId> = topic.partitions.iter().map(|p| p.replicas[0]).collect();
    assert_eq!(leaders, vec![1, 2, 3], "preferred leaders rotate");
    assert_eq!(
        topic.partitions[1].replicas,
        vec![2, 3, 1],
        "followers in ring order"
    );
    for partition in &topic.partitions {
        assert_eq!(partition.isr, partition.replicas);
        assert_eq!(partition.leader, None);
    }
    assert_eq!(hosts(&reply).len(), 9);
    let Action::HostReplica { node, assignment } = &reply.actions[0] else {
        panic!("{:?}", reply.actions[0]);
    };
    assert_eq!(*node, 1);
    assert_eq!(assignment.topic, "orders");
    assert_eq!(assignment.topic_id, TopicId(1));
    assert_eq!(assignment.partition, 0);
    assert_eq!(assignment.replicas, vec![1, 2, 3]);
    assert_eq!(assignment.configs["retention.ms"], "1000");
    assert_eq!(metadata.next_group_id(), GroupId(4));
}

#[test]
fn create_topic_counts_existing_topics_when_balancing() {
    let mut metadata = cluster(3);
    metadata.apply(create("a", 1, 1)).unwrap();
    metadata.apply(create("b", 1, 1)).unwrap();
    metadata.apply(create("c", 1, 1)).unwrap();
    let leaders: Vec<NodeId> = ["a", "b", "c"]
        .iter()
        .map(|t| metadata.topic(t).unwrap().partitions[0].replicas[0])
        .collect();
    assert_eq!(leaders, vec![1, 2, 3]);
}

#[test]
fn create_topic_refusals_name_their_cause() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 1, 1)).unwrap();
    let cases = [
        (
            create("t", 1, 1),
            ControllerError::TopicExists {
                name: "t".into(),
                topic_id: TopicId(1),
            },
        ),
        (
            create("u", 1, 4),
            ControllerError::ReplicationFactorTooLarge {
                requested: 4,
                alive_node_count: 3,
                registered_node_count: 3,
            },
        ),
        (create("u", 1, 0), ControllerError::InvalidReplicationFactor),
        (
            create("u", 0, 1),
            ControllerError::InvalidPartitionCount {
                requested: 0,
                max: MAX_PARTITIONS_PER_TOPIC,
            },
        ),
        (
            create("u", MAX_PARTITIONS_PER_TOPIC + 1, 1),
            ControllerError::InvalidPartitionCount {
                requested: MAX_PARTITIONS_PER_TOPIC + 1,
                max: MAX_PARTITIONS_PER_TOPIC,
            },
        ),
        (
            create("a b", 1, 1),
            ControllerError::InvalidTopicName {
                name: "a b".into(),
                rule: TopicNameRule::IllegalChar {
                    ch: ' ',
                    char_idx: 1,
                },
            },
        ),
        (
            create("..", 1, 1),
            ControllerError::InvalidTopicName {
                name: "..".into(),
                rule: TopicNameRule::Reserved,
            },
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(refused(&mut metadata, command), expected);
    }
}

#[test]
fn delete_topic_drops_every_replica_and_ids_are_not_reused() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 2, 2)).unwrap();
    let reply = metadata
        .apply(Command::DeleteTopic { name: "t".into() })
        .unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::TopicDeleted {
            topic_id: TopicId(1)
        }
    );
    assert_eq!(reply.actions.len(), 4);
    assert!(reply.actions.iter().all(|a| matches!(
        a,
        Action::DropReplica { topic_id: TopicId(1), group, .. } if group.0 == 1 || group.0 == 2
    )));
    assert!(metadata.topic("t").is_none());
    assert!(metadata.replicas_of(1).is_empty());

    let again = metadata.apply(create("t", 1, 1)).unwrap();
    assert_eq!(
        again.outcome,
        Outcome::TopicCreated {
            topic_id: TopicId(2),
            first_group: GroupId(3)
        }
    );
}

#[test]
fn delete_of_an_unknown_topic_is_refused() {
    let mut metadata = cluster(1);
    assert_eq!(
        refused(&mut metadata, Command::DeleteTopic { name: "t".into() }),
        ControllerError::UnknownTopic { name: "t".into() }
    );
}

#[test]
fn alter_configs_sets_and_deletes_and_tells_each_host_once() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 3, 2)).unwrap();
    let reply = metadata
        .apply(Command::AlterTopicConfigs {
            name: "t".into(),
            set: BTreeMap::from([("segment.bytes".into(), "1048576".into())]),
            delete: vec!["retention.ms".into(), "never.set".into()],
        })
        .unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::ConfigsAltered {
            topic_id: TopicId(1),
            changed: true
        }
    );
    let expected = BTreeMap::from([("segment.bytes".to_string(), "1048576".to_string())]);
    assert_eq!(metadata.topic("t").unwrap().configs, expected);
    let told: Vec<NodeId> = reply
        .actions
        .iter()
        .map(|a| match a {
            Action::ConfigChanged { node, configs, .. } => {
                assert_eq!(*configs, expected);
                *node
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(told, vec![1, 2, 3]);
    assert_eq!(metadata.replicas_of(2)[0].configs, expected);
}

#[test]
fn alter_configs_to_what_is_set_changes_nothing() {
    let mut metadata = cluster(1);
    metadata.apply(create("t", 1, 1)).unwrap();
    let reply = metadata
        .apply(Command::AlterTopicConfigs {
            name: "t".into(),
            set: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            delete: vec![],
        })
        .unwrap();
    assert_eq!(
        reply,
        Reply {
            outcome: Outcome::ConfigsAltered {
                topic_id: TopicId(1),
                changed: false
            },
            actions: vec![]
        }
    );
}

#[test]
fn alter_configs_refusals() {
    let mut metadata = cluster(1);
    metadata.apply(create("t", 1, 1)).unwrap();
    let both = Command::AlterTopicConfigs {
        name: "t".into(),
        set: BTreeMap::from([("a".into(), "1".into())]),
        delete: vec!["a".into()],
    };
    assert_eq!(
        refused(&mut metadata, both),
        ControllerError::ConfigKeySetAndDeleted { key: "a".into() }
    );
    let unknown = Command::AlterTopicConfigs {
        name: "u".into(),
        set: BTreeMap::new(),
        delete: vec![],
    };
    assert_eq!(
        refused(&mut metadata, unknown),
        ControllerError::UnknownTopic { name: "u".into() }
    );
}

#[test]
fn add_partitions_places_only_the_new_ones_with_fresh_groups() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 2, 2)).unwrap();
    metadata.apply(create("u", 1, 1)).unwrap();
    let before = metadata.topic("t").unwrap().partitions.clone();
    let reply = metadata
        .apply(Command::AddPartitions {
            name: "t".into(),
            partition_count: 4,
        })
        .unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::PartitionsAdded {
            topic_id: TopicId(1),
            partition_count: 4
        }
    );
    let topic = metadata.topic("t").unwrap();
    assert_eq!(topic.partitions[..2], before[..]);
    assert_eq!(topic.partitions[2].group, GroupId(4));
    assert_eq!(topic.partitions[3].group, GroupId(5));
    assert_eq!(topic.partitions[3].replicas.len(), 2);
    let hosted = hosts(&reply);
    assert_eq!(hosted.len(), 4);
    assert!(hosted.iter().all(|(_, g)| g.0 >= 4));
    metadata.check_invariants().unwrap();
}

#[test]
fn add_partitions_refusals() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 2, 3)).unwrap();
    let add = |name: &str, partition_count| Command::AddPartitions {
        name: name.into(),
        partition_count,
    };
    assert_eq!(
        refused(&mut metadata, add("t", 2)),
        ControllerError::PartitionCountNotIncreased {
            name: "t".into(),
            current: 2,
            requested: 2
        }
    );
    assert_eq!(
        refused(&mut metadata, add("t", MAX_PARTITIONS_PER_TOPIC + 1)),
        ControllerError::InvalidPartitionCount {
            requested: MAX_PARTITIONS_PER_TOPIC + 1,
            max: MAX_PARTITIONS_PER_TOPIC
        }
    );
    assert_eq!(
        refused(&mut metadata, add("u", 3)),
        ControllerError::UnknownTopic { name: "u".into() }
    );
    metadata
        .apply(Command::SetNodeState {
            node: 1,
            state: NodeState::Fenced,
            at_ms: 0,
        })
        .unwrap();
    assert_eq!(
        refused(&mut metadata, add("t", 3)),
        ControllerError::ReplicationFactorTooLarge {
            requested: 3,
            alive_node_count: 2,
            registered_node_count: 3
        }
    );
}
#[test]
fn id_counters_that_would_overflow_refuse_instead() {
    let mut metadata = cluster(1);
    metadata.next_group_id = GroupId(u64::MAX - 1);
    assert_eq!(
        refused(&mut metadata, create("t", 2, 1)),
        ControllerError::IdSpaceExhausted {
            kind: IdKind::Group
        }
    );
    metadata.next_topic_id = TopicId(u64::MAX);
    assert_eq!(
        refused(&mut metadata, create("t", 1, 1)),
        ControllerError::IdSpaceExhausted {
            kind: IdKind::Topic
        }
    );
}
