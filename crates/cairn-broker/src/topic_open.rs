//! Opening a topic's partitions, and undoing a create (or a partition increase) that failed
//! half-way so it leaves nothing behind. Blocking: the broker calls these on blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use cairn_codec::{StickyPartitioner, XorShift64};
use cairn_log::{Clock, LogError};

use crate::storage_error::is_disk_full;

use crate::broker::Topic;
use crate::error::BrokerError;
use crate::partition::{LocalOptions, Partition};
use crate::topic_config::TopicConfig;
use crate::topic_store::{self, partition_dir, topic_file, topic_tmp_file};

/// How [`open_topic`] treats a partition log that will not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnOpenError {
    /// Fail: a topic being created must have every partition.
    Fail,
    /// Keep the partition stopped: at start-up, one bad directory must not keep the node down.
    Stop,
}

pub(crate) fn open_topic(
    data_dir: &Path,
    name: &str,
    partition_count: u32,
    config: TopicConfig,
    clock: &Arc<dyn Clock>,
    options: LocalOptions,
    on_error: OnOpenError,
) -> Result<Topic, BrokerError> {
    let log_config = config.to_log_config();
    let partitions = open_partitions(
        data_dir,
        name,
        0..partition_count,
        &log_config,
        clock,
        options,
        on_error,
    )?;
    let seed = clock.now_ms() as u64
        ^ name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Ok(Topic {
        name: name.to_string(),
        config: RwLock::new(config),
        partitions: RwLock::new(partitions),
        sticky: Mutex::new(StickyPartitioner::new(XorShift64::new(seed))),
        topic_id: None,
    })
}

/// Opens partitions `range` of a topic. If one fails, those already opened are closed (their
/// writer threads stopped, their files released) before the error is returned.
pub(crate) fn open_partitions(
    data_dir: &Path,
    name: &str,
    range: std::ops::Range<u32>,
    log_config: &cairn_log::LogConfig,
    clock: &Arc<dyn Clock>,
    options: LocalOptions,
    on_error: OnOpenError,
) -> Result<Vec<Arc<Partition>>, BrokerError> {
    let topic_name: Arc<str> = Arc::from(name);
    let open = match on_error {
        OnOpenError::Fail => Partition::open,
        OnOpenError::Stop => Partition::open_or_stop,
    };
    let mut opened = Vec::with_capacity(range.len());
    for idx in range {
        let dir = partition_dir(data_dir, name, idx);
        match open(
            Arc::clone(&topic_name),
            idx,
            dir,
            log_config.clone(),
            Arc::clone(clock),
            options,
        ) {
            Ok(partition) => opened.push(Arc::new(partition)),
            Err(err) => {
                close_partitions(&opened);
                return Err(err);
            }
        }
    }
    Ok(opened)
}

/// Closes partitions a failed create opened. Blocking.
pub(crate) fn close_partitions(partitions: &[Arc<Partition>]) {
    for partition in partitions {
        if let Err(err) = partition.close_blocking() {
            tracing::warn!(dir = %partition.dir().display(), %err, "closing a partition of a failed create");
        }
    }
}

/// Removes what a failed create left: the directories of partitions `range`, the temporary
/// topic file and, for a new topic (`whole_topic`), its topic file if the rename happened
/// before the failure. The topic was never reported created and the admin lock is held, so
/// nothing here was ever acknowledged. Failures are logged: start-up removes what is left.
pub(crate) fn remove_failed_create(
    data_dir: &Path,
    name: &str,
    range: std::ops::Range<u32>,
    whole_topic: bool,
) {
    let mut paths: Vec<PathBuf> = vec![topic_tmp_file(data_dir, name)];
    if whole_topic {
        paths.push(topic_file(data_dir, name));
    }
    for path in paths {
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), %err, "cannot remove a file of a failed create; the next start will");
        }
    }
    for idx in range {
        let dir = partition_dir(data_dir, name, idx);
        if let Err(err) = std::fs::remove_dir_all(&dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), %err, "cannot remove a directory of a failed create; the next start will");
        }
    }
    if let Err(err) = topic_store::fsync_dir(data_dir) {
        tracing::warn!(%err, "fsync of the data directory after a failed create");
    }
}

/// A full disk met while creating (`ENOSPC`/`EDQUOT` from a log or a topic file) becomes the
/// log's retriable `DiskFull`, so a create answers like a produce on a full disk.
pub(crate) fn disk_full_or(err: BrokerError) -> BrokerError {
    let path = match &err {
        BrokerError::Io { path, source, .. } if is_disk_full(source) => path,
        BrokerError::Log(storage) => match storage.log() {
            LogError::Io { path, source, .. } if is_disk_full(source) => path,
            _ => return err,
        },
        _ => return err,
    };
    BrokerError::from(LogError::DiskFull { path: path.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_met_while_creating_is_the_logs_retriable_disk_full() {
        let path = PathBuf::from("/data/orders-0/00000000000000000000.index");
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let from_log = BrokerError::from(LogError::io(
                "open index",
                &path,
                std::io::Error::from_raw_os_error(errno),
            ));
            let from_topic_file = BrokerError::io(
                "write topic file",
                &path,
                std::io::Error::from_raw_os_error(errno),
            );
            for err in [from_log, from_topic_file] {
                match disk_full_or(err) {
                    BrokerError::Log(err) => {
                        assert!(matches!(err.log(), LogError::DiskFull { .. }), "{err}");
                        assert!(err.is_retriable());
                        assert!(err.to_string().contains("orders-0"), "{err}");
                    }
                    other => panic!("expected DiskFull, got {other}"),
                }
            }
        }
        let other = BrokerError::io(
            "write topic file",
            &path,
            std::io::Error::from_raw_os_error(libc::EIO),
        );
        assert!(matches!(disk_full_or(other), BrokerError::Io { .. }));
    }
}
