//! Hands out producer ids for idempotent producers (Kafka's InitProducerId), unique across
//! restarts: ids are reserved in blocks whose end is persisted (atomically) before any id of
//! the block is handed out, so a crash can skip ids but never repeat one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::BrokerError;
use crate::topic_store::fsync_dir;

/// Ids reserved per write of the file.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
const FILE_NAME: &str = "producer-ids";

/// The allocator of one broker.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    dir: PathBuf,
    /// (next id to hand out, first id not yet reserved on disk).
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Loads the allocator of `data_dir`; the next id is the end of the last reserved block.
    pub(crate) fn open(data_dir: &Path) -> Result<ProducerIds, BrokerError> {
        let path = data_dir.join(FILE_NAME);
        let reserved = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .strip_prefix("reserved_until=")
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    BrokerError::io(
                        "read producer ids",
                        &path,
                        std::io::Error::other("expected reserved_until=<id>"),
                    )
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(BrokerError::io("read producer ids", &path, e)),
        };
        Ok(ProducerIds {
            path,
            dir: data_dir.to_path_buf(),
            state: Mutex::new((reserved, reserved)),
        })
    }

    /// A fresh producer id. Blocking (may write and fsync the file).
    pub(crate) fn next(&self) -> Result<i64, BrokerError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 >= state.1 {
            let until = state.1 + PRODUCER_ID_BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, format!("reserved_until={until}\n"))
                .map_err(|e| BrokerError::io("write producer ids", &tmp, e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| BrokerError::io("fsync producer ids", &tmp, e))?;
            std::fs::rename(&tmp, &self.path)
                .map_err(|e| BrokerError::io("rename producer ids", &self.path, e))?;
            fsync_dir(&self.dir)?;
            state.1 = until;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }

    /// True when `producer_id` may have been handed out, by this run or an earlier one: it is
    /// below the next id to hand out (after a restart, the end of the last reserved block, so
    /// every id issued before the restart counts, and ids skipped by the crash too).
    pub(crate) fn was_issued(&self, producer_id: i64) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (0..state.0).contains(&producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.next().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(ids);
        let ids = ProducerIds::open(dir.path()).unwrap();
        assert!(ids.was_issued(2), "ids survive a reopen");
        let next = ids.next().unwrap();
        assert!(next >= 3);
        assert!(ids.was_issued(next) && !ids.was_issued(next + 1) && !ids.was_issued(-1));
        std::fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        assert!(ProducerIds::open(dir.path()).is_err());
    }
}
