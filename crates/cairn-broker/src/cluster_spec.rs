//! [`ClusterSpec`]: the static shape of the cluster a node starts in, as the operator wrote it
//! (`--node-id`, `--peers`, the Raft timings, the default replication factor), checked once so
//! the rest of the node can trust it. It is pure: text in, a checked value or a typed
//! [`ClusterSpecError`] out; nothing is resolved, bound or opened here. It does not form the
//! cluster, elect anyone or hold metadata: that is the controller's, which starts from it.
//!
//! The invariant: a `ClusterSpec` with peers lists its own node, every id is in
//! `1..=`[`MAX_NODE_ID`], no two nodes share an id or an address, the election timeout range is
//! non-empty and above the heartbeat, and the default replication factor fits the node count.
//! With no peers the node is a cluster of one, which behaves exactly as a single broker did
//! before clustering.

mod leader_balance;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub use leader_balance::{
    DEFAULT_LEADER_BALANCE_INTERVAL_MS, DEFAULT_MOVES_PER_PASS, LeaderBalanceSettings,
    MAX_LEADER_BALANCE_INTERVAL_MS, SETTLE_INTERVALS,
};

/// `segment.bytes` of the cluster's `__consumer_offsets`: Kafka's `offsets.topic.segment.bytes`
/// default, 100 MiB.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u32 = 100 << 20;
/// Largest node id: the API carries node ids as `int32`, so a larger one could not be named
/// in a metadata answer.
pub const MAX_NODE_ID: u64 = i32::MAX as u64;
/// The node id of a cluster of one when none is given.
pub const DEFAULT_NODE_ID: u64 = 1;
/// Most nodes in a peer list. Each peer is a connection and a heartbeat stream per Raft group
/// shared with it; past a few dozen, a static list is the wrong tool anyway.
pub const MAX_PEERS: usize = 64;

/// Default lower end of the randomized Raft election timeout. A follower that hears nothing from
/// its leader for this long stands for election, so failover takes about this plus one vote
/// round: a second or two, the "few seconds" users accept. Much lower and a 2-core machine busy
/// with fsyncs (or a GC-like pause of a neighbour) would trigger needless elections.
pub const DEFAULT_ELECTION_TIMEOUT_MIN_MS: u64 = 1000;
/// Default upper end of the election timeout. The spread between the ends (a full second) makes
/// two followers unlikely to stand at once, so split votes are rare.
pub const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 2000;
/// Default interval between a leader's heartbeats. A quarter of the shortest election timeout
/// leaves room for three lost heartbeats before a follower gives up on its leader, while a
/// 2-core node holding 1,000 Raft groups sends 4 heartbeats a second per group rather than the
/// 20 of openraft's 50 ms default, which would spend its CPU on heartbeats.
pub const DEFAULT_HEARTBEAT_MS: u64 = 250;
/// Longest election timeout accepted: ten minutes. Past it a leader's death goes unnoticed for
/// so long that the setting is surely a typo (an extra three zeros).
pub const MAX_ELECTION_TIMEOUT_MS: u64 = 600_000;
/// Replication factor a topic gets by default, at most: three copies survive the loss of one
/// node while another is down for maintenance (Kafka's recommended setting). A smaller cluster
/// gets one copy per node.
pub const DEFAULT_REPLICATION_FACTOR_CAP: u32 = 3;

/// Why cluster settings were refused. Each displays as one line naming the bad part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterSpecError {
    /// A peer list entry is not `ID=HOST:PORT`.
    #[error("peer entry {entry:?}: {reason}; expected ID=HOST:PORT, such as 1=10.0.0.1:7070")]
    MalformedPeer {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A node id that is not a whole number from 1 to [`MAX_NODE_ID`].
    #[error("node id {text:?} is not a whole number from 1 to {MAX_NODE_ID}")]
    InvalidNodeId {
        /// The id as given.
        text: String,
    },
    /// The peer list is empty although it was given.
    #[error(
        "the peer list is empty; give ID=HOST:PORT entries, or leave it out for a cluster of one"
    )]
    EmptyPeers,
    /// More peers than [`MAX_PEERS`].
    #[error("the peer list has {count} nodes, more than the limit of {MAX_PEERS}")]
    TooManyPeers {
        /// How many were given.
        count: usize,
    },
    /// Two entries share a node id.
    #[error("node id {node_id} appears twice in the peer list ({first} and {second})")]
    DuplicateNodeId {
        /// The id.
        node_id: u64,
        /// The first entry's address.
        first: String,
        /// The second entry's address.
        second: String,
    },
    /// Two entries share an address.
    #[error("address {address} appears twice in the peer list (nodes {first} and {second})")]
    DuplicateAddress {
        /// The address, as the second entry wrote it.
        address: String,
        /// The first node with it.
        first: u64,
        /// The second node with it.
        second: u64,
    },
    /// The node's own id is not in the peer list.
    #[error("this node's id {node_id} is not in the peer list (its ids: {ids})")]
    NotInPeers {
        /// The node's id.
        node_id: u64,
        /// The ids the list holds, comma-separated.
        ids: String,
    },
    /// A peer list of several nodes was given without saying which one this node is.
    #[error(
        "a peer list of {node_count} nodes needs this node's id: give --node-id (or CAIRN_NODE_ID, or node_id in the config file)"
    )]
    NodeIdRequired {
        /// Nodes in the list.
        node_count: usize,
    },
    /// An election timeout range that is not `MIN..MAX` with `1 <= MIN < MAX <=`
    /// [`MAX_ELECTION_TIMEOUT_MS`].
    #[error("election timeout {text:?}: {reason}")]
    InvalidElectionTimeout {
        /// The range as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A heartbeat interval that is not a whole number of milliseconds below the election
    /// timeout's lower end.
    #[error("heartbeat interval {text:?}: {reason}")]
    InvalidHeartbeat {
        /// The interval as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A leader balance interval that is not a whole number of milliseconds from 0 (off) to
    /// [`MAX_LEADER_BALANCE_INTERVAL_MS`].
    #[error(
        "leader balance interval {text:?} must be a whole number of milliseconds from 0 (off) to {MAX_LEADER_BALANCE_INTERVAL_MS}"
    )]
    InvalidLeaderBalanceInterval {
        /// The value as given.
        text: String,
    },
    /// A default replication factor outside `1..=` the node count.
    #[error(
        "default replication factor {text:?} must be a whole number from 1 to the node count ({node_count})"
    )]
    InvalidDefaultReplicationFactor {
        /// The value as given.
        text: String,
        /// Nodes in the cluster.
        node_count: usize,
    },
    /// A topic's replication factor is below 1 or above the node count (Kafka's
    /// `INVALID_REPLICATION_FACTOR`).
    #[error(
        "invalid replication factor {requested}: the cluster has {node_count} node{} \
         (a replication factor must be from 1 to {node_count})",
        if *node_count == 1 { "" } else { "s" }
    )]
    InvalidReplicationFactor {
        /// The factor asked for.
        requested: i64,
        /// Nodes in the cluster.
        node_count: usize,
    },
    /// The node's own peer-list address cannot be the address it listens on.
    #[error(
        "this node's peer address {own_address} (node {node_id}) does not match the gRPC listen address {listen}: {reason}"
    )]
    ListenMismatch {
        /// The node's id.
        node_id: u64,
        /// Its address in the peer list.
        own_address: String,
        /// The gRPC listen address.
        listen: SocketAddr,
        /// How they disagree.
        reason: &'static str,
    },
}

/// The Raft timings every Raft group of the node uses: the randomized election timeout range and
/// the leader's heartbeat interval (see the `DEFAULT_*` constants for the reasons behind the
/// defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTimings {
    election_timeout_min_ms: u64,
    election_timeout_max_ms: u64,
    heartbeat_ms: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        RaftTimings {
            election_timeout_min_ms: DEFAULT_ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: DEFAULT_ELECTION_TIMEOUT_MAX_MS,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
        }
    }
}

impl RaftTimings {
    /// Timings from their text: the election timeout as `MIN..MAX` milliseconds and the
    /// heartbeat as milliseconds; `None` takes the default of that part.
    ///
    /// # Errors
    /// [`ClusterSpecError::InvalidElectionTimeout`] unless `1 <= MIN < MAX <=`
    /// [`MAX_ELECTION_TIMEOUT_MS`]; [`ClusterSpecError::InvalidHeartbeat`] unless the heartbeat
    /// is at least 1 and below `MIN` (openraft, and Raft itself, need a leader to speak more
    /// often than followers give up on it).
    pub fn parse(
        election_timeout: Option<&str>,
        heartbeat: Option<&str>,
    ) -> Result<RaftTimings, ClusterSpecError> {
        let defaults = RaftTimings::default();
        let (election_timeout_min_ms, election_timeout_max_ms) = match election_timeout {
            Some(text) => parse_election_timeout(text)?,
            None => (
                defaults.election_timeout_min_ms,
                defaults.election_timeout_max_ms,
            ),
        };
        let heartbeat_ms = match heartbeat {
            None => defaults.heartbeat_ms,
            Some(text) => {
                let bad = |reason: String| ClusterSpecError::InvalidHeartbeat {
                    text: text.to_string(),
                    reason,
                };
                let ms = text
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms >= 1)
                    .ok_or_else(|| bad("expected a whole number of milliseconds from 1".into()))?;
                if ms >= election_timeout_min_ms {
                    return Err(bad(format!(
                        "it must be below the election timeout's lower end \
                         ({election_timeout_min_ms} ms), or followers would give up on a live \
                         leader"
                    )));
                }
                ms
            }
        };
        if heartbeat_ms >= election_timeout_min_ms {
            // Only reachable with the default heartbeat under a short election timeout.
            return Err(ClusterSpecError::InvalidElectionTimeout {
                text: election_timeout.unwrap_or_default().to_string(),
                reason: format!(
                    "its lower end must be above the heartbeat interval ({heartbeat_ms} ms)"
                ),
            });
        }
        Ok(RaftTimings {
            election_timeout_min_ms,
            election_timeout_max_ms,
            heartbeat_ms,
        })
    }

    /// Lower end of the randomized election timeout, in milliseconds.
    pub fn election_timeout_min_ms(&self) -> u64 {
        self.election_timeout_min_ms
    }

    /// Upper end of the randomized election timeout, in milliseconds (above the lower end).
    pub fn election_timeout_max_ms(&self) -> u64 {
        self.election_timeout_max_ms
    }

    /// Interval between a leader's heartbeats, in milliseconds (below the election timeout).
    pub fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms
    }
}

impl fmt::Display for RaftTimings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "election timeout {}..{} ms, heartbeat {} ms",
            self.election_timeout_min_ms, self.election_timeout_max_ms, self.heartbeat_ms
        )
    }
}

fn parse_election_timeout(text: &str) -> Result<(u64, u64), ClusterSpecError> {
    let bad = |reason: &str| ClusterSpecError::InvalidElectionTimeout {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let (min, max) = text
        .trim()
        .split_once("..")
        .ok_or_else(|| bad("expected MIN..MAX milliseconds, such as 1000..2000"))?;
    let number = |part: &str| part.trim().parse::<u64>().ok();
    let (Some(min), Some(max)) = (number(min), number(max)) else {
        return Err(bad(
            "expected MIN..MAX whole milliseconds, such as 1000..2000",
        ));
    };
    if min == 0 {
        return Err(bad("the lower end must be at least 1 ms"));
    }
    if min >= max {
        return Err(bad(
            "the lower end must be below the upper end, so that followers time out at different moments",
        ));
    }
    if max > MAX_ELECTION_TIMEOUT_MS {
        return Err(bad("the upper end must be at most 600000 ms (10 minutes)"));
    }
    Ok((min, max))
}

/// The cluster this node starts in: its own id, every node's gRPC address (none for a cluster
/// of one), the Raft timings and the default replication factor. See the module doc for what
/// holds of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    node_id: u64,
    peers: BTreeMap<u64, String>,
    timings: RaftTimings,
    default_replication_factor: u32,
    retention_purge_interval: std::time::Duration,
    /// `segment.bytes` of the `__consumer_offsets` the cluster creates.
    offsets_segment_bytes: u32,
    leader_balance: LeaderBalanceSettings,
    /// The node joins a cluster that runs already (`--join`) instead of forming one.
    joins_existing: bool,
}

impl Default for ClusterSpec {
    /// A cluster of one, node [`DEFAULT_NODE_ID`], default timings: a single broker as before.
    fn default() -> Self {
        ClusterSpec {
            node_id: DEFAULT_NODE_ID,
            peers: BTreeMap::new(),
            timings: RaftTimings::default(),
            leader_balance: LeaderBalanceSettings::default(),
            default_replication_factor: 1,
            retention_purge_interval: cairn_log::RETENTION_CHECK_INTERVAL,
            offsets_segment_bytes: OFFSETS_TOPIC_SEGMENT_BYTES,
            joins_existing: false,
        }
    }
}

impl ClusterSpec {
    /// A cluster of one with this node id and default timings.
    ///
    /// # Errors
    /// [`ClusterSpecError::InvalidNodeId`] for 0 or an id above [`MAX_NODE_ID`].
    pub fn single_node(node_id: u64) -> Result<ClusterSpec, ClusterSpecError> {
        check_node_id(node_id)?;
        Ok(ClusterSpec {
            node_id,
            ..ClusterSpec::default()
        })
    }

    /// Checks and assembles a spec. `node_id` `None` means none was given: a cluster of one (or
    /// a peer list of one entry) takes [`DEFAULT_NODE_ID`] (or that entry's id), a longer list
    /// refuses. `peers` empty means a cluster of one. `default_replication_factor` is text as
    /// given; `None` means `min(3, node count)`.
    ///
    /// # Errors
    /// [`ClusterSpecError::InvalidNodeId`], [`ClusterSpecError::NodeIdRequired`],
    /// [`ClusterSpecError::NotInPeers`], [`ClusterSpecError::InvalidDefaultReplicationFactor`].
    pub fn new(
        node_id: Option<u64>,
        peers: BTreeMap<u64, String>,
        timings: RaftTimings,
        default_replication_factor: Option<&str>,
    ) -> Result<ClusterSpec, ClusterSpecError> {
        let node_id = match (node_id, peers.len()) {
            (Some(id), _) => id,
            (None, 0) => DEFAULT_NODE_ID,
            (None, 1) => peers.keys().copied().next().unwrap_or(DEFAULT_NODE_ID),
            (None, node_count) => return Err(ClusterSpecError::NodeIdRequired { node_count }),
        };
        check_node_id(node_id)?;
        if !peers.is_empty() && !peers.contains_key(&node_id) {
            let ids = peers.keys().map(u64::to_string).collect::<Vec<_>>();
            return Err(ClusterSpecError::NotInPeers {
                node_id,
                ids: ids.join(", "),
            });
        }
        let node_count = peers.len().max(1);
        let default_replication_factor = match default_replication_factor {
            None => DEFAULT_REPLICATION_FACTOR_CAP.min(node_count as u32),
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|factor| (1..=node_count).contains(&(*factor as usize)))
                .ok_or_else(|| ClusterSpecError::InvalidDefaultReplicationFactor {
                    text: text.to_string(),
                    node_count,
                })?,
        };
        Ok(ClusterSpec {
            node_id,
            peers,
            leader_balance: LeaderBalanceSettings::default(),
            timings,
            default_replication_factor,
            retention_purge_interval: cairn_log::RETENTION_CHECK_INTERVAL,
            offsets_segment_bytes: OFFSETS_TOPIC_SEGMENT_BYTES,
            joins_existing: false,
        })
    }

    /// This node's id, in `1..=`[`MAX_NODE_ID`] (the same numbers as `cairn_raft::NodeId`).
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// This node's id as the API's `int32` fields carry it.
    pub fn wire_node_id(&self) -> i32 {
        i32::try_from(self.node_id).expect("node ids are checked to be at most i32::MAX")
    }

    /// Every node's gRPC address by id, this node's included; empty for a cluster of one that
    /// was given no list.
    pub fn peers(&self) -> &BTreeMap<u64, String> {
        &self.peers
    }

    /// This node's address in the peer list, if there is one.
    pub fn own_address(&self) -> Option<&str> {
        self.peers.get(&self.node_id).map(String::as_str)
    }

    /// How many nodes the cluster has: at least 1.
    pub fn node_count(&self) -> usize {
        self.peers.len().max(1)
    }

    /// True for a cluster of one, which needs no consensus and behaves as a lone broker.
    pub fn is_single_node(&self) -> bool {
        self.node_count() == 1
    }

    /// The Raft timings.
    pub fn timings(&self) -> RaftTimings {
        self.timings
    }

    /// How often retention runs (Kafka's `log.retention.check.interval.ms`;
    /// [`cairn_log::RETENTION_CHECK_INTERVAL`], 5 minutes, by default): a single copy's writer
    /// deletes what retention wants gone, and each replicated partition asks whether retention
    /// wants segments that Raft still holds, then snapshots and purges so that it can have them.
    pub fn retention_purge_interval(&self) -> std::time::Duration {
        self.retention_purge_interval
    }

    /// `segment.bytes` of the cluster's `__consumer_offsets` (Kafka's
    /// `offsets.topic.segment.bytes`): whole segments of superseded commits are what a replica
    /// deletes (`group::offsets_gc`), so they are kept far smaller than a data topic's.
    pub fn offsets_segment_bytes(&self) -> u32 {
        self.offsets_segment_bytes
    }

    /// This spec with another [`ClusterSpec::offsets_segment_bytes`] (tests shorten it; taken
    /// only by the node whose proposal creates the topic).
    pub fn with_offsets_segment_bytes(mut self, bytes: u32) -> ClusterSpec {
        self.offsets_segment_bytes = bytes;
        self
    }

    /// The writer settings of this node's single-copy partitions (see
    /// [`ClusterSpec::retention_purge_interval`]).
    pub(crate) fn local_writer_options(&self) -> cairn_log::WriterOptions {
        cairn_log::WriterOptions {
            retention_check_interval: self.retention_purge_interval,
        }
    }

    /// Whether the node joins a cluster that runs already (`serve --join`): it neither forms
    /// the controller group nor proposes its bootstrap, and waits for a member's
    /// `cairn cluster add-node` to bring it in. A node that was brought in once is a member
    /// from then on; the flag changes nothing at its later starts.
    pub fn joins_existing_cluster(&self) -> bool {
        self.joins_existing
    }

    /// This spec with [`ClusterSpec::joins_existing_cluster`] set.
    pub fn with_join(mut self, joins_existing: bool) -> ClusterSpec {
        self.joins_existing = joins_existing;
        self
    }

    /// This spec with another [`ClusterSpec::retention_purge_interval`] (`serve
    /// --log-retention-check-interval-ms`; tests shorten it).
    pub fn with_retention_purge_interval(mut self, every: std::time::Duration) -> ClusterSpec {
        self.retention_purge_interval = every;
        self
    }

    /// How this node moves its leaderships back to their preferred replicas
    /// (`cluster::leader_balance`).
    pub fn leader_balance(&self) -> LeaderBalanceSettings {
        self.leader_balance
    }

    /// This spec with other [`ClusterSpec::leader_balance`] settings.
    pub fn with_leader_balance(mut self, settings: LeaderBalanceSettings) -> ClusterSpec {
        self.leader_balance = settings;
        self
    }

    /// Replicas a topic gets when its create names none: by default `min(3, node count)`.
    pub fn default_replication_factor(&self) -> u32 {
        self.default_replication_factor
    }

    /// The replication factor a topic create asking for `requested` gets: `0` (proto3's
    /// "unset") means the default, anything else must be from 1 to the node count.
    ///
    /// # Errors
    /// [`ClusterSpecError::InvalidReplicationFactor`] naming `requested` and the node count.
    pub fn replication_factor(&self, requested: i64) -> Result<u32, ClusterSpecError> {
        if requested == 0 {
            return Ok(self.default_replication_factor);
        }
        let node_count = self.node_count();
        u32::try_from(requested)
            .ok()
            .filter(|factor| (1..=node_count).contains(&(*factor as usize)))
            .ok_or(ClusterSpecError::InvalidReplicationFactor {
                requested,
                node_count,
            })
    }

    /// The address to listen on when none was given: this node's peer address, if it is an
    /// `IP:PORT` (a host name is not resolved here, so it gives none).
    pub fn own_socket_addr(&self) -> Option<SocketAddr> {
        self.own_address()?.parse().ok()
    }

    /// Checks that this node can be reached at its peer address while listening on `listen`.
    /// They must share the port; when the peer address is an IP literal and `listen` is not a
    /// wildcard address (`0.0.0.0`, `::`), the IPs must match too. A host name is not resolved,
    /// so it passes on its port alone. With no peer list there is nothing to check.
    ///
    /// Refusing rather than warning: peers dial the listed address, so a node listening
    /// elsewhere would sit outside its own cluster, and every election would wait on it.
    ///
    /// # Errors
    /// [`ClusterSpecError::ListenMismatch`] naming both addresses.
    pub fn check_listen_address(&self, listen: SocketAddr) -> Result<(), ClusterSpecError> {
        let Some(own) = self.own_address() else {
            return Ok(());
        };
        let mismatch = |reason| ClusterSpecError::ListenMismatch {
            node_id: self.node_id,
            own_address: own.to_string(),
            listen,
            reason,
        };
        if listen.port() == 0 {
            return Err(mismatch(
                "port 0 picks a random port, which peers cannot know; listen on the listed port",
            ));
        }
        let Some((host, port)) = own.rsplit_once(':') else {
            return Err(mismatch("the peer address has no port"));
        };
        if port.parse::<u16>().ok() != Some(listen.port()) {
            return Err(mismatch("the ports differ"));
        }
        let host_ip = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>();
        if let Ok(ip) = host_ip
            && !listen.ip().is_unspecified()
            && ip != listen.ip()
        {
            return Err(mismatch("the IP addresses differ"));
        }
        Ok(())
    }
}

/// Parses a node id: a whole number from 1 to [`MAX_NODE_ID`]. Zero is refused because the
/// API's proto3 fields cannot tell a node 0 from "no node".
///
/// # Errors
/// [`ClusterSpecError::InvalidNodeId`] naming the text.
pub fn parse_node_id(text: &str) -> Result<u64, ClusterSpecError> {
    text.parse::<u64>()
        .ok()
        .filter(|id| (1..=MAX_NODE_ID).contains(id))
        .ok_or_else(|| ClusterSpecError::InvalidNodeId {
            text: text.to_string(),
        })
}

fn check_node_id(node_id: u64) -> Result<(), ClusterSpecError> {
    parse_node_id(&node_id.to_string()).map(|_| ())
}

/// Parses a peer list, `ID=HOST:PORT[,ID=HOST:PORT...]` (spaces around entries allowed, empty
/// entries skipped), into addresses by node id.
///
/// # Errors
/// [`ClusterSpecError::MalformedPeer`], [`ClusterSpecError::InvalidNodeId`],
/// [`ClusterSpecError::EmptyPeers`], [`ClusterSpecError::TooManyPeers`],
/// [`ClusterSpecError::DuplicateNodeId`] or [`ClusterSpecError::DuplicateAddress`], for the
/// first problem found.
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, ClusterSpecError> {
    let mut entries = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, address)) = entry.split_once('=') else {
            return Err(ClusterSpecError::MalformedPeer {
                entry: entry.to_string(),
                reason: "no '='".to_string(),
            });
        };
        entries.push((id.trim().to_string(), address.trim().to_string()));
    }
    peers_from_entries(entries)
}

/// Builds a peer list from `(id text, address)` pairs, as a config file's table gives them,
/// with every check of [`parse_peers`].
///
/// # Errors
/// As [`parse_peers`].
pub fn peers_from_entries(
    entries: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<u64, String>, ClusterSpecError> {
    let mut peers = BTreeMap::new();
    // Addresses compare without case: host names are case-insensitive.
    let mut addresses: BTreeMap<String, u64> = BTreeMap::new();
    for (id_text, address) in entries {
        let node_id = parse_node_id(&id_text)?;
        if let Some(reason) = host_port_problem(&address) {
            return Err(ClusterSpecError::MalformedPeer {
                entry: format!("{id_text}={address}"),
                reason: reason.to_string(),
            });
        }
        if let Some(first) = peers.get(&node_id) {
            return Err(ClusterSpecError::DuplicateNodeId {
                node_id,
                first: String::clone(first),
                second: address,
            });
        }
        if let Some(first) = addresses.insert(address.to_ascii_lowercase(), node_id) {
            return Err(ClusterSpecError::DuplicateAddress {
                address,
                first,
                second: node_id,
            });
        }
        peers.insert(node_id, address);
        if peers.len() > MAX_PEERS {
            return Err(ClusterSpecError::TooManyPeers { count: peers.len() });
        }
    }
    if peers.is_empty() {
        return Err(ClusterSpecError::EmptyPeers);
    }
    Ok(peers)
}

/// What is wrong with `text` as an address another machine dials, `HOST:PORT`: a DNS name or
/// IPv4 address, or an IPv6 address in brackets, and a port from 1. `None` when it is fine. It is
/// not resolved: the name is for the machines that dial it, and need not resolve here.
pub fn host_port_problem(text: &str) -> Option<&'static str> {
    if text.contains("://") {
        return Some("a URL scheme is not allowed");
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Some("no port");
    };
    if !port.parse::<u16>().is_ok_and(|port| port != 0) {
        return Some("the port must be from 1 to 65535");
    }
    if let Some(inner) = host.strip_prefix('[') {
        let is_ipv6 = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
        return (!is_ipv6).then_some("a bracketed host must be an IPv6 address");
    }
    if host.is_empty() {
        return Some("no host");
    }
    if host.contains(':') {
        return Some("an IPv6 host must be in brackets");
    }
    let host_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    (!host.chars().all(host_chars)).then_some("the host may hold only letters, digits, - . and _")
}

#[cfg(test)]
mod tests;
