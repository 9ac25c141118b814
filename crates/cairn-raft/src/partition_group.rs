//! [`PartitionGroup`]: how a partition's Raft group answers its peers' calls. openraft's own
//! calls go to openraft as for any group (`groups`); two more are answered here, because they
//! need the partition's log and whether this copy may lead:
//! - [`RpcKind::FetchEntries`]: a damaged peer's request for committed entries, served from
//!   this copy's log (`crate::fetch`);
//! - [`RpcKind::Campaign`]: a leader's handover request, refused while this copy holds damaged
//!   committed entries ([`Standing`]), since a leader must be able to ship every entry it has.
//!
//! It deliberately does not stop openraft's own election timer; the healer does that, with
//! `runtime_config().elect(false)`, when it clears [`Standing`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use openraft::Raft;

use crate::groups::HostedGroup;
use crate::raft_log::RaftLog;
use crate::transport::{BoxFuture, RpcKind};
use crate::types::PartitionRaft;
use crate::wire;

/// Whether a replica may stand for leader: cleared while it holds damaged committed entries,
/// set again once it has healed them. Cheap to clone (one `Arc`); starts standing.
#[derive(Clone, Debug)]
pub struct Standing(Arc<AtomicBool>);

impl Default for Standing {
    fn default() -> Standing {
        Standing(Arc::new(AtomicBool::new(true)))
    }
}

impl Standing {
    /// Whether the replica may stand now.
    pub fn may_stand(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets whether the replica may stand.
    pub fn set(&self, may_stand: bool) {
        self.0.store(may_stand, Ordering::SeqCst);
    }
}

/// A partition group's handler for its peers' calls.
pub struct PartitionGroup {
    raft: Raft<PartitionRaft>,
    raft_log: RaftLog,
    standing: Standing,
}

impl PartitionGroup {
    /// The handler of the group `raft` runs over `raft_log`, refusing handovers while
    /// `standing` says so.
    pub fn new(raft: Raft<PartitionRaft>, raft_log: RaftLog, standing: Standing) -> Self {
        PartitionGroup {
            raft,
            raft_log,
            standing,
        }
    }
}

impl HostedGroup for PartitionGroup {
    fn handle(&self, kind: RpcKind, payload: Bytes) -> BoxFuture<'static, Result<Bytes, String>> {
        match kind {
            RpcKind::FetchEntries => {
                let (applied, running) = {
                    let metrics = self.raft.metrics();
                    let m = metrics.borrow();
                    (m.last_applied.map(|l| l.index), m.running_state.is_ok())
                };
                let answer = if running {
                    crate::fetch::answer_fetch(&self.raft_log, applied, payload)
                } else {
                    Err("this copy of the group stopped".to_string())
                };
                Box::pin(async move { answer })
            }
            RpcKind::Campaign if !self.standing.may_stand() => {
                // Refused by answering "not started": the leader asks the next follower.
                Box::pin(async { Ok(wire::encode_campaign_answer(false)) })
            }
            _ => self.raft.handle(kind, payload),
        }
    }
}
