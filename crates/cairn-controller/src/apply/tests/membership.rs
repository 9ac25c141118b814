//! Adding and removing nodes, and reassigning partitions.

use super::{cluster, create, refused};
use crate::command::{Command, PartitionMove};
use crate::error::ControllerError;
use crate::ids::GroupId;
use crate::metadata::ClusterMetadata;
use crate::node::NodeState;
use crate::reply::Outcome;

fn add(node: u64) -> Command {
    Command::AddNode {
        node,
        addr: format!("10.0.0.{node}:7070"),
        at_ms: 2_000,
    }
}

fn moved(topic: &str, partition: u32, replicas: &[u64]) -> PartitionMove {
    PartitionMove {
        topic: topic.into(),
        partition,
        replicas: replicas.to_vec(),
    }
}

fn reassign(moves: Vec<PartitionMove>) -> Command {
    Command::ReassignPartitions { moves }
}

/// Completes every pending reassignment as its group's leader would.
fn complete_all(metadata: &mut ClusterMetadata) {
    let pending: Vec<(GroupId, Vec<u64>)> = metadata
        .topics()
        .values()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.target.clone().map(|t| (p.group, t)))
        .collect();
    for (group, replicas) in pending {
        metadata
            .apply(Command::CompleteReassignment { group, replicas })
            .unwrap();
    }
}

#[test]
fn add_node_registers_an_alive_node_that_takes_new_replicas() {
    let mut metadata = cluster(3);
    let reply = metadata.apply(add(4)).unwrap();
    assert_eq!(reply.outcome, Outcome::NodeAdded { node: 4 });
    assert_eq!(metadata.node(4).unwrap().state, NodeState::Alive);
    metadata.apply(create("t", 4, 3)).unwrap();
    assert!(!metadata.replicas_of(4).is_empty());
    metadata.check_invariants().unwrap();
}

#[test]
fn add_node_refuses_a_used_id_and_a_used_address() {
    let mut metadata = cluster(3);
    assert!(matches!(
        refused(&mut metadata, add(2)),
        ControllerError::NodeIdInUse { node: 2, .. }
    ));
    let taken = Command::AddNode {
        node: 9,
        addr: "10.0.0.1:7070".into(),
        at_ms: 0,
    };
    assert!(matches!(
        refused(&mut metadata, taken),
        ControllerError::DuplicateNodeAddress { first: 1, .. }
    ));
    let empty = Command::AddNode {
        node: 9,
        addr: String::new(),
        at_ms: 0,
    };
    assert!(matches!(
        refused(&mut metadata, empty),
        ControllerError::EmptyNodeAddress { node: 9 }
    ));
}

#[test]
fn reassignment_keeps_the_old_replicas_until_the_group_reports_it_done() {
    let mut metadata = cluster(4);
    metadata.apply(create("t", 1, 3)).unwrap();
    let before = metadata.topic("t").unwrap().partitions[0].replicas.clone();
    let target = vec![4, before[0], before[1]];
    let reply = metadata
        .apply(reassign(vec![moved("t", 0, &target)]))
        .unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::ReassignmentStarted {
            moving: 1,
            reordered: 0
        }
    );
    let partition = &metadata.topic("t").unwrap().partitions[0];
    assert_eq!(partition.replicas, before);
    assert!(partition.is_hosted_on(4));
    assert_eq!(metadata.replicas_of(4).len(), 1);
    metadata.check_invariants().unwrap();

    let group = partition.group;
    let mut wrong = target.clone();
    wrong[0] = before[2];
    assert!(matches!(
        refused(
            &mut metadata,
            Command::CompleteReassignment {
                group,
                replicas: wrong
            }
        ),
        ControllerError::NoSuchReassignment { .. }
    ));
    let reply = metadata
        .apply(Command::CompleteReassignment {
            group,
            replicas: target.clone(),
        })
        .unwrap();
    let drops: Vec<_> = reply
        .actions
        .iter()
        .filter_map(|a| match a {
            crate::action::Action::DropReplica { node, .. } => Some(*node),
            _ => None,
        })
        .collect();
    assert_eq!(drops, vec![before[2]], "the dropped copy is told to go");
    let partition = &metadata.topic("t").unwrap().partitions[0];
    assert_eq!(partition.replicas, target);
    assert_eq!(partition.target, None);
    assert!(!partition.is_hosted_on(before[2]));
    metadata.check_invariants().unwrap();
    // A repeated report is refused by name, not applied twice.
    assert!(matches!(
        refused(
            &mut metadata,
            Command::CompleteReassignment {
                group,
                replicas: target
            }
        ),
        ControllerError::NoSuchReassignment { .. }
    ));
}

#[test]
fn a_reordering_changes_the_preferred_leader_at_once() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 1, 3)).unwrap();
    let mut replicas = metadata.topic("t").unwrap().partitions[0].replicas.clone();
    replicas.rotate_left(1);
    let reply = metadata
        .apply(reassign(vec![moved("t", 0, &replicas)]))
        .unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::ReassignmentStarted {
            moving: 0,
            reordered: 1
        }
    );
    let partition = &metadata.topic("t").unwrap().partitions[0];
    assert_eq!(partition.replicas, replicas);
    assert_eq!(partition.target, None);
}

#[test]
fn bad_plans_are_refused_whole() {
    let mut metadata = cluster(4);
    metadata.apply(create("t", 2, 3)).unwrap();
    let cases: Vec<(Vec<PartitionMove>, &str)> = vec![
        (vec![], "no moves"),
        (vec![moved("nope", 0, &[1, 2, 3])], "does not exist"),
        (
            vec![moved("t", 7, &[1, 2, 3])],
            "partition 7 does not exist",
        ),
        (vec![moved("t", 0, &[1, 2])], "lists 2 replicas"),
        (vec![moved("t", 0, &[1, 2, 3, 4])], "lists 4 replicas"),
        (vec![moved("t", 0, &[1, 1, 2])], "appears twice"),
        (
            vec![moved("t", 0, &[1, 2, 9])],
            "node 9 is not a registered",
        ),
        (
            vec![moved("t", 0, &[1, 2, 4]), moved("t", 0, &[1, 2, 3])],
            "t-0 appears twice",
        ),
        // One bad move refuses the good one before it too.
        (
            vec![moved("t", 1, &[1, 2, 4]), moved("t", 0, &[1, 2, 9])],
            "not a registered",
        ),
    ];
    for (moves, expected) in cases {
        let error = refused(&mut metadata, reassign(moves));
        assert!(
            error.to_string().contains(expected),
            "{error} lacks {expected:?}"
        );
    }
    metadata
        .apply(Command::SetNodeState {
            node: 4,
            state: NodeState::Fenced,
            at_ms: 3,
        })
        .unwrap();
    let current = metadata.topic("t").unwrap().partitions[0].replicas.clone();
    let mut onto_fenced = current.clone();
    onto_fenced[2] = 4;
    if current.contains(&4) {
        onto_fenced = vec![1, 2, 3];
    }
    if !current.contains(&4) {
        let error = refused(&mut metadata, reassign(vec![moved("t", 0, &onto_fenced)]));
        assert!(error.to_string().contains("fenced"), "{error}");
    }
    // A partition being moved is not moved again until it is done.
    let mut metadata = cluster(4);
    metadata.apply(create("t", 1, 3)).unwrap();
    let current = metadata.topic("t").unwrap().partitions[0].replicas.clone();
    let spare = (1..=4).find(|n| !current.contains(n)).unwrap();
    let target = vec![spare, current[0], current[1]];
    metadata
        .apply(reassign(vec![moved("t", 0, &target)]))
        .unwrap();
    assert!(matches!(
        refused(&mut metadata, reassign(vec![moved("t", 0, &current)])),
        ControllerError::ReassignmentInProgress { .. }
    ));
}

#[test]
fn remove_node_moves_every_copy_then_the_node_can_be_forgotten() {
    let mut metadata = cluster(4);
    metadata.apply(create("t", 8, 3)).unwrap();
    metadata
        .apply(Command::AllocateProducerIds {
            node: 2,
            block_len: 10,
        })
        .unwrap();
    let on_two = metadata.replicas_of(2).len();
    assert!(on_two > 0);
    assert!(matches!(
        refused(&mut metadata, Command::ForgetNode { node: 2 }),
        ControllerError::NodeNotRemovable { .. }
    ));
    let reply = metadata
        .apply(Command::RemoveNode { node: 2, at_ms: 5 })
        .unwrap();
    assert_eq!(
        reply.outcome,
        Outcome::NodeRemoving {
            node: 2,
            moving: on_two
        }
    );
    assert_eq!(metadata.node(2).unwrap().state, NodeState::Leaving);
    metadata.check_invariants().unwrap();
    for partition in metadata.topic("t").unwrap().partitions.iter() {
        if let Some(target) = &partition.target {
            assert!(!target.contains(&2));
            // The newcomer takes node 2's place, so a preferred leadership stays a leadership.
            let at = partition.replicas.iter().position(|n| *n == 2).unwrap();
            assert!(!partition.replicas.contains(&target[at]));
        }
    }
    assert!(matches!(
        refused(&mut metadata, Command::RemoveNode { node: 2, at_ms: 6 }),
        ControllerError::NodeLeaving { node: 2 }
    ));
    assert!(matches!(
        refused(&mut metadata, Command::ForgetNode { node: 2 }),
        ControllerError::NodeNotRemovable { .. }
    ));
    complete_all(&mut metadata);
    assert!(metadata.replicas_of(2).is_empty());
    metadata.apply(Command::ForgetNode { node: 2 }).unwrap();
    assert!(metadata.node(2).is_none());
    assert!(metadata.producer_id_block(2).is_none());
    metadata.check_invariants().unwrap();
    // The id may be used again by a new node.
    metadata.apply(add(2)).unwrap();
}

#[test]
fn remove_node_refuses_what_would_leave_a_partition_short() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 1, 3)).unwrap();
    let error = refused(&mut metadata, Command::RemoveNode { node: 3, at_ms: 1 });
    assert!(
        matches!(
            error,
            ControllerError::NoReplacement {
                node: 3,
                remaining: 2,
                replication_factor: 3,
                ..
            }
        ),
        "{error}"
    );
    assert!(matches!(
        refused(&mut metadata, Command::RemoveNode { node: 9, at_ms: 1 }),
        ControllerError::UnknownNode { node: 9 }
    ));
    let mut one = cluster(1);
    assert!(matches!(
        refused(&mut one, Command::RemoveNode { node: 1, at_ms: 1 }),
        ControllerError::LastNode { node: 1 }
    ));
    // With a fourth node the same removal goes ahead.
    metadata.apply(add(4)).unwrap();
    metadata
        .apply(Command::RemoveNode { node: 3, at_ms: 1 })
        .unwrap();
    // And a leaving node takes no copy in a plan.
    let current = metadata.topic("t").unwrap().partitions[0].hosts();
    assert!(current.contains(&4));
    let mut other = cluster(4);
    other.apply(create("t", 1, 2)).unwrap();
    other
        .apply(Command::RemoveNode { node: 4, at_ms: 1 })
        .unwrap();
    complete_all(&mut other);
    let replicas = other.topic("t").unwrap().partitions[0].replicas.clone();
    let error = refused(&mut other, reassign(vec![moved("t", 0, &[replicas[0], 4])]));
    assert!(error.to_string().contains("being removed"), "{error}");
}

#[test]
fn a_target_member_may_lead_before_the_move_is_recorded() {
    let mut metadata = cluster(4);
    metadata.apply(create("t", 1, 3)).unwrap();
    let partition = metadata.topic("t").unwrap().partitions[0].clone();
    let spare = (1..=4).find(|n| !partition.replicas.contains(n)).unwrap();
    let target = vec![spare, partition.replicas[0], partition.replicas[1]];
    metadata
        .apply(reassign(vec![moved("t", 0, &target)]))
        .unwrap();
    metadata
        .apply(Command::ReportLeader {
            group: partition.group,
            leader: spare,
            epoch: 5,
            isr: target.clone(),
        })
        .unwrap();
    metadata.check_invariants().unwrap();
    metadata
        .apply(Command::CompleteReassignment {
            group: partition.group,
            replicas: target,
        })
        .unwrap();
    let after = &metadata.topic("t").unwrap().partitions[0];
    assert_eq!(after.leader, Some(spare));
    metadata.check_invariants().unwrap();
}
