//! The simulated cluster: N nodes, each hosting one Raft group of the kind a [`SimGroup`]
//! describes, over the [`SimNetwork`] and each node's [`SimDisk`]. It starts nodes, applies the
//! faults of the schedule (a crash shuts the node's openraft down and drops what its disk had
//! not flushed; a restart starts a new openraft over the same disk with a fresh state machine),
//! and, at the end, heals everything and checks that the nodes converged to one applied state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::impls::OneshotResponder;
use openraft::storage::RaftStateMachine;
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use tokio::task::JoinHandle;

use super::SimFailure;
use super::disk::{DiskBug, SimDisk};
use super::nemesis::Fault;
use super::network::{FaultProfile, SimNetwork};
use super::observer::{Observed, Observer, describe};
use super::rng::SimRng;
use crate::groups::GroupRegistry;
use crate::network::GroupNetwork;
use crate::types::{BatchData, GroupId, NodeId, PeerNode};
use crate::wire::CairnRaftConfig;

/// Reads a node's applied state as bytes that must be equal on every node at the end.
pub type Digest = Box<dyn Fn() -> Vec<u8> + Send + Sync>;

/// The Raft group a simulation runs: its type configuration, its state machine, and what its
/// clients write.
pub trait SimGroup: Send + Sync + 'static {
    /// The group's openraft type configuration (with openraft's default responder, which the
    /// clients await).
    type C: CairnRaftConfig<Responder = OneshotResponder<Self::C>>;
    /// The state machine under test.
    type Sm: RaftStateMachine<Self::C>;

    /// A fresh state machine for a new life of `node`, and how to read its state.
    fn state_machine(&self, node: NodeId) -> (Self::Sm, Digest);

    /// The payload of client `client`'s `n`th write; every write must be distinct.
    fn write(&self, client: u64, n: u64) -> BatchData;
}

/// Heartbeat interval of the simulated groups (ms); elections time out after 3 to 6 of them.
const HEARTBEAT_MS: u64 = 50;

struct Running<C: CairnRaftConfig> {
    raft: Raft<C>,
    digest: Digest,
    watcher: JoinHandle<()>,
}

struct SimNode<C: CairnRaftConfig> {
    disk: SimDisk<C>,
    registry: Arc<GroupRegistry>,
    running: Option<Running<C>>,
}

/// The live openraft handles, which the clients read.
pub type LiveNodes<C> = Arc<Mutex<BTreeMap<NodeId, Raft<C>>>>;

/// A simulated cluster of one group.
pub struct SimCluster<G: SimGroup> {
    group: Arc<G>,
    seed: u64,
    net: Arc<SimNetwork>,
    observer: Observer,
    nodes: BTreeMap<NodeId, SimNode<G::C>>,
    live: LiveNodes<G::C>,
    /// Each node's place in a seeded order, which spaces the election timeouts apart.
    election_rank: BTreeMap<NodeId, u64>,
}

/// The group id the simulated group uses on every node.
const GROUP: GroupId = GroupId(1);

impl<G: SimGroup> SimCluster<G> {
    /// Starts `node_count` nodes and initializes the group on each with all of them as voters
    /// (as the controller does; openraft accepts the same membership from every node).
    ///
    /// # Errors
    /// [`SimFailure::Start`] if openraft refuses to start.
    pub async fn start(
        group: Arc<G>,
        seed: u64,
        node_count: u64,
        bug: DiskBug,
    ) -> Result<SimCluster<G>, SimFailure> {
        let mut cluster = SimCluster {
            group,
            seed,
            net: SimNetwork::new(seed),
            observer: Observer::default(),
            nodes: BTreeMap::new(),
            live: Arc::default(),
            election_rank: election_ranks(seed, node_count),
        };
        for id in 1..=node_count {
            let disk = SimDisk::new(SimRng::keyed(seed, &[u64::from(b'D'), id]), bug);
            let node = SimNode {
                disk,
                registry: Arc::new(GroupRegistry::new()),
                running: None,
            };
            cluster.nodes.insert(id, node);
            cluster.start_node(id).await?;
        }
        let members: BTreeMap<NodeId, PeerNode> = (1..=node_count)
            .map(|id| {
                (
                    id,
                    PeerNode {
                        addr: format!("sim-{id}"),
                    },
                )
            })
            .collect();
        for raft in cluster.live_rafts() {
            // A peer's vote may reach a node before its own initialize and make it a member;
            // openraft then refuses, the outcome wanted anyway (the controller does the same).
            let _ = raft.initialize(members.clone()).await;
        }
        Ok(cluster)
    }

    /// The observer of this run.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// The network of this run.
    pub fn network(&self) -> &Arc<SimNetwork> {
        &self.net
    }

    /// The disk of node `id`.
    pub fn disk(&self, id: NodeId) -> Option<SimDisk<G::C>> {
        self.nodes.get(&id).map(|n| n.disk.clone())
    }

    /// The node that believes it leads, if one is live and does.
    pub fn leader(&self) -> Option<(NodeId, Raft<G::C>)> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .find(|(_, raft)| raft.metrics().borrow().state == ServerState::Leader)
            .map(|(id, raft)| (*id, raft.clone()))
    }

    /// The live nodes' openraft handles (shared with the clients).
    pub fn live(&self) -> LiveNodes<G::C> {
        Arc::clone(&self.live)
    }

    fn live_rafts(&self) -> Vec<Raft<G::C>> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.values().cloned().collect()
    }

    /// Starts a new life of node `id` over its disk.
    async fn start_node(&mut self, id: NodeId) -> Result<(), SimFailure> {
        let Some(node) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        // Processes do not start in the same millisecond; without this stagger every node's
        // timer ticks at the same virtual instants.
        let life = self.net.start_node(id, Arc::clone(&node.registry));
        let mut rng = SimRng::keyed(self.seed, &[u64::from(b'E'), id, life]);
        tokio::time::sleep(Duration::from_millis(rng.range(0, HEARTBEAT_MS))).await;
        // openraft draws its election timeout once per start, from an unseeded thread RNG within
        // `min..max`, so the range is made one millisecond wide around a seeded value. The values
        // are a heartbeat (one timer tick) apart between nodes: on an exact virtual clock, nodes
        // whose timeouts round to the same tick start every election together and split the
        // vote forever (seed 315 of an earlier schedule did, from start-up on).
        let rank = self.election_rank.get(&id).copied().unwrap_or(0);
        let timeout_ms = (3 + rank) * HEARTBEAT_MS + rng.range(0, HEARTBEAT_MS / 5);
        let config = Config {
            cluster_name: "sim".to_string(),
            heartbeat_interval: HEARTBEAT_MS,
            election_timeout_min: timeout_ms,
            election_timeout_max: timeout_ms + 1,
            snapshot_policy: SnapshotPolicy::Never,
            max_payload_entries: 64,
            ..Config::default()
        }
        .validate()
        .map_err(|e| SimFailure::Start(e.to_string()))?;
        self.observer.new_life(id, life);
        let (sm, digest) = self.group.state_machine(id);
        let raft = Raft::new(
            id,
            Arc::new(config),
            GroupNetwork::new(self.net.transport(id, life), GROUP),
            node.disk.open(),
            Observed::new(sm, (id, life), self.observer.clone()),
        )
        .await
        .map_err(|e| SimFailure::Start(e.to_string()))?;
        node.registry.insert(GROUP, Arc::new(raft.clone()));
        let watcher = tokio::spawn(watch_leaders(raft.clone(), id, self.observer.clone()));
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, raft.clone());
        node.running = Some(Running {
            raft,
            digest,
            watcher,
        });
        Ok(())
    }

    /// Powers node `id` off: it leaves the network, its openraft stops, and its disk keeps only
    /// what was flushed (plus a torn prefix of the rest).
    async fn crash_node(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        self.net.crash_node(id);
        node.registry.remove(GROUP);
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(running) = node.running.take() {
            running.watcher.abort();
            // The disk is cut first, so nothing the stopping openraft does reaches it durably.
            node.disk.crash();
            let _ = running.raft.shutdown().await;
        }
    }

    /// Applies one fault of the schedule.
    ///
    /// # Errors
    /// [`SimFailure::Start`] if a restarted node's openraft refuses to start.
    pub async fn apply(&mut self, fault: &Fault) -> Result<(), SimFailure> {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        match fault {
            Fault::Split { side } => {
                for a in side {
                    for b in ids.iter().filter(|b| !side.contains(b)) {
                        self.net.cut(*a, *b);
                        self.net.cut(*b, *a);
                    }
                }
            }
            Fault::OneWay { links } => {
                for (from, to) in links {
                    self.net.cut(*from, *to);
                }
            }
            Fault::Heal => self.net.heal(),
            Fault::Crash(id) => self.crash_node(*id).await,
            Fault::Restart(id) => self.start_node(*id).await?,
            Fault::Reboot { node, down_ms } => {
                self.crash_node(*node).await;
                tokio::time::sleep(Duration::from_millis(*down_ms)).await;
                self.start_node(*node).await?;
            }
            Fault::Network(profile) => self.net.set_profile(*profile),
        }
        Ok(())
    }

    /// Heals the network, restarts every crashed node, and waits until one write commits and
    /// every node applied it, within `patience` of virtual time.
    ///
    /// # Errors
    /// [`SimFailure::NoProgress`] if no write committed or a node did not catch up in time.
    pub async fn heal_and_converge(&mut self, patience: Duration) -> Result<u64, SimFailure> {
        self.net.heal();
        self.net.set_profile(FaultProfile::CALM);
        let down: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.running.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in down {
            self.start_node(id).await?;
        }
        let deadline = tokio::time::Instant::now() + patience;
        let barrier = self.group.write(u64::MAX, 0);
        let index = loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(SimFailure::NoProgress(format!(
                    "no write committed after healing; {}",
                    self.states()
                )));
            }
            if let Some(index) = self.try_write(&barrier).await {
                break index;
            }
            tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS)).await;
        };
        for raft in self.live_rafts() {
            let mut metrics = raft.metrics();
            let caught_up = tokio::time::timeout_at(
                deadline,
                metrics.wait_for(|m| m.last_applied.is_some_and(|l| l.index >= index)),
            )
            .await;
            if !matches!(caught_up, Ok(Ok(_))) {
                return Err(SimFailure::NoProgress(format!(
                    "not every node applied index {index} after healing; {}",
                    self.states()
                )));
            }
        }
        Ok(index)
    }

    /// Each live node's Raft state, for a failure message.
    fn states(&self) -> String {
        let states: Vec<String> = self
            .live_rafts()
            .iter()
            .map(|raft| {
                let m = raft.metrics().borrow().clone();
                format!(
                    "node {} {:?} vote {} last log {:?} applied {:?} leader {:?}",
                    m.id, m.state, m.vote, m.last_log_index, m.last_applied, m.current_leader
                )
            })
            .collect();
        states.join("; ")
    }

    /// Writes `data` through whichever node believes it leads; the index it was acknowledged at.
    async fn try_write(&self, data: &BatchData) -> Option<u64> {
        for raft in self.live_rafts() {
            if raft.metrics().borrow().state != ServerState::Leader {
                continue;
            }
            let written = tokio::time::timeout(
                Duration::from_millis(20 * HEARTBEAT_MS),
                raft.client_write(data.clone()),
            )
            .await;
            if let Ok(Ok(resp)) = written {
                self.observer.acked(resp.log_id, data.0.clone());
                return Some(resp.log_id.index);
            }
        }
        None
    }

    /// The end-of-run checks, after [`SimCluster::heal_and_converge`] reached `index`: every node
    /// applied the same entries up to it, every acknowledged write is among them at its index,
    /// the state machines agree, and no openraft stopped on a fatal error.
    pub fn check_converged(&self, index: u64) {
        let obs = &self.observer;
        let mut reference: Option<(NodeId, Vec<_>, Vec<u8>)> = None;
        for (id, node) in &self.nodes {
            let Some(running) = &node.running else {
                obs.violation(format!("node {id} is not running at the end"));
                continue;
            };
            if let Err(fatal) = &running.raft.metrics().borrow().running_state {
                obs.violation(format!("node {id} stopped: {fatal}"));
            }
            let applied: Vec<_> = obs
                .applied_by(*id)
                .into_iter()
                .take_while(|(log_id, _)| log_id.index <= index)
                .collect();
            for (at, acked) in obs.acked_writes() {
                let found = applied.iter().find(|(log_id, _)| log_id.index == at);
                if found != Some(&acked) {
                    obs.violation(format!(
                        "node {id}: acknowledged write {} was applied as {}",
                        describe(&acked),
                        found.map_or("nothing".to_string(), describe)
                    ));
                }
            }
            let digest = (running.digest)();
            match &reference {
                None => reference = Some((*id, applied, digest)),
                Some((first, entries, state)) => {
                    if *entries != applied {
                        obs.violation(format!("nodes {first} and {id} applied different logs"));
                    }
                    if *state != digest {
                        obs.violation(format!("nodes {first} and {id} hold different states"));
                    }
                }
            }
        }
    }

    /// Stops every node.
    pub async fn shutdown(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(running) = node.running.take() {
                running.watcher.abort();
                let _ = running.raft.shutdown().await;
            }
        }
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A seeded permutation of the nodes: node -> rank `0..node_count`.
fn election_ranks(seed: u64, node_count: u64) -> BTreeMap<NodeId, u64> {
    let mut rng = SimRng::keyed(seed, &[u64::from(b'R')]);
    let mut keyed: Vec<(u64, NodeId)> = (1..=node_count).map(|id| (rng.next_u64(), id)).collect();
    keyed.sort_unstable();
    keyed
        .into_iter()
        .enumerate()
        .map(|(rank, (_, id))| (id, u64::try_from(rank).unwrap_or(0)))
        .collect()
}

/// Reports every leadership a node's metrics show to the observer.
async fn watch_leaders<C: CairnRaftConfig>(raft: Raft<C>, id: NodeId, observer: Observer) {
    let mut metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow_and_update();
            if m.state == ServerState::Leader {
                observer.leader(m.current_term, id);
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
