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
//! So the preferred replica calls an election again, in a newer term that the others' votes go
//! to, as soon as its copy is initialized, and again while no leader shows. Raft's
//! safety does not depend on who stands (see `cairn_raft::handover`); this only decides who
//! stands first. A fresh group has no leader, so no follower's leader lease refuses the vote.
//! Its peers may not have created their copies yet when the vote asks (each node creates its
//! copies when it applies the topic's metadata), in which case the election fails and is
//! called again every [`RETRY_EVERY`], until a leader is known or the shortest election timeout
//! has passed: after that the replicas' own timers would have stood anyway.

use std::time::Duration;

use cairn_raft::PartitionRaft;
use openraft::Raft;
use tokio::time::Instant;

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
