//! openraft's own storage test suite against the log storage over `cairn-log` and the
//! partition state machine (issue 13: "openraft's own storage test suite runs against this log
//! storage").

use std::sync::Arc;

use cairn_log::{LogConfig, SystemClock};
use cairn_raft::{CairnLogStorage, PartitionRaft, PartitionStateMachine, RaftLog};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

/// Builds a fresh storage in its own temporary directory (kept alive as the suite's guard).
struct CairnStoreBuilder;

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
        Ok((dir, storage, PartitionStateMachine::new(raft_log)))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(CairnStoreBuilder).expect("openraft's storage suite");
}
