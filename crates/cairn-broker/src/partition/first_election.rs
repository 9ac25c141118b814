//! A new partition's first leader is its preferred replica (the first of its replicas), as
//! Kafka's controller makes it when it creates a partition.
//!
//! Without this, every replica that initializes a new group stands at once (openraft's
//! `initialize` calls an election), so the replicas of a new partition split their votes in the
//! first term and the group waits out a random election timeout (1 to 2 s by default) for the
//! next try: the partition takes no writes for that long after the topic is created (1.62 s
//! measured), and the winner is whichever replica's timer fired first. Two in three of those
//! winners are not the preferred replica, so the automatic leader balancing moves them a few
//! seconds later, and each move is a pause for the producers writing to that partition.
//!
//! So only the preferred replica initializes the group at once, and it calls an election again
//! while no leader shows. The other replicas create their copies uninitialized: a copy that has
//! neither voted nor logged anything grants the preferred replica its vote, and the leader's
//! first append gives it the membership. (Initialized on every replica, a copy created a moment
//! before another replica's own first vote request reached it could grant that one instead:
//! that replica won, and its leader lease then kept the preferred replica's election out. The
//! end-to-end test of this behaviour failed about one run in two that way.) A replica that no
//! election has reached when the shortest election timeout has passed (the preferred replica
//! is down, say) initializes the group itself, and the replicas' own timers elect a leader as
//! they did before. Raft's safety does not depend on who stands (see `cairn_raft::handover`);
//! this only decides who stands first. A fresh group has no leader, so no follower's leader lease refuses the vote.
//! Its peers may not have created their copies yet when the vote asks (each node creates its
//! copies when it applies the topic's metadata), in which case the election fails and is
//! called again every [`RETRY_EVERY`], until a leader is known or the shortest election timeout
//! has passed: after that the replicas' own timers would have stood anyway.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_raft::{NodeId, PartitionRaft, PeerNode};
use openraft::Raft;
use tokio::time::Instant;

/// Initializes a new group on its preferred replica and calls its first election
/// ([`spawn_first_election`]).
pub(super) async fn initialize_and_elect(
    raft: Raft<PartitionRaft>,
    members: BTreeMap<NodeId, PeerNode>,
    topic: std::sync::Arc<str>,
    index: u32,
    election_timeout: Duration,
) {
    if initialize(&raft, members, &topic, index).await {
        spawn_first_election(raft, topic, index, election_timeout);
    }
}

/// On a replica that is not the preferred one, initializes a new group in the background
/// after `election_timeout`, unless an election or the leader reached the copy by then (which
/// initializes it).
pub(super) fn initialize_unless_reached(
    raft: Raft<PartitionRaft>,
    members: BTreeMap<NodeId, PeerNode>,
    topic: std::sync::Arc<str>,
    index: u32,
    election_timeout: Duration,
) {
    tokio::spawn(async move {
        tokio::time::sleep(election_timeout).await;
        // An error: the group shut down meanwhile.
        if raft.is_initialized().await.unwrap_or(true) {
            return;
        }
        tracing::info!(topic = %topic, partition = index, "no election reached this replica of a new partition; it initializes the group itself");
        initialize(&raft, members, &topic, index).await;
    });
}

/// Initializes the group with `members`; false when it was initialized already (a peer's
/// first message made this replica a member) or shut down, nothing to do either way.
async fn initialize(
    raft: &Raft<PartitionRaft>,
    members: BTreeMap<NodeId, PeerNode>,
    topic: &str,
    index: u32,
) -> bool {
    match raft.initialize(members).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(topic = %topic, partition = index, error = %e, "group already initialized");
            false
        }
    }
}

/// How long the preferred replica waits for a leader to show before it calls the election
/// again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Calls the first election of a group just initialized on its preferred replica, in the
/// background, until a leader is known or `give_up_after` (the shortest election timeout)
/// has passed. Ends early if the group shuts down.
pub(super) fn spawn_first_election(
    raft: Raft<PartitionRaft>,
    topic: std::sync::Arc<str>,
    index: u32,
    give_up_after: Duration,
) {
    tokio::spawn(async move {
        let deadline = Instant::now() + give_up_after;
        while Instant::now() < deadline {
            if raft.metrics().borrow().current_leader.is_some() {
                return;
            }
            if raft.trigger().elect().await.is_err() {
                // The group shut down.
                return;
            }
            let wait = RETRY_EVERY.min(deadline.saturating_duration_since(Instant::now()));
            let led = raft
                .wait(Some(wait))
                .metrics(|m| m.current_leader.is_some(), "a first leader")
                .await;
            if led.is_ok() {
                tracing::debug!(topic = %topic, partition = index, "first leader elected");
                return;
            }
        }
    });
}
