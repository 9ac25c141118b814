//! One partition of a topic on this node: its log, driven by a group-committing
//! [`LogWriter`]. Appends and reads of a partition go through here.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_log::{Clock, Log, LogConfig, LogReader, LogWriter};

use crate::error::BrokerError;

/// A partition this node holds.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) index: u32,
    pub(crate) dir: PathBuf,
    pub(crate) writer: LogWriter,
}

impl Partition {
    /// Opens (creating or recovering) the partition's log and starts its writer. Blocking: call
    /// from a blocking thread.
    pub(crate) fn open(
        index: u32,
        dir: PathBuf,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Partition, BrokerError> {
        let log = Log::open(&dir, cfg, clock.now_ms())?;
        let writer = LogWriter::spawn(log, clock)?;
        Ok(Partition { index, dir, writer })
    }

    /// A reader of the partition's log.
    pub(crate) fn reader(&self) -> &LogReader {
        self.writer.reader()
    }
}
