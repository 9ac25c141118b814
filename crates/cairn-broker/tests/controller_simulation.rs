//! Deterministic simulation of the controller group (`cairn_raft::testing::sim`): the real
//! controller state machine ([`ControllerStateMachine`] over `cairn_controller`'s metadata rules)
//! on 3 and 5 nodes, under message loss, delay, reordering and duplication, one-way and two-way
//! partitions, and crashes that lose unflushed log entries, while clients propose bootstraps,
//! node registrations, topic creations and deletions, leader reports and producer-id blocks.
//! After healing, every node must hold byte-identical metadata (its snapshot encoding), and every
//! acknowledged command must sit at the index it was acknowledged at on every node.
//!
//! The controller's log is the simulated disk rather than `cairn-log` (which writes from its own
//! thread, outside the simulated clock), and snapshots are off: a restarted node rebuilds its
//! metadata by applying the whole log again.
//!
//! `CAIRN_SIM_SEED=<n>` replays one seed; `CAIRN_SIM_SEEDS=<count>` runs more than CI does.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_broker::cluster::{ControllerRaft, ControllerStateMachine, encode_command};
use cairn_controller::{Command, GroupId, NodeState, PeerSpec};
use cairn_raft::testing::sim::{Digest, DiskBug, SimGroup, SimOptions, run_seed, run_seeds};
use cairn_raft::{BatchData, NodeId};

/// Seeds CI runs (`cargo test`).
const CI_SEEDS: u64 = 100;

/// The controller group: clients propose metadata commands.
struct ControllerGroup;

/// The command client `client` proposes as its `n`th write: a mix that exercises most metadata
/// rules, including refusals (a delete of a topic already gone, a create before bootstrap).
fn command(client: u64, n: u64) -> Command {
    let at_ms = i64::try_from(n).unwrap_or(i64::MAX);
    let node = 1 + n % 5;
    match n % 7 {
        0 => Command::Bootstrap {
            cluster_id: "sim".to_string(),
            peers: (1..=3)
                .map(|node| PeerSpec {
                    node,
                    addr: format!("sim-{node}"),
                })
                .collect(),
            at_ms,
        },
        1 => Command::RegisterNode {
            node,
            addr: format!("client-{client}-write-{n}"),
            at_ms,
        },
        2 => Command::CreateTopic {
            name: format!("t-{client}-{n}"),
            partition_count: u32::try_from(1 + n % 3).unwrap_or(1),
            replication_factor: u16::try_from(1 + n % 3).unwrap_or(1),
            configs: BTreeMap::new(),
        },
        3 => Command::DeleteTopic {
            name: format!("t-{client}-{}", n - 1),
        },
        4 => Command::ReportLeader {
            group: GroupId(1 + n % 11),
            leader: 1 + n % 3,
            epoch: n,
            isr: vec![1, 2, 3],
        },
        5 => Command::SetNodeState {
            node,
            state: if n.is_multiple_of(2) {
                NodeState::Alive
            } else {
                NodeState::Fenced
            },
            at_ms,
        },
        _ => Command::AllocateProducerIds {
            node,
            block_len: 1 + n % 100,
        },
    }
}

impl SimGroup for ControllerGroup {
    type C = ControllerRaft;
    type Sm = ControllerStateMachine;

    fn state_machine(&self, node: NodeId) -> (ControllerStateMachine, Digest) {
        // The events go to a replica manager in a broker; the simulation has none to drive.
        let (sm, metadata, _events) = ControllerStateMachine::new(node);
        let digest: Digest = Box::new(move || metadata.borrow().to_snapshot());
        (sm, digest)
    }

    fn write(&self, client: u64, n: u64) -> BatchData {
        let at_ms = i64::try_from(n).unwrap_or(i64::MAX);
        encode_command(&command(client, n), at_ms).expect("a command encodes as a batch")
    }
}

#[test]
fn controller_group_agrees_on_metadata_under_faults() {
    let replay = "cargo test -p cairn-broker --test controller_simulation -- --nocapture";
    let failures = run_seeds("controller_group", replay, CI_SEEDS, |seed| {
        let opts = SimOptions {
            node_count: if seed % 2 == 1 { 3 } else { 5 },
            fault_ms: 20_000,
            client_count: 3,
            bug: DiskBug::None,
        };
        run_seed(Arc::new(ControllerGroup), seed, opts)
    });
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}
