//! Property tests of the controller state machine: random command sequences keep its
//! invariants, refused commands change nothing, ids are never reused, actions describe exactly
//! what `replicas_of` reports, snapshots round-trip, two instances agree, and placement on a fresh
//! cluster stays balanced.

use std::collections::{BTreeMap, BTreeSet};

use cairn_controller::security::quota::QuotaEntity;
use cairn_controller::{
    Action, ClusterMetadata, Command, GroupId, NodeId, NodeState, Outcome, PeerSpec,
    ProducerIdBlock, ReplicaAssignment, Reply, TopicId,
};
use proptest::prelude::*;

const NAMES: &[&str] = &["a", "b", "c", "d.e", "x_y-1"];
const BAD_NAMES: &[&str] = &["", "..", "bad/name"];
const CONFIG_KEYS: &[&str] = &["retention.ms", "segment.bytes", "cleanup.policy"];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(NAMES),
        1 => prop::sample::select(BAD_NAMES),
    ]
    .prop_map(str::to_string)
}

fn configs() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(CONFIG_KEYS).prop_map(str::to_string),
        prop::sample::select(&["1", "2"][..]).prop_map(str::to_string),
        0..3,
    )
}

fn addr() -> impl Strategy<Value = String> {
    (0u8..8).prop_map(|n| {
        if n == 0 {
            String::new()
        } else {
            format!("h{n}:7070")
        }
    })
}

fn bootstrap(max_nodes: u64) -> impl Strategy<Value = Command> {
    (1..=max_nodes, 0i64..10).prop_map(|(node_count, at_ms)| Command::Bootstrap {
        cluster_id: "c1".into(),
        peers: (1..=node_count)
            .map(|node| PeerSpec {
                node,
                addr: format!("h{node}:7070"),
            })
            .collect(),
        at_ms,
    })
}

fn any_bootstrap() -> impl Strategy<Value = Command> {
    let peer = (0u64..7, addr()).prop_map(|(node, addr)| PeerSpec { node, addr });
    (
        prop::sample::select(&["c1", "c2", ""][..]),
        prop::collection::vec(peer, 0..5),
    )
        .prop_map(|(cluster_id, peers)| Command::Bootstrap {
            cluster_id: cluster_id.into(),
            peers,
            at_ms: 0,
        })
}

fn command() -> impl Strategy<Value = Command> {
    let node = 0u64..8;
    prop_oneof![
        1 => any_bootstrap(),
        1 => (node.clone(), addr(), 0i64..100)
            .prop_map(|(node, addr, at_ms)| Command::RegisterNode { node, addr, at_ms }),
        1 => (node.clone(), any::<bool>(), 0i64..100).prop_map(|(node, alive, at_ms)| {
            let state = if alive { NodeState::Alive } else { NodeState::Fenced };
            Command::SetNodeState { node, state, at_ms }
        }),
        6 => (name(), 0u32..6, 0u16..5, configs()).prop_map(
            |(name, partition_count, replication_factor, configs)| Command::CreateTopic {
                name,
                partition_count,
                replication_factor,
                configs,
            }
        ),
        2 => name().prop_map(|name| Command::DeleteTopic { name }),
        2 => (name(), configs(), prop::collection::vec(
                prop::sample::select(CONFIG_KEYS).prop_map(str::to_string), 0..2))
            .prop_map(|(name, set, delete)| Command::AlterTopicConfigs { name, set, delete }),
        2 => (name(), 0u32..9)
            .prop_map(|(name, partition_count)| Command::AddPartitions { name, partition_count }),
        5 => (0u64..30, node.clone(), 0u64..6, prop::collection::vec(node.clone(), 0..4))
            .prop_map(|(group, leader, epoch, isr)| Command::ReportLeader {
                group: GroupId(group),
                leader,
                epoch,
                isr,
            }),
        2 => (node.clone(), prop::sample::select(&[0u64, 1, 10, 1000, u64::MAX][..]))
            .prop_map(|(node, block_len)| Command::AllocateProducerIds { node, block_len }),
        1 => (node.clone(), addr(), 0i64..100)
            .prop_map(|(node, addr, at_ms)| Command::AddNode { node, addr, at_ms }),
        1 => (node.clone(), 0i64..100).prop_map(|(node, at_ms)| Command::RemoveNode { node, at_ms }),
        1 => node.prop_map(|node| Command::ForgetNode { node }),
        2 => security_command(),
    ]
}

/// User and ACL commands, some valid and some not (bad names, weak credentials, malformed ACLs).
fn security_command() -> impl Strategy<Value = Command> {
    use cairn_controller::security::acl::{
        AclBinding, AclOperation, PatternType, Permission, ResourceType,
    };
    use cairn_controller::security::quota::QuotaLimits;
    use cairn_controller::security::scram::ScramCredential;
    let user = prop::sample::select(&["alice", "bob", "", "a b"][..]);
    let acl = (
        prop::sample::select(&["User:alice", "User:*", "alice", "User:"][..]),
        prop::sample::select(&["*", "10.0.0.1", "host"][..]),
        prop::sample::select(&AclOperation::ALL[..]),
        prop::sample::select(
            &[
                ResourceType::Topic,
                ResourceType::Group,
                ResourceType::Cluster,
            ][..],
        ),
        prop::sample::select(&["orders", "or", "*", "", "cairn-cluster"][..]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(principal, host, operation, resource_type, name, prefixed, allow)| AclBinding {
                principal: principal.into(),
                host: host.into(),
                operation,
                resource_type,
                resource_name: name.into(),
                pattern_type: if prefixed {
                    PatternType::Prefixed
                } else {
                    PatternType::Literal
                },
                permission: if allow {
                    Permission::Allow
                } else {
                    Permission::Deny
                },
            },
        );
    prop_oneof![
        (user.clone(), prop::sample::select(&[4096u32, 1][..])).prop_map(|(name, iterations)| {
            // Derived once per case with the cheapest accepted count; iterations 1 is refused.
            let mut credential = ScramCredential::derive(b"pw", b"saltsalt", 4096);
            credential.iterations = iterations;
            Command::UpsertUser {
                name: name.into(),
                credential,
            }
        }),
        user.prop_map(|name| Command::DeleteUser { name: name.into() }),
        prop::collection::vec(acl.clone(), 0..3).prop_map(|acls| Command::CreateAcls { acls }),
        prop::collection::vec(acl, 0..3).prop_map(|acls| Command::DeleteAcls { acls }),
        (
            quota_entity(),
            prop::option::of(0u64..3),
            prop::option::of(0u64..3)
        )
            .prop_map(
                |(entity, producer_byte_rate, max_topics)| Command::SetQuota {
                    entity,
                    // Zero and all-absent limits are refused, and must change nothing.
                    limits: QuotaLimits {
                        producer_byte_rate,
                        max_topics,
                        ..QuotaLimits::default()
                    },
                }
            ),
        quota_entity().prop_map(|entity| Command::RemoveQuota { entity }),
    ]
}

/// A quota's entity: the default, a user, or a malformed principal (refused).
fn quota_entity() -> impl Strategy<Value = QuotaEntity> {
    prop_oneof![
        Just(QuotaEntity::Default),
        prop::sample::select(&["User:alice", "User:bob", "alice"][..])
            .prop_map(|p| QuotaEntity::Principal(p.to_string())),
    ]
}

/// One step of a script. Leader reports are mostly drawn against the partitions that exist when
/// the step runs (a strategy cannot see the state), so that they are not nearly all refused.
#[derive(Clone, Debug)]
enum Step {
    Command(Command),
    /// Report on the `partition_pick`-th partition (modulo their count): its
    /// `leader_pick`-th replica leads, and the replicas whose bit is set in `isr_mask` are in
    /// sync (the leader always added, unless `drop_leader`).
    ReportOnExisting {
        partition_pick: usize,
        leader_pick: usize,
        epoch: u64,
        isr_mask: u8,
        drop_leader: bool,
    },
    /// Move the `partition_pick`-th partition to the nodes picked by `nodes` (ids modulo 8,
    /// so some are unknown or repeated and refused).
    ReassignExisting {
        partition_pick: usize,
        nodes: Vec<u64>,
    },
    /// Complete the `partition_pick`-th pending reassignment, as its group leader would.
    CompleteExisting {
        partition_pick: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => command().prop_map(Step::Command),
        1 => (any::<usize>(), any::<usize>(), 0u64..6, any::<u8>(), prop::bool::weighted(0.05))
            .prop_map(|(partition_pick, leader_pick, epoch, isr_mask, drop_leader)| {
                Step::ReportOnExisting { partition_pick, leader_pick, epoch, isr_mask, drop_leader }
            }),
        1 => (any::<usize>(), prop::collection::vec(0u64..8, 1..5))
            .prop_map(|(partition_pick, nodes)| Step::ReassignExisting { partition_pick, nodes }),
        1 => any::<usize>().prop_map(|partition_pick| Step::CompleteExisting { partition_pick }),
    ]
}

fn resolve(step: Step, metadata: &ClusterMetadata) -> Command {
    if let Step::ReassignExisting {
        partition_pick,
        nodes,
    } = &step
    {
        let partitions: Vec<(String, u32)> = metadata
            .topics()
            .iter()
            .flat_map(|(name, t)| (0u32..).take(t.partitions.len()).map(|i| (name.clone(), i)))
            .collect();
        let Some((topic, partition)) = partitions.get(partition_pick % partitions.len().max(1))
        else {
            return Command::DeleteTopic { name: "a".into() };
        };
        return Command::ReassignPartitions {
            moves: vec![cairn_controller::PartitionMove {
                topic: topic.clone(),
                partition: *partition,
                replicas: nodes.clone(),
            }],
        };
    }
    if let Step::CompleteExisting { partition_pick } = &step {
        let pending: Vec<_> = metadata
            .topics()
            .values()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.target.clone().map(|t| (p.group, t)))
            .collect();
        let Some((group, replicas)) = pending.get(partition_pick % pending.len().max(1)) else {
            return Command::DeleteTopic { name: "a".into() };
        };
        return Command::CompleteReassignment {
            group: *group,
            replicas: replicas.clone(),
        };
    }
    let Step::ReportOnExisting {
        partition_pick,
        leader_pick,
        epoch,
        isr_mask,
        drop_leader,
    } = step
    else {
        let Step::Command(command) = step else {
            unreachable!()
        };
        return command;
    };
    let partitions: Vec<_> = metadata
        .topics()
        .values()
        .flat_map(|t| &t.partitions)
        .collect();
    let Some(partition) = partitions.get(partition_pick % partitions.len().max(1)) else {
        return Command::DeleteTopic { name: "a".into() };
    };
    let replicas = &partition.replicas;
    let leader = replicas[leader_pick % replicas.len()];
    let isr = replicas
        .iter()
        .enumerate()
        .filter(|(idx, node)| {
            (**node == leader && !drop_leader) || (**node != leader && isr_mask & (1 << idx) != 0)
        })
        .map(|(_, node)| *node)
        .collect();
    Command::ReportLeader {
        group: partition.group,
        leader,
        epoch,
        isr,
    }
}

fn script() -> impl Strategy<Value = (Command, Vec<Step>)> {
    (bootstrap(5), prop::collection::vec(step(), 1..60))
}

/// What nodes host according to the actions seen so far: (node, group) -> assignment.
type Hosted = BTreeMap<(NodeId, GroupId), ReplicaAssignment>;

fn act(hosted: &mut Hosted, action: &Action) {
    match action {
        Action::HostReplica { node, assignment } => {
            hosted.insert((*node, assignment.group), assignment.clone());
        }
        Action::DropReplica { node, group, .. } => {
            assert!(
                hosted.remove(&(*node, *group)).is_some(),
                "dropped {group} not hosted"
            );
        }
        Action::ConfigChanged {
            node,
            topic_id,
            configs,
            ..
        } => {
            for ((host, _), assignment) in hosted.iter_mut() {
                if host == node && assignment.topic_id == *topic_id {
                    assignment.configs.clone_from(configs);
                }
            }
        }
        Action::PeerAddressChanged { .. } => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_commands_keep_every_invariant((first, steps) in script()) {
        let mut metadata = ClusterMetadata::new();
        let mut twin = ClusterMetadata::new();
        let mut hosted = Hosted::new();
        let mut topic_ids: BTreeSet<TopicId> = BTreeSet::new();
        let mut groups: BTreeSet<GroupId> = BTreeSet::new();
        let mut blocks: Vec<ProducerIdBlock> = Vec::new();

        let steps = std::iter::once(Step::Command(first)).chain(steps);
        for step in steps {
            let command = resolve(step, &metadata);
            let before = String::from_utf8_lossy(&metadata.to_snapshot()).into_owned();
            let result = metadata.apply(command.clone());
            prop_assert_eq!(&twin.apply(command.clone()), &result, "twins answered differently");
            prop_assert_eq!(&twin, &metadata);
            match &result {
                Err(_) => {
                    let after = String::from_utf8_lossy(&metadata.to_snapshot()).into_owned();
                    prop_assert_eq!(after, before, "{:?} refused but changed", command);
                }
                Ok(reply) => {
                    for action in &reply.actions {
                        act(&mut hosted, action);
                    }
                    if let Outcome::ProducerIds(block) = reply.outcome {
                        prop_assert!(blocks.iter().all(|b| block.first >= b.end() || b.first >= block.end()));
                        blocks.push(block);
                    }
                }
            }
            if let Err(reason) = metadata.check_invariants() {
                prop_assert!(false, "after {:?}: {}", command, reason);
            }

            // Ids: every topic and group present now was new when it appeared, and stays known.
            for topic in metadata.topics().values() {
                if topic_ids.insert(topic.id) {
                    let created = matches!(
                        result,
                        Ok(Reply { outcome: Outcome::TopicCreated { topic_id, .. }, .. })
                            if topic_id == topic.id
                    );
                    prop_assert!(created, "{} appeared without a create", topic.id);
                }
                for partition in &topic.partitions {
                    groups.insert(partition.group);
                }
            }
            prop_assert!(topic_ids.iter().all(|id| *id < metadata.next_topic_id()));
            prop_assert!(groups.iter().all(|g| g.0 > 0 && *g < metadata.next_group_id()));

            // The actions so far describe exactly what replicas_of reports.
            for node in 0..8 {
                let expected: Vec<ReplicaAssignment> = hosted
                    .iter()
                    .filter(|((host, _), _)| *host == node)
                    .map(|(_, a)| a.clone())
                    .collect();
                prop_assert_eq!(metadata.replicas_of(node), expected);
            }
        }
        let restored = ClusterMetadata::from_snapshot(&metadata.to_snapshot());
        prop_assert_eq!(restored, Ok(metadata.clone()));
    }

    #[test]
    fn a_group_id_never_comes_back_after_delete(
        creates in prop::collection::vec((0usize..3, 1u32..4), 1..20)
    ) {
        let mut metadata = ClusterMetadata::new();
        metadata.apply(Command::Bootstrap {
            cluster_id: "c".into(),
            peers: vec![PeerSpec { node: 1, addr: "h:1".into() }],
            at_ms: 0,
        }).unwrap();
        let mut seen = BTreeSet::new();
        for (name_idx, partition_count) in creates {
            let name = ["a", "b", "c"][name_idx].to_string();
            let _ = metadata.apply(Command::DeleteTopic { name: name.clone() });
            metadata.apply(Command::CreateTopic {
                name: name.clone(),
                partition_count,
                replication_factor: 1,
                configs: BTreeMap::new(),
            }).unwrap();
            let topic = metadata.topic(&name).unwrap();
            prop_assert!(seen.insert(topic.id.0 << 32));
            for partition in &topic.partitions {
                prop_assert!(seen.insert(partition.group.0), "{} given twice", partition.group);
            }
        }
    }

    #[test]
    fn placement_on_a_fresh_cluster_is_balanced(
        node_count in 1u64..9,
        uniform_factor in any::<bool>(),
        creates in prop::collection::vec((1u32..12, 1u16..9), 1..12),
    ) {
        let mut metadata = ClusterMetadata::new();
        metadata.apply(Command::Bootstrap {
            cluster_id: "c".into(),
            peers: (1..=node_count).map(|node| PeerSpec { node, addr: format!("h{node}") }).collect(),
            at_ms: 0,
        }).unwrap();
        let max_factor = u16::try_from(node_count).unwrap();
        let first_factor = creates[0].1.min(max_factor);
        for (idx, (partition_count, factor)) in creates.into_iter().enumerate() {
            let factor = if uniform_factor { first_factor } else { factor.min(max_factor) };
            metadata.apply(Command::CreateTopic {
                name: format!("t{idx}"),
                partition_count,
                replication_factor: factor,
                configs: BTreeMap::new(),
            }).unwrap();

            let mut replica_counts: BTreeMap<NodeId, u64> = (1..=node_count).map(|n| (n, 0)).collect();
            let mut leader_counts = replica_counts.clone();
            for topic in metadata.topics().values() {
                for partition in &topic.partitions {
                    let distinct: BTreeSet<_> = partition.replicas.iter().collect();
                    prop_assert_eq!(distinct.len(), partition.replicas.len());
                    for node in &partition.replicas {
                        *replica_counts.get_mut(node).unwrap() += 1;
                    }
                    *leader_counts.get_mut(&partition.replicas[0]).unwrap() += 1;
                }
            }
            let spread = |counts: &BTreeMap<NodeId, u64>| {
                counts.values().max().unwrap() - counts.values().min().unwrap()
            };
            prop_assert!(spread(&replica_counts) <= 1, "replicas {:?}", replica_counts);
            if uniform_factor {
                prop_assert!(spread(&leader_counts) <= 1, "leaders {:?}", leader_counts);
            }
        }
    }

    #[test]
    fn every_command_encodes_and_decodes_to_itself(command in command()) {
        prop_assert_eq!(Command::decode(&command.encode()), Ok(command));
    }

    #[test]
    fn decoding_junk_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Command::decode(&bytes);
        let _ = ClusterMetadata::from_snapshot(&bytes);
    }
}
