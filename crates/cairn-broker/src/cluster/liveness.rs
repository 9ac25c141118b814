//! Node-level liveness, and elections steered by it. Each node probes each peer once per
//! heartbeat interval (one small call per node pair, however many groups they share). When a
//! peer stops answering, every group it led here gets exactly one candidate per round: in the
//! first round the live replica with the lowest node id, in the next the next one, and so on
//! (every survivor computes the same one from the same facts). The candidate calls an election
//! as soon as openraft's leader lease, which makes followers refuse votes for
//! `election_timeout_max` after the leader's last word, has run out.
//!
//! Why the candidate changes between rounds: a candidate wins only with a log at least as
//! complete as a majority's, and the lowest id may hold less than another survivor (the dead
//! leader's last entries reached one follower only). Each of its failed elections raised the
//! term, which resets the other survivors' own election timers, so always asking the same node
//! kept a partition leaderless for as long as the steering lasted; a network partition test
//! found it.
//!
//! The loop also publishes what it finds ([`PeerReachability`]), for what the node tells
//! operators (`DescribeCluster`, `cairn_cluster_node_up`) and for the in-sync replica rule: a
//! follower on a node the probes cannot reach is not counted in sync, however close its copy
//! was when it went silent. It is this node's view only; nothing is proposed to the controller.
//!
//! Why: with openraft's own randomized timers alone, the two survivors of each of hundreds of
//! groups time out independently, and some pairs time out together and split their votes, round
//! after round; a 1,000-partition failover measured 30 s to its last leader. openraft's timers
//! stay on as the backstop for everything this does not see (a group stuck on a live node).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use cairn_raft::{GroupId, NodeId, PartitionRaft, PeerTransport, RpcKind};
use openraft::{Raft, ServerState};
use tokio::time::Instant;

/// The partition groups this node holds, by id, for steering their elections.
pub(crate) type HeldGroups = Arc<RwLock<HashMap<GroupId, Raft<PartitionRaft>>>>;

/// Which peers this node's probes find unreachable now, as the liveness loop last published
/// it, and since when each has been in that state. Cheap to clone (one `Arc`); a peer not
/// listed (this node, or before the first probe) counts as reachable.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerReachability(Arc<RwLock<Published>>);

/// What the liveness loop last published.
#[derive(Debug, Default)]
struct Published {
    /// Peer to unreachable.
    dead: BTreeMap<NodeId, bool>,
    /// When each peer entered its current state, as the publishing side saw it (the first
    /// publish counts as a change for every peer).
    since: BTreeMap<NodeId, Instant>,
}

impl PeerReachability {
    /// Whether the last probes found `node` silent past the dead-after time.
    pub(crate) fn is_unreachable(&self, node: NodeId) -> bool {
        self.read().dead.get(&node).copied().unwrap_or(false)
    }

    /// How long `node` has been reachable without a break, as of `now`; `None` while it is
    /// unreachable, or when it was never probed (this node itself). What preferred-leader
    /// balancing waits on, so a node that keeps coming and going does not pull leaderships
    /// back each time it returns.
    pub(crate) fn reachable_for(&self, node: NodeId, now: Instant) -> Option<Duration> {
        let published = self.read();
        match published.dead.get(&node) {
            Some(false) => published
                .since
                .get(&node)
                .map(|since| now.saturating_duration_since(*since)),
            _ => None,
        }
    }

    /// Every probed peer with whether it is unreachable, by node id.
    pub(crate) fn snapshot(&self) -> BTreeMap<NodeId, bool> {
        self.read().dead.clone()
    }

    /// Replaces the published view with `dead` (peer to unreachable), noting the time of each
    /// peer's change of state.
    pub(crate) fn publish(&self, dead: &BTreeMap<NodeId, bool>) {
        let now = Instant::now();
        let mut published = self.0.write().unwrap_or_else(|e| e.into_inner());
        if published.dead == *dead {
            return;
        }
        for (peer, is_dead) in dead {
            if published.dead.get(peer) != Some(is_dead) {
                published.since.insert(*peer, now);
            }
        }
        published.dead.clone_from(dead);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Published> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a node probes its peers and when it calls elections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LivenessTimings {
    /// Between probes of one peer (the Raft heartbeat interval).
    pub(crate) probe_every: Duration,
    /// A peer silent this long is taken for dead (the election timeout's lower end).
    pub(crate) dead_after: Duration,
    /// openraft's leader lease: followers refuse votes this long after the leader's last word
    /// (the election timeout's upper end).
    pub(crate) lease: Duration,
}

/// Rounds of elections called for a dead peer's groups: each live replica gets at least two
/// turns with three replicas.
const TAKE_OVER_ROUNDS: usize = 6;

/// Probes every peer, publishes which are unreachable in `reachability` after each round, and
/// steers elections of the groups a dead peer led. Ends when `groups` is the last handle (the
/// broker is gone).
pub(crate) async fn run(
    me: NodeId,
    peers: Vec<NodeId>,
    metadata: tokio::sync::watch::Receiver<Arc<cairn_controller::ClusterMetadata>>,
    transport: Arc<dyn PeerTransport>,
    groups: HeldGroups,
    reachability: PeerReachability,
    timings: LivenessTimings,
) {
    let started = Instant::now();
    let mut last_seen: BTreeMap<NodeId, Instant> = peers
        .iter()
        .filter(|p| **p != me)
        .map(|p| (*p, started))
        .collect();
    let mut dead: BTreeMap<NodeId, bool> = last_seen.keys().map(|p| (*p, false)).collect();
    reachability.publish(&dead);
    let mut ticker = tokio::time::interval(timings.probe_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout_ms = u64::try_from(timings.probe_every.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    loop {
        ticker.tick().await;
        if Arc::strong_count(&groups) == 1 {
            return;
        }
        follow_membership(me, &metadata, &mut last_seen, &mut dead);
        let probes = last_seen.keys().map(|peer| {
            let call = transport.call(
                *peer,
                GroupId::CONTROLLER,
                RpcKind::Ping,
                Bytes::new(),
                timeout_ms,
            );
            let peer = *peer;
            async move { (peer, call.await.is_ok()) }
        });
        let answers = futures_join_all(probes).await;
        let now = Instant::now();
        for (peer, alive) in answers {
            if alive {
                last_seen.insert(peer, now);
            }
            let silent_for = now.saturating_duration_since(last_seen[&peer]);
            let is_dead = silent_for >= timings.dead_after;
            let was_dead = dead.insert(peer, is_dead).unwrap_or(false);
            if is_dead && !was_dead {
                tracing::warn!(
                    peer,
                    silent_ms = silent_for.as_millis() as u64,
                    "peer not answering; taking over the groups it led"
                );
                let lease_ends = last_seen[&peer] + timings.lease + Duration::from_millis(50);
                tokio::spawn(take_over(
                    me,
                    peer,
                    Arc::clone(&groups),
                    dead.clone(),
                    lease_ends,
                    timings,
                ));
            } else if !is_dead && was_dead {
                tracing::info!(peer, "peer answering again");
            }
        }
        reachability.publish(&dead);
    }
}

/// Probes the nodes the metadata lists once the cluster has formed (nodes are added and
/// removed while it runs); before that, the static peer list.
fn follow_membership(
    me: NodeId,
    metadata: &tokio::sync::watch::Receiver<Arc<cairn_controller::ClusterMetadata>>,
    last_seen: &mut BTreeMap<NodeId, Instant>,
    dead: &mut BTreeMap<NodeId, bool>,
) {
    let current = Arc::clone(&metadata.borrow());
    if !current.is_bootstrapped() {
        return;
    }
    let nodes = current.nodes();
    last_seen.retain(|peer, _| nodes.contains_key(peer));
    dead.retain(|peer, _| nodes.contains_key(peer));
    let now = Instant::now();
    for peer in nodes.keys().filter(|p| **p != me) {
        last_seen.entry(*peer).or_insert(now);
        dead.entry(*peer).or_insert(false);
    }
}

/// Awaits every probe (a handful of peers: no need for a crate's join_all).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::with_capacity(handles.len());
    for f in handles {
        out.push(f.await);
    }
    out
}

/// For each group `dead` led that still has no live leader, calls an election where this node
/// is the round's designated candidate, once the lease is over, and again for a few rounds
/// (each with the next live replica as the candidate) while the group stays leaderless.
async fn take_over(
    me: NodeId,
    dead_peer: NodeId,
    groups: HeldGroups,
    dead: BTreeMap<NodeId, bool>,
    lease_ends: Instant,
    timings: LivenessTimings,
) {
    tokio::time::sleep_until(lease_ends).await;
    for attempt in 0..TAKE_OVER_ROUNDS {
        let mut leaderless = 0usize;
        let candidates: Vec<Raft<PartitionRaft>> = groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|raft| {
                let m = raft.metrics();
                let m = m.borrow();
                if m.current_leader.is_some_and(|l| l != dead_peer)
                    || m.state == ServerState::Leader
                {
                    return false;
                }
                leaderless += 1;
                let mut live: Vec<NodeId> = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .filter(|v| *v != dead_peer && !dead.get(v).copied().unwrap_or(false))
                    .collect();
                live.sort_unstable();
                !live.is_empty() && live[attempt % live.len()] == me
            })
            .cloned()
            .collect();
        if leaderless == 0 {
            return;
        }
        if !candidates.is_empty() {
            tracing::info!(
                dead_peer,
                groups = candidates.len(),
                attempt,
                "calling elections for groups a dead peer led"
            );
        }
        for raft in &candidates {
            if let Err(e) = raft.trigger().elect().await {
                tracing::debug!(error = %e, "election not called");
            }
        }
        tokio::time::sleep(timings.lease / 2 + timings.probe_every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_counts_as_reachable_from_its_last_return_only() {
        let reachability = PeerReachability::default();
        let view = |dead: bool| BTreeMap::from([(2, dead), (3, false)]);
        reachability.publish(&view(false));
        tokio::time::advance(Duration::from_secs(5)).await;
        let reachable = |r: &PeerReachability| r.reachable_for(2, Instant::now());
        assert_eq!(reachable(&reachability), Some(Duration::from_secs(5)));
        reachability.publish(&view(true));
        assert_eq!(reachable(&reachability), None, "unreachable");
        tokio::time::advance(Duration::from_secs(1)).await;
        reachability.publish(&view(false));
        tokio::time::advance(Duration::from_secs(2)).await;
        reachability.publish(&view(false));
        assert_eq!(
            reachable(&reachability),
            Some(Duration::from_secs(2)),
            "counted from the return, not from the first probe"
        );
        assert_eq!(
            reachability.reachable_for(1, Instant::now()),
            None,
            "never probed"
        );
    }
}
