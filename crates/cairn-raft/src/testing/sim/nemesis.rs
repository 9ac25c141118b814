//! The fault schedule of one run, drawn from the seed before the run starts: when to cut which
//! links (a symmetric split into two sides, or one-way cuts), when to heal, when to crash and
//! restart which node, and when the network's loss and delay change. Because the whole schedule
//! is fixed up front, a seed replays the same faults at the same virtual times whatever the
//! nodes do in between. At most a minority of nodes is down at once, so writes can commit
//! between faults; partitions may still leave no majority for a while.

use std::collections::BTreeSet;
use std::fmt;

use super::network::FaultProfile;
use super::rng::SimRng;
use crate::types::NodeId;

/// One fault (or repair) the schedule applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut every link between `side` and the other nodes, both ways.
    Split {
        /// One side of the partition.
        side: Vec<NodeId>,
    },
    /// Cut the directed links `from -> to` only: `to` stops hearing `from`, not the reverse.
    OneWay {
        /// The links cut, as `(from, to)`.
        links: Vec<(NodeId, NodeId)>,
    },
    /// Restore every link.
    Heal,
    /// Power off a node: it loses what it had not flushed.
    Crash(NodeId),
    /// Start a crashed node again from its disk.
    Restart(NodeId),
    /// Crash a node and start it again `down_ms` later: a process restart, often quicker than
    /// an election, so the node may come back into the term it left.
    Reboot {
        /// The node.
        node: NodeId,
        /// How long it stays down.
        down_ms: u64,
    },
    /// Change how lossy, slow and disorderly the network is.
    Network(FaultProfile),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Split { side } => write!(f, "split {side:?} from the rest"),
            Fault::OneWay { links } => write!(f, "cut one way {links:?}"),
            Fault::Heal => f.write_str("heal"),
            Fault::Crash(node) => write!(f, "crash node {node}"),
            Fault::Restart(node) => write!(f, "restart node {node}"),
            Fault::Reboot { node, down_ms } => write!(f, "reboot node {node} ({down_ms} ms down)"),
            Fault::Network(p) => write!(
                f,
                "network loss {}‰ dup {}‰ delay {}..{} ms, long {}‰ up to {} ms",
                p.loss_per_mille,
                p.duplicate_per_mille,
                p.delay_min_ms,
                p.delay_max_ms,
                p.long_delay_per_mille,
                p.long_delay_max_ms
            ),
        }
    }
}

/// The faults of a run, in virtual time order: `(at_ms, fault)`.
pub fn schedule(seed: u64, node_count: u64, duration_ms: u64) -> Vec<(u64, Fault)> {
    let mut rng = SimRng::keyed(seed, &[u64::from(b'N')]);
    let nodes: Vec<NodeId> = (1..=node_count).collect();
    let minority = usize::try_from((node_count - 1) / 2).unwrap_or(0);
    let mut down = BTreeSet::new();
    let mut out = vec![(0, Fault::Network(FaultProfile::random(&mut rng)))];
    let mut at_ms = 0;
    loop {
        at_ms += rng.range(100, 1500);
        if at_ms >= duration_ms {
            return out;
        }
        let fault = match rng.range(0, 10) {
            0 | 1 => {
                let size = rng.range(1, node_count);
                let mut shuffled = nodes.clone();
                shuffle(&mut rng, &mut shuffled);
                shuffled.truncate(usize::try_from(size).unwrap_or(1));
                shuffled.sort_unstable();
                Fault::Split { side: shuffled }
            }
            2 => {
                let count = rng.range(1, node_count + 1);
                let links = (0..count)
                    .filter_map(|_| {
                        let from = rng.pick(&nodes)?;
                        let to = rng.pick(&nodes)?;
                        (from != to).then_some((from, to))
                    })
                    .collect();
                Fault::OneWay { links }
            }
            3 | 4 => Fault::Heal,
            5 | 6 if down.len() < minority => {
                let up: Vec<NodeId> = nodes
                    .iter()
                    .copied()
                    .filter(|n| !down.contains(n))
                    .collect();
                match rng.pick(&up) {
                    Some(node) => {
                        down.insert(node);
                        Fault::Crash(node)
                    }
                    None => Fault::Heal,
                }
            }
            5..=7 => match down.pop_first() {
                Some(node) => Fault::Restart(node),
                None => Fault::Heal,
            },
            8 => {
                let up: Vec<NodeId> = nodes
                    .iter()
                    .copied()
                    .filter(|n| !down.contains(n))
                    .collect();
                match rng.pick(&up) {
                    Some(node) => Fault::Reboot {
                        node,
                        down_ms: rng.range(0, 300),
                    },
                    None => Fault::Heal,
                }
            }
            _ => Fault::Network(FaultProfile::random(&mut rng)),
        };
        out.push((at_ms, fault));
    }
}

fn shuffle(rng: &mut SimRng, items: &mut [NodeId]) {
    for i in (1..items.len()).rev() {
        let j = usize::try_from(rng.range(0, u64::try_from(i + 1).unwrap_or(1))).unwrap_or(0);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_fixes_the_schedule_and_keeps_a_majority_powered() {
        for seed in 0..50 {
            let plan = schedule(seed, 5, 20_000);
            assert_eq!(plan, schedule(seed, 5, 20_000));
            let mut down = BTreeSet::new();
            for (_, fault) in &plan {
                match fault {
                    Fault::Crash(n) => assert!(down.insert(*n), "node {n} crashed twice"),
                    Fault::Restart(n) => assert!(down.remove(n), "node {n} restarted while up"),
                    _ => {}
                }
                assert!(down.len() <= 2, "{} nodes down of 5", down.len());
            }
        }
    }
}
