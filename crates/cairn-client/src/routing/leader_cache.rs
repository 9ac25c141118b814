//! [`LeaderCache`]: what the client believes about where partitions live: each known topic's
//! partitions and the address of each one's leader, the cluster's nodes, and when metadata was
//! last read. Filled from `GetMetadata` answers, corrected by `NOT_LEADER` hints and by
//! unreachable leaders.
//!
//! Pure state: no I/O and no clock (callers pass `now`), so every rule has a unit test. The one
//! invariant: an entry never names a leader that an error has since contradicted; a
//! contradicted entry is stale until metadata or a hint replaces it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::v1::MetadataResponse;

/// How long a topic's metadata is trusted before it is read again (Kafka's
/// `metadata.max.age.ms`), so partitions added to a topic and quiet leader moves are seen.
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

/// Where one partition's requests go, as far as the cache knows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// The leader's address.
    Leader(Arc<str>),
    /// The metadata said no node leads it (an election is under way).
    NoLeader,
    /// An error contradicted what the cache had: ask again.
    Stale,
}

/// One topic's partitions, by partition number.
#[derive(Debug)]
struct TopicEntry {
    read_at: Instant,
    partitions: Vec<Slot>,
}

/// The answer of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Send to this address.
    Leader(Arc<str>),
    /// The cache cannot say: the topic is unknown or too old, the partition has no leader, or
    /// an error made the entry stale. Metadata must be read again.
    Refresh,
    /// The metadata, read recently, does not have this topic or partition: the node that
    /// gets the request will answer with the authentic error.
    Unknown,
}

/// The client's view of partition leadership.
#[derive(Debug, Default)]
pub(crate) struct LeaderCache {
    /// Node id to the address this client reaches it at.
    nodes: BTreeMap<i32, Arc<str>>,
    /// A node's advertised address to the address this client reaches it at, where they
    /// differ, so a hint naming the advertised one uses the channel already open.
    aliases: HashMap<String, Arc<str>>,
    topics: HashMap<String, TopicEntry>,
    /// Topics asked about that the last metadata read did not have, and when.
    missing: HashMap<String, Instant>,
    last_read: Option<Instant>,
}

impl LeaderCache {
    /// Takes in a `GetMetadata` answer read at `now` through `answered_via` (the address the
    /// call went to), for the topics `asked`. The answering node is reached at `answered_via`
    /// whatever address it advertises, so a single node bound to `0.0.0.0` or reached by
    /// another name keeps the one channel the client already has.
    pub(crate) fn apply(
        &mut self,
        response: &MetadataResponse,
        answered_via: &str,
        asked: &[String],
        now: Instant,
    ) {
        self.last_read = Some(now);
        self.nodes.clear();
        self.aliases.clear();
        for node in &response.nodes {
            if !node.address.is_empty() {
                self.nodes
                    .insert(node.node_id, Arc::from(node.address.as_str()));
            }
        }
        let via: Arc<str> = Arc::from(answered_via);
        if let Some(advertised) = self.nodes.insert(response.node_id, Arc::clone(&via))
            && *advertised != *via
        {
            self.aliases.insert(advertised.to_string(), via);
        }
        for topic in &response.topics {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    self.nodes
                        .get(&p.leader_id)
                        .map_or(Slot::NoLeader, |address| Slot::Leader(Arc::clone(address)))
                })
                .collect();
            self.missing.remove(&topic.name);
            self.topics.insert(
                topic.name.clone(),
                TopicEntry {
                    read_at: now,
                    partitions,
                },
            );
        }
        for name in asked {
            if !response.topics.iter().any(|t| &t.name == name) {
                self.topics.remove(name);
                self.missing.insert(name.clone(), now);
            }
        }
    }

    /// Where requests for `topic`/`partition` go now. A topic that was missing from a read
    /// less than `retry_after` ago is `Unknown` rather than read again at once.
    pub(crate) fn lookup(
        &self,
        topic: &str,
        partition: i32,
        now: Instant,
        retry_after: Duration,
    ) -> Lookup {
        let Some(entry) = self.topics.get(topic) else {
            return match self.missing.get(topic) {
                Some(&at) if now.saturating_duration_since(at) < retry_after => Lookup::Unknown,
                _ => Lookup::Refresh,
            };
        };
        if now.saturating_duration_since(entry.read_at) >= METADATA_MAX_AGE {
            return Lookup::Refresh;
        }
        let slot = usize::try_from(partition)
            .ok()
            .and_then(|p| entry.partitions.get(p));
        match slot {
            Some(Slot::Leader(address)) => Lookup::Leader(Arc::clone(address)),
            Some(Slot::NoLeader | Slot::Stale) => Lookup::Refresh,
            None => Lookup::Unknown,
        }
    }

    /// How many partitions `topic` has, if its metadata was read less than `max_age` ago.
    pub(crate) fn partition_count(
        &self,
        topic: &str,
        now: Instant,
        max_age: Duration,
    ) -> Option<usize> {
        self.topics
            .get(topic)
            .filter(|entry| now.saturating_duration_since(entry.read_at) < max_age)
            .map(|entry| entry.partitions.len())
    }

    /// A node said it does not lead `topic`/`partition`; `hint` is the leader's address when
    /// it named one. With a hint the next request goes straight there; without, the entry is
    /// stale. A hint naming a node's advertised address maps to the address this client
    /// reaches that node at.
    pub(crate) fn on_not_leader(&mut self, topic: &str, partition: i32, hint: Option<&str>) {
        let known = hint.map(|hint| self.reach(hint));
        if let Some(slot) = self.slot_mut(topic, partition) {
            *slot = known.map_or(Slot::Stale, Slot::Leader);
        }
    }

    /// A request to `address` failed in transport (refused, reset, timed out): every partition
    /// the cache says it leads is stale, so the next request asks the metadata again.
    pub(crate) fn on_unreachable(&mut self, address: &str) {
        for entry in self.topics.values_mut() {
            for slot in &mut entry.partitions {
                if matches!(slot, Slot::Leader(leader) if &**leader == address) {
                    *slot = Slot::Stale;
                }
            }
        }
    }

    /// How long to wait before the next metadata read, so that errors that keep saying the
    /// cache is stale read it at most once per `min_interval`.
    pub(crate) fn refresh_wait(&self, now: Instant, min_interval: Duration) -> Duration {
        self.last_read.map_or(Duration::ZERO, |at| {
            min_interval.saturating_sub(now.saturating_duration_since(at))
        })
    }

    /// The topics a metadata read should ask for: every topic cached, plus `topic`.
    pub(crate) fn topics_to_ask(&self, topic: &str) -> Vec<String> {
        let mut topics: Vec<String> = self.topics.keys().cloned().collect();
        if !self.topics.contains_key(topic) {
            topics.push(topic.to_string());
        }
        topics.sort();
        topics
    }

    /// Every node's address, in node id order.
    pub(crate) fn node_addresses(&self) -> Vec<Arc<str>> {
        self.nodes.values().cloned().collect()
    }

    /// The address this client reaches node `node_id` at, if the last metadata read listed it.
    pub(crate) fn node_address(&self, node_id: i32) -> Option<Arc<str>> {
        self.nodes.get(&node_id).cloned()
    }

    /// True once a metadata read listed the cluster's nodes.
    pub(crate) fn knows_nodes(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// The topics a metadata read that is only after the nodes should ask for: every topic
    /// cached (so the read refreshes them too), or `fallback` when none is, because an empty
    /// list would ask for every topic of the cluster.
    pub(crate) fn topics_cached_or(&self, fallback: &str) -> Vec<String> {
        let mut topics: Vec<String> = self.topics.keys().cloned().collect();
        if topics.is_empty() {
            topics.push(fallback.to_string());
        }
        topics.sort();
        topics
    }

    /// True when the metadata lists more than one node: a transport failure of one is then a
    /// reason to look for the partition elsewhere rather than to fail the call.
    pub(crate) fn is_cluster(&self) -> bool {
        self.nodes.len() > 1
    }

    /// The address this client reaches the node advertised at `address` by: the address it
    /// dialled for the node that answered the metadata, else `address` itself.
    pub(crate) fn reach(&self, address: &str) -> Arc<str> {
        if let Some(alias) = self.aliases.get(address) {
            return Arc::clone(alias);
        }
        self.nodes
            .values()
            .find(|known| &***known == address)
            .cloned()
            .unwrap_or_else(|| Arc::from(address))
    }

    fn slot_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Slot> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get_mut(topic)?.partitions.get_mut(index)
    }
}

#[cfg(test)]
mod tests;
