//! Bootstrap, RegisterNode, AdvertiseNode and SetNodeState.

use super::*;
use crate::node::NodeState;
use crate::reply::Outcome;
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
    assert_eq!(
        reply.outcome,
        Outcome::NodeRegistered { node: 4, new: true }
    );
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
    assert_eq!(
        reply.outcome,
        Outcome::NodeRegistered {
            node: 2,
            new: false
        }
    );
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
    assert!(
        again.actions.is_empty(),
        "same address, nothing to announce"
    );
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
fn advertise_node_sets_and_clears_where_clients_reach_a_node() {
    let mut metadata = cluster(3);
    assert_eq!(metadata.node(2).unwrap().client_address(), "10.0.0.2:7070");
    let reply = metadata
        .apply(Command::AdvertiseNode {
            node: 2,
            client_addr: Some("broker-2.example:9092".into()),
        })
        .unwrap();
    assert_eq!(reply.outcome, Outcome::NodeAdvertised { node: 2 });
    let node = metadata.node(2).unwrap();
    assert_eq!(
        node.addr, "10.0.0.2:7070",
        "peers still dial the peer address"
    );
    assert_eq!(node.client_address(), "broker-2.example:9092");
    metadata
        .apply(Command::AdvertiseNode {
            node: 2,
            client_addr: None,
        })
        .unwrap();
    assert_eq!(metadata.node(2).unwrap().client_address(), "10.0.0.2:7070");
    metadata.check_invariants().unwrap();
}

#[test]
fn advertise_node_refuses_an_unknown_node_and_an_empty_address() {
    let mut metadata = cluster(3);
    let before = metadata.clone();
    let unknown = Command::AdvertiseNode {
        node: 9,
        client_addr: Some("a:1".into()),
    };
    assert_eq!(
        refused(&mut metadata, unknown),
        ControllerError::UnknownNode { node: 9 }
    );
    let empty = Command::AdvertiseNode {
        node: 1,
        client_addr: Some(String::new()),
    };
    assert_eq!(
        refused(&mut metadata, empty),
        ControllerError::EmptyNodeAddress { node: 1 }
    );
    assert_eq!(metadata, before, "nothing changed");
}
