//! Clients of the simulated group: each proposes distinct writes, one at a time, to the node it
//! believes leads (learned from refusals, else a seeded guess), and tells the observer which
//! writes were acknowledged and at what index. A write that fails or times out is indeterminate:
//! it may still commit, and the checker does not count it either way.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cluster::{LiveNodes, SimGroup};
use super::observer::Observer;
use super::rng::SimRng;
use crate::types::NodeId;

/// What one client saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Writes acknowledged.
    pub acked: u64,
    /// Writes refused, failed or timed out (indeterminate).
    pub failed: u64,
}

/// Starts client `client`; it runs until `stop` turns true and returns what it saw.
pub fn spawn_client<G: SimGroup>(
    group: Arc<G>,
    live: LiveNodes<G::C>,
    observer: Observer,
    (seed, client): (u64, u64),
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<ClientStats> {
    tokio::spawn(async move {
        let mut rng = SimRng::keyed(seed, &[u64::from(b'C'), client]);
        let mut stats = ClientStats::default();
        let mut leader: Option<NodeId> = None;
        for n in 0.. {
            if *stop.borrow_and_update() {
                break;
            }
            let pause = Duration::from_millis(rng.range(5, 60));
            // Wake at once when told to stop; the flag is read on the next turn.
            let _ = tokio::time::timeout(pause, stop.changed()).await;
            let target = {
                let live = live.lock().unwrap_or_else(|e| e.into_inner());
                let ids: Vec<NodeId> = live.keys().copied().collect();
                let id = leader
                    .filter(|l| live.contains_key(l))
                    .or_else(|| rng.pick(&ids));
                id.and_then(|id| live.get(&id).cloned())
            };
            let Some(raft) = target else {
                continue;
            };
            let data = group.write(client, n);
            let written =
                tokio::time::timeout(Duration::from_secs(3), raft.client_write(data.clone())).await;
            match written {
                Ok(Ok(resp)) => {
                    stats.acked += 1;
                    observer.acked(resp.log_id, data.0);
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(fwd)))) => {
                    stats.failed += 1;
                    leader = fwd.leader_id;
                }
                Ok(Err(_)) | Err(_) => {
                    stats.failed += 1;
                    leader = None;
                }
            }
        }
        stats
    })
}
