//! One partition of a topic on this node: its log, driven by a group-committing
//! [`LogWriter`] whose admission filter enforces idempotent producers' sequences. Appends and
//! reads of a partition go through here.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_log::{Clock, Log, LogConfig, LogReader, LogWriter, WriterOptions};

use crate::producer_filter::ProducerFilter;
use crate::sequencer::Sequencer;

use crate::error::BrokerError;

/// A partition this node holds.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) index: u32,
    pub(crate) dir: PathBuf,
    pub(crate) writer: LogWriter,
    /// Puts idempotent producers' batches into the writer's queue in sequence order.
    pub(crate) sequencer: Sequencer,
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
        // Idempotent producers' state is rebuilt from the batch headers in the log.
        let filter = ProducerFilter::rebuild(&log.reader())?;
        let writer = LogWriter::spawn_filtered(
            log,
            clock,
            WriterOptions::default(),
            Some(Box::new(filter)),
        )?;
        Ok(Partition {
            index,
            dir,
            writer,
            sequencer: Sequencer::default(),
        })
    }

    /// A reader of the partition's log.
    pub(crate) fn reader(&self) -> &LogReader {
        self.writer.reader()
    }
}
