//! One test per command and per refusal. Every refusal is checked to leave the state unchanged.

use std::collections::BTreeMap;

use crate::action::Action;
use crate::command::{Command, PeerSpec};
use crate::error::{ControllerError, IdKind, TopicNameRule};
use crate::ids::{GroupId, NodeId, ProducerIdBlock, TopicId};
use crate::metadata::ClusterMetadata;
use crate::node::NodeState;
use crate::reply::{Outcome, Reply};
use crate::{MAX_PARTITIONS_PER_TOPIC, MAX_PRODUCER_ID, MAX_PRODUCER_ID_BLOCK_LEN};

fn bootstrap(node_count: u64) -> Command {
    Command::Bootstrap {
        cluster_id: "c1".into(),
        peers: (1..=node_count)
            .map(|node| PeerSpec {
                node,
                addr: format!("10.0.0.{node}:7070"),
            })
            .collect(),
        at_ms: 1_000,
    }
}

fn cluster(node_count: u64) -> ClusterMetadata {
    let mut metadata = ClusterMetadata::new();
    metadata.apply(bootstrap(node_count)).unwrap();
    metadata
}

fn create(name: &str, partition_count: u32, replication_factor: u16) -> Command {
    Command::CreateTopic {
        name: name.into(),
        partition_count,
        replication_factor,
        configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
    }
}

/// Applies a command that must be refused, and checks it changed nothing.
fn refused(metadata: &mut ClusterMetadata, command: Command) -> ControllerError {
    let before = metadata.to_snapshot();
    let error = metadata.apply(command).unwrap_err();
    assert_eq!(metadata.to_snapshot(), before, "refused with {error} but changed");
    error
}

fn hosts(reply: &Reply) -> Vec<(NodeId, GroupId)> {
    reply
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::HostReplica { node, assignment } => Some((*node, assignment.group)),
            _ => None,
        })
        .collect()
}

#[test]
fn bootstrap_registers_the_peers_alive() {
    let metadata = cluster(3);
    assert_eq!(metadata.cluster_id(), Some("c1"));
    assert_eq!(metadata.nodes().len(), 3);
    let node = metadata.node(2).unwrap();
    assert_eq!(node.addr, "10.0.0.2:7070");
    assert_eq!(node.state, NodeState::Alive);
    assert_eq!(node.registered_at_ms, 1_000);
    metadata.check_invariants().unwrap();
}

#[test]
fn bootstrap_again_with_the_same_cluster_is_a_no_op() {
    let mut metadata = cluster(3);
    let before = metadata.clone();
    let reply = metadata.apply(bootstrap(5)).unwrap();
    assert_eq!(reply.outcome, Outcome::AlreadyBootstrapped);
    assert_eq!(metadata, before);
}

#[test]
fn bootstrap_of_another_cluster_is_refused() {
    let mut metadata = cluster(3);
    let error = refused(
        &mut metadata,
        Command::Bootstrap {
            cluster_id: "c2".into(),
            peers: vec![],
            at_ms: 0,
        },
    );
    assert_eq!(
        error,
        ControllerError::ClusterIdMismatch {
            held: "c1".into(),
            proposed: "c2".into()
        }
    );
}

#[test]
fn malformed_peer_lists_are_refused() {
    let peer = |node: NodeId, addr: &str| PeerSpec {
        node,
        addr: addr.into(),
    };
    let cases = [
        ("c", vec![], ControllerError::EmptyPeerList),
        ("", vec![peer(1, "a:1")], ControllerError::EmptyClusterId),
        (
            "c",
            vec![peer(1, "a:1"), peer(1, "a:2")],
            ControllerError::DuplicateNodeId { node: 1 },
        ),
        (
            "c",
            vec![peer(1, "a:1"), peer(2, "a:1")],
            ControllerError::DuplicateNodeAddress {
                addr: "a:1".into(),
                first: 1,
                second: 2,
            },
        ),
        (
            "c",
            vec![peer(1, "a:1"), peer(2, "")],
            ControllerError::EmptyNodeAddress { node: 2 },
        ),
    ];
    for (cluster_id, peers, expected) in cases {
        let mut metadata = ClusterMetadata::new();
        let command = Command::Bootstrap {
            cluster_id: cluster_id.into(),
            peers,
            at_ms: 0,
        };
        assert_eq!(refused(&mut metadata, command), expected);
        assert!(!metadata.is_bootstrapped());
    }
}

#[test]
fn commands_before_bootstrap_are_refused() {
    let mut metadata = ClusterMetadata::new();
    assert_eq!(
        refused(&mut metadata, create("t", 1, 1)),
        ControllerError::NotBootstrapped
    );
    assert_eq!(
        refused(
            &mut metadata,
            Command::RegisterNode {
                node: 1,
                addr: "a:1".into(),
                at_ms: 0
            }
        ),
        ControllerError::NotBootstrapped
    );
}

#[test]
fn register_node_adds_a_node_and_announces_its_address() {
    let mut metadata = cluster(3);
    let reply = metadata
        .apply(Command::RegisterNode {
            node: 4,
            addr: "10.0.0.4:7070".into(),
            at_ms: 2_000,
        })
        .unwrap();
    assert_eq!(reply.outcome, Outcome::NodeRegistered { node: 4, new: true });
    assert_eq!(
        reply.actions,
        vec![Action::PeerAddressChanged {
            peer: 4,
            addr: "10.0.0.4:7070".into()
        }]
    );
    assert!(reply.actions[0].is_for(1));
    assert_eq!(metadata.node(4).unwrap().registered_at_ms, 2_000);
}

#[test]
fn register_node_moves_a_known_node_and_keeps_its_registration_time() {
    let mut metadata = cluster(3);
    let reply = metadata
        .apply(Command::RegisterNode {
            node: 2,
            addr: "10.0.0.9:7070".into(),
            at_ms: 2_000,
        })
        .unwrap();
    assert_eq!(reply.outcome, Outcome::NodeRegistered { node: 2, new: false });
    assert_eq!(reply.actions.len(), 1);
    let node = metadata.node(2).unwrap();
    assert_eq!(node.addr, "10.0.0.9:7070");
    assert_eq!(node.registered_at_ms, 1_000);

    let again = metadata
        .apply(Command::RegisterNode {
            node: 2,
            addr: "10.0.0.9:7070".into(),
            at_ms: 3_000,
        })
        .unwrap();
    assert!(again.actions.is_empty(), "same address, nothing to announce");
}

#[test]
fn register_node_refuses_another_nodes_address_and_an_empty_one() {
    let mut metadata = cluster(3);
    let taken = Command::RegisterNode {
        node: 4,
        addr: "10.0.0.1:7070".into(),
        at_ms: 0,
    };
    assert_eq!(
        refused(&mut metadata, taken),
        ControllerError::DuplicateNodeAddress {
            addr: "10.0.0.1:7070".into(),
            first: 1,
            second: 4
        }
    );
    let empty = Command::RegisterNode {
        node: 4,
        addr: String::new(),
        at_ms: 0,
    };
    assert_eq!(
        refused(&mut metadata, empty),
        ControllerError::EmptyNodeAddress { node: 4 }
    );
}

#[test]
fn fenced_nodes_take_no_new_replicas() {
    let mut metadata = cluster(3);
    let reply = metadata
        .apply(Command::SetNodeState {
            node: 3,
            state: NodeState::Fenced,
            at_ms: 5_000,
        })
        .unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::NodeStateSet {
            node: 3,
            state: NodeState::Fenced
        }
    );
    assert_eq!(metadata.node(3).unwrap().state_changed_at_ms, 5_000);
    metadata.apply(create("t", 4, 2)).unwrap();
    for partition in &metadata.topic("t").unwrap().partitions {
        assert!(!partition.replicas.contains(&3), "{:?}", partition.replicas);
    }
    assert_eq!(
        refused(&mut metadata, create("u", 1, 3)),
        ControllerError::ReplicationFactorTooLarge {
            requested: 3,
            alive_node_count: 2,
            registered_node_count: 3
        }
    );
    metadata
        .apply(Command::SetNodeState {
            node: 3,
            state: NodeState::Alive,
            at_ms: 6_000,
        })
        .unwrap();
    metadata.apply(create("u", 1, 3)).unwrap();
}

#[test]
fn set_node_state_of_an_unknown_node_is_refused() {
    let mut metadata = cluster(3);
    let command = Command::SetNodeState {
        node: 9,
        state: NodeState::Fenced,
        at_ms: 0,
    };
    assert_eq!(
        refused(&mut metadata, command),
        ControllerError::UnknownNode { node: 9 }
    );
}

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
    assert_eq!(topic.partitions[1].replicas, vec![2, 3, 1], "followers in ring order");
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
    assert_eq!(reply.outcome, Outcome::TopicDeleted { topic_id: TopicId(1) });
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

fn report(group: u64, leader: NodeId, epoch: u64, isr: Vec<NodeId>) -> Command {
    Command::ReportLeader {
        group: GroupId(group),
        leader,
        epoch,
        isr,
    }
}

#[test]
fn report_leader_records_leader_epoch_and_isr() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 1, 3)).unwrap();
    let reply = metadata.apply(report(1, 2, 4, vec![2, 1])).unwrap();
    assert_eq!(reply.outcome, Outcome::LeaderRecorded);
    let partition = &metadata.topic("t").unwrap().partitions[0];
    assert_eq!(partition.leader, Some(2));
    assert_eq!(partition.leader_epoch, 4);
    assert_eq!(partition.isr, vec![2, 1]);

    // The same leader may report a new in-sync set within its epoch.
    metadata.apply(report(1, 2, 4, vec![2, 1, 3])).unwrap();
    assert_eq!(metadata.topic("t").unwrap().partitions[0].isr, vec![2, 1, 3]);
}

#[test]
fn report_leader_older_than_held_is_ignored() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 1, 3)).unwrap();
    metadata.apply(report(1, 2, 4, vec![2])).unwrap();
    let before = metadata.clone();
    let reply = metadata.apply(report(1, 1, 3, vec![1, 2, 3])).unwrap();
    assert_eq!(reply.outcome, Outcome::StaleLeaderReport { held_epoch: 4 });
    assert_eq!(metadata, before);
}

#[test]
fn report_leader_refusals() {
    let mut metadata = cluster(4);
    metadata.apply(create("t", 1, 3)).unwrap();
    metadata.apply(report(1, 2, 4, vec![2])).unwrap();
    let outsider = *[1, 2, 3, 4]
        .iter()
        .find(|n| !metadata.topic("t").unwrap().partitions[0].replicas.contains(n))
        .unwrap();
    let cases = [
        (
            report(9, 1, 1, vec![1]),
            ControllerError::UnknownGroup { group: GroupId(9) },
        ),
        (
            report(0, 1, 1, vec![1]),
            ControllerError::UnknownGroup { group: GroupId(0) },
        ),
        (
            report(1, outsider, 5, vec![outsider]),
            ControllerError::NotAReplica {
                group: GroupId(1),
                node: outsider,
            },
        ),
        (
            report(1, 2, 5, vec![2, 77]),
            ControllerError::NotAReplica {
                group: GroupId(1),
                node: 77,
            },
        ),
        (
            report(1, 2, 5, vec![2, 2]),
            ControllerError::DuplicateIsrMember {
                group: GroupId(1),
                node: 2,
            },
        ),
        (
            report(1, 2, 5, vec![]),
            ControllerError::LeaderNotInIsr {
                group: GroupId(1),
                leader: 2,
            },
        ),
        (
            report(1, 1, 4, vec![1]),
            ControllerError::ConflictingLeader {
                group: GroupId(1),
                epoch: 4,
                held_leader: 2,
                reported_leader: 1,
            },
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(refused(&mut metadata, command), expected);
    }
}

#[test]
fn report_leader_for_a_deleted_topic_is_refused() {
    let mut metadata = cluster(1);
    metadata.apply(create("t", 1, 1)).unwrap();
    metadata
        .apply(Command::DeleteTopic { name: "t".into() })
        .unwrap();
    assert_eq!(
        refused(&mut metadata, report(1, 1, 1, vec![1])),
        ControllerError::UnknownGroup { group: GroupId(1) }
    );
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut metadata = cluster(2);
    let allocate = |node, block_len| Command::AllocateProducerIds { node, block_len };
    let first = metadata.apply(allocate(1, 1000)).unwrap();
    let second = metadata.apply(allocate(2, 10)).unwrap();
    assert_eq!(
        first.outcome,
        Outcome::ProducerIds(ProducerIdBlock { first: 0, len: 1000 })
    );
    assert_eq!(
        second.outcome,
        Outcome::ProducerIds(ProducerIdBlock {
            first: 1000,
            len: 10
        })
    );
    assert_eq!(metadata.next_producer_id(), 1010);
    assert_eq!(
        metadata.producer_id_block(2),
        Some(ProducerIdBlock {
            first: 1000,
            len: 10
        })
    );
}

#[test]
fn producer_id_refusals() {
    let mut metadata = cluster(2);
    let allocate = |node, block_len| Command::AllocateProducerIds { node, block_len };
    assert_eq!(
        refused(&mut metadata, allocate(3, 10)),
        ControllerError::UnknownNode { node: 3 }
    );
    assert_eq!(
        refused(&mut metadata, allocate(1, 0)),
        ControllerError::InvalidProducerIdBlockLen {
            requested: 0,
            max: MAX_PRODUCER_ID_BLOCK_LEN
        }
    );
    assert_eq!(
        refused(&mut metadata, allocate(1, MAX_PRODUCER_ID_BLOCK_LEN + 1)),
        ControllerError::InvalidProducerIdBlockLen {
            requested: MAX_PRODUCER_ID_BLOCK_LEN + 1,
            max: MAX_PRODUCER_ID_BLOCK_LEN
        }
    );
}

#[test]
fn producer_id_space_runs_out_exactly_at_its_end() {
    let mut metadata = cluster(1);
    metadata.next_producer_id = MAX_PRODUCER_ID - 9;
    let allocate = |block_len| Command::AllocateProducerIds { node: 1, block_len };
    assert_eq!(
        refused(&mut metadata, allocate(11)),
        ControllerError::ProducerIdsExhausted {
            next_id: MAX_PRODUCER_ID - 9,
            requested: 11
        }
    );
    let reply = metadata.apply(allocate(10)).unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::ProducerIds(ProducerIdBlock {
            first: MAX_PRODUCER_ID - 9,
            len: 10
        })
    );
    assert_eq!(
        refused(&mut metadata, allocate(1)),
        ControllerError::ProducerIdsExhausted {
            next_id: MAX_PRODUCER_ID + 1,
            requested: 1
        }
    );
    metadata.check_invariants().unwrap();
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

#[test]
fn replicas_of_lists_what_a_node_hosts_in_group_order() {
    let mut metadata = cluster(3);
    metadata.apply(create("b", 3, 2)).unwrap();
    metadata.apply(create("a", 3, 2)).unwrap();
    for node in 1..=3 {
        let hosted = metadata.replicas_of(node);
        assert_eq!(hosted.len(), 4, "node {node}: 12 replicas over 3 nodes");
        assert!(hosted.windows(2).all(|w| w[0].group < w[1].group));
        for assignment in &hosted {
            assert!(assignment.replicas.contains(&node));
            let found = metadata.partition_of_group(assignment.group).unwrap();
            assert_eq!(found.topic, assignment.topic);
            assert_eq!(found.partition, assignment.partition);
        }
    }
    assert!(metadata.replicas_of(9).is_empty());
}

#[test]
fn snapshot_round_trips_and_refuses_damage() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 3, 2)).unwrap();
    let leader = metadata.topic("t").unwrap().partitions[1].replicas[1];
    metadata.apply(report(2, leader, 7, vec![leader])).unwrap();
    metadata
        .apply(Command::AllocateProducerIds {
            node: 3,
            block_len: 5,
        })
        .unwrap();
    let bytes = metadata.to_snapshot();
    assert_eq!(ClusterMetadata::from_snapshot(&bytes).unwrap(), metadata);

    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(r#"{"v":1,"metadata":{"cluster_id":"c1","#), "{text}");
    let newer = text.replacen(r#"{"v":1"#, r#"{"v":2"#, 1);
    assert!(matches!(
        ClusterMetadata::from_snapshot(newer.as_bytes()),
        Err(ControllerError::UnsupportedVersion { found: 2, .. })
    ));
    let truncated = &text.as_bytes()[..text.len() / 2];
    assert!(matches!(
        ClusterMetadata::from_snapshot(truncated),
        Err(ControllerError::Decode { .. })
    ));
    // Group 2's id also given to group 1: valid JSON, broken invariant.
    let reused = text.replacen(r#""group":1,"#, r#""group":2,"#, 1);
    assert_ne!(reused, text);
    assert!(matches!(
        ClusterMetadata::from_snapshot(reused.as_bytes()),
        Err(ControllerError::CorruptSnapshot { .. })
    ));
}
