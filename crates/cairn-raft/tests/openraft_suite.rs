//! openraft's own storage test suite against the log storage over `cairn-log` and the
//! partition state machine (issue 13: "openraft's own storage test suite runs against this log
//! storage").

use std::sync::Arc;

use cairn_log::{LogConfig, SystemClock};
use cairn_raft::{CairnLogStorage, PartitionRaft, PartitionStateMachine, RaftLog};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

/// Builds a fresh storage in its own temporary directory (kept alive as the suite's guard).
/// With `on_node`, the storage is told it is that node's, so appends made while the stored vote
/// names another node take the follower's path (written on the calling task when the writer is
/// idle).
/// With `ship_before_flush` as well, appends made while the vote names that node take the
/// leader's path (reported flushed once written, `CairnLogStorage::shipping_before_flush`).
struct CairnStoreBuilder {
    on_node: Option<u64>,
    ship_before_flush: bool,
}

impl
    StoreBuilder<
        PartitionRaft,
        CairnLogStorage<PartitionRaft>,
        PartitionStateMachine,
        tempfile::TempDir,
    > for CairnStoreBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            CairnLogStorage<PartitionRaft>,
            PartitionStateMachine,
        ),
        StorageError<u64>,
    > {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let raft_log = RaftLog::open(
            &dir.path().join("orders-0"),
            LogConfig::default(),
            Arc::new(SystemClock),
        )
        .expect("a fresh partition log opens");
        let storage = CairnLogStorage::new(raft_log.clone());
        let storage = match self.on_node {
            Some(me) => storage.on_node(me),
            None => storage,
        };
        let storage = if self.ship_before_flush {
            storage.shipping_before_flush()
        } else {
            storage
        };
        Ok((dir, storage, PartitionStateMachine::new(raft_log)))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(CairnStoreBuilder {
        on_node: None,
        ship_before_flush: false,
    })
    .expect("openraft's storage suite");
}

/// The suite's votes name node 0; told it is node 99, the storage takes the follower's path for
/// every append made after a vote (written on the calling task when the writer is idle).
#[test]
fn openraft_storage_suite_passes_on_a_follower() {
    Suite::test_all(CairnStoreBuilder {
        on_node: Some(99),
        ship_before_flush: false,
    })
    .expect("openraft's storage suite, appending as a follower");
}

/// Told it is node 0, whose votes the suite saves, and shipping before its flush: every append
/// after a vote takes the leader's path, reported flushed once written.
#[test]
fn openraft_storage_suite_passes_on_a_leader_shipping_before_its_flush() {
    Suite::test_all(CairnStoreBuilder {
        on_node: Some(0),
        ship_before_flush: true,
    })
    .expect("openraft's storage suite, appending as a leader that ships before its flush");
}
