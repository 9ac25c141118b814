//! Where a topic's own metadata lives on disk: `DATA/<topic>.topic`, holding its partition count
//! and the configs that differ from the broker's defaults, as `key=value` lines (the
//! [`TopicConfig`] file format plus a `partitions=N` line). Its partitions' logs are
//! `DATA/<topic>-<partition>/`, Kafka's layout.
//!
//! Files are written atomically (temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves the old file or the new one. The temporary file has a short name of its own
//! (`.<hash>.topic.tmp`), not `<topic>.topic.tmp`: a 249-character topic name plus that suffix
//! would pass the 255-byte limit of a file name. A topic whose file is unreadable stops the
//! broker's start with an error naming the file; nothing is deleted because of it.
//!
//! A topic exists once its file does. Partition directories without one (a crash while a topic
//! was created, or deleted, or while partitions were added) and temporary files are leftovers,
//! removed at start by [`remove_leftovers`]; a committed topic's directories are never touched.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::broker::MAX_PARTITIONS_PER_TOPIC;
use crate::error::BrokerError;
use crate::topic_config::{MAX_CONFIG_FILE_BYTES, TopicConfig};
use crate::topic_name::validate_topic_name;

const TOPIC_FILE_SUFFIX: &str = ".topic";
/// Suffix of every temporary file the broker writes in the data directory; start-up removes
/// them all (a rename that never happened leaves the old file authoritative).
const TMP_SUFFIX: &str = ".tmp";
const PARTITIONS_KEY: &str = "partitions=";

/// A topic as persisted: its name, partition count and configs (overrides only).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTopic {
    /// The topic name.
    pub name: String,
    /// Number of partitions.
    pub partition_count: u32,
    /// The topic's configs (defaults applied, then overrides).
    pub config: TopicConfig,
}

/// The path of a topic's metadata file.
pub fn topic_file(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(format!("{name}{TOPIC_FILE_SUFFIX}"))
}

/// The directory of one partition's log.
pub fn partition_dir(data_dir: &Path, name: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{name}-{partition}"))
}

/// The temporary file a topic's file is written to before its rename: a fixed 27-byte name per
/// topic (FNV-1a of the name), so it fits whatever the name's length.
pub(crate) fn topic_tmp_file(data_dir: &Path, name: &str) -> PathBuf {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    data_dir.join(format!(".{hash:016x}{TOPIC_FILE_SUFFIX}{TMP_SUFFIX}"))
}

/// Writes a topic's file atomically. `overrides` is the file text of the configs that differ
/// from the defaults.
///
/// # Errors
/// [`BrokerError::Io`].
pub fn write_topic(
    data_dir: &Path,
    name: &str,
    partition_count: u32,
    overrides: &str,
) -> Result<(), BrokerError> {
    let path = topic_file(data_dir, name);
    let tmp = topic_tmp_file(data_dir, name);
    let text = format!("# cairn topic\n{PARTITIONS_KEY}{partition_count}\n{overrides}");
    let written = write_and_sync(&tmp, text.as_bytes()).and_then(|()| {
        fs::rename(&tmp, &path).map_err(|e| BrokerError::io("rename topic file", &path, e))
    });
    if let Err(err) = written {
        // Leave nothing behind: start-up would remove it, but a failed create should not
        // need a restart to be clean.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    fsync_dir(data_dir)
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> Result<(), BrokerError> {
    let mut file =
        fs::File::create(path).map_err(|e| BrokerError::io("create topic file", path, e))?;
    file.write_all(bytes)
        .map_err(|e| BrokerError::io("write topic file", path, e))?;
    file.sync_all()
        .map_err(|e| BrokerError::io("fsync topic file", path, e))
}

/// Reads every topic file in `data_dir`, applying each one's overrides to `defaults`.
///
/// # Errors
/// [`BrokerError::Io`] or a config error naming the file and line.
pub fn load_topics(
    data_dir: &Path,
    defaults: &TopicConfig,
) -> Result<Vec<StoredTopic>, BrokerError> {
    let mut topics = Vec::new();
    let entries =
        fs::read_dir(data_dir).map_err(|e| BrokerError::io("list data directory", data_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BrokerError::io("list data directory", data_dir, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|n| n.strip_suffix(TOPIC_FILE_SUFFIX))
        else {
            continue;
        };
        topics.push(read_topic(&entry.path(), name, defaults)?);
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

fn read_topic(path: &Path, name: &str, defaults: &TopicConfig) -> Result<StoredTopic, BrokerError> {
    let unreadable =
        |reason: String| BrokerError::io("read topic file", path, std::io::Error::other(reason));
    validate_topic_name(name).map_err(|e| unreadable(e.to_string()))?;
    let size = fs::metadata(path)
        .map_err(|e| BrokerError::io("read topic file", path, e))?
        .len();
    if size > MAX_CONFIG_FILE_BYTES as u64 {
        return Err(unreadable(format!(
            "{size} bytes is more than {MAX_CONFIG_FILE_BYTES}"
        )));
    }
    let text = fs::read_to_string(path).map_err(|e| BrokerError::io("read topic file", path, e))?;
    let (partition_count, config) = parse_topic_text(&text, defaults).map_err(unreadable)?;
    Ok(StoredTopic {
        name: name.to_string(),
        partition_count,
        config,
    })
}

/// Decodes a topic file's text: its `partitions=N` line and its config lines over `defaults`.
/// The reason on error names what is wrong (and the line, for a config line).
pub(crate) fn parse_topic_text(
    text: &str,
    defaults: &TopicConfig,
) -> Result<(u32, TopicConfig), String> {
    let mut partition_count = None;
    let mut config_lines = String::new();
    for line in text.lines() {
        match line.trim().strip_prefix(PARTITIONS_KEY) {
            Some(count) => partition_count = count.trim().parse::<u32>().ok().filter(|&c| c > 0),
            // Kept line for line (blank for the partitions line) so config errors name the
            // file's own line numbers.
            None => config_lines.push_str(line),
        }
        config_lines.push('\n');
    }
    let partition_count = partition_count.ok_or("no valid partitions=N line")?;
    let mut config = defaults.clone();
    config
        .apply_file_text(&config_lines)
        .map_err(|e| e.to_string())?;
    Ok((partition_count, config))
}

/// Removes a topic's file (its partitions' directories are removed by the caller).
///
/// # Errors
/// [`BrokerError::Io`].
pub fn remove_topic(data_dir: &Path, name: &str) -> Result<(), BrokerError> {
    let path = topic_file(data_dir, name);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(BrokerError::io("remove topic file", &path, e));
        }
        _ => {}
    }
    fsync_dir(data_dir)
}

/// The topic and partition a directory name `<topic>-<partition>` stands for, if it is one: a
/// valid topic name, then a partition number written as the broker writes it (no sign, no
/// leading zero) below [`MAX_PARTITIONS_PER_TOPIC`].
pub(crate) fn parse_partition_dir(dir_name: &str) -> Option<(&str, u32)> {
    let (name, digits) = dir_name.rsplit_once('-')?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let partition: u32 = digits.parse().ok().filter(|_| canonical)?;
    (partition < MAX_PARTITIONS_PER_TOPIC && validate_topic_name(name).is_ok())
        .then_some((name, partition))
}

/// Removes what a crash left in `data_dir` around the committed `topics`: temporary files
/// (`*.tmp`), partition directories that no topic file owns (no topic of that name, or a
/// partition number at or past its count). Each removal is logged at WARN. Entries that do not
/// look like the broker's own (another name, a symlink, a file) are left alone. Deleted
/// partitions whose files were still being freed are handed back to the log's paced deleter,
/// here and in the replicas directory of a cluster node.
///
/// # Errors
/// [`BrokerError::Io`] listing the directory or removing a leftover.
pub fn remove_leftovers(data_dir: &Path, topics: &[StoredTopic]) -> Result<usize, BrokerError> {
    cairn_log::resume_log_dir_removals(data_dir)?;
    cairn_log::resume_log_dir_removals(&data_dir.join(crate::cluster::runtime::REPLICAS_DIR))?;
    let mut removed = 0;
    let entries =
        fs::read_dir(data_dir).map_err(|e| BrokerError::io("list data directory", data_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BrokerError::io("list data directory", data_dir, e))?;
        let (path, file_name) = (entry.path(), entry.file_name());
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let file_type = entry
            .file_type()
            .map_err(|e| BrokerError::io("list data directory", &path, e))?;
        if file_type.is_file() && file_name.ends_with(TMP_SUFFIX) {
            fs::remove_file(&path).map_err(|e| BrokerError::io("remove leftover", &path, e))?;
            tracing::warn!(file = %path.display(), "removed a temporary file left by a crash");
            removed += 1;
            continue;
        }
        let Some((topic, partition)) = parse_partition_dir(file_name) else {
            continue;
        };
        let owned = topics
            .iter()
            .any(|t| t.name == topic && partition < t.partition_count);
        if file_type.is_dir() && !owned {
            if cairn_log::is_held_by_an_open_log(&path) {
                tracing::warn!(directory = %path.display(), "a partition directory no topic owns is in use by another process; left alone");
                continue;
            }
            fs::remove_dir_all(&path).map_err(|e| BrokerError::io("remove leftover", &path, e))?;
            tracing::warn!(
                directory = %path.display(), topic, partition,
                "removed a partition directory no topic owns (left by a crash while a topic was created or deleted)"
            );
            removed += 1;
        }
    }
    if removed > 0 {
        fsync_dir(data_dir)?;
    }
    Ok(removed)
}

/// fsyncs a directory, making entries created, renamed or removed in it durable.
///
/// # Errors
/// [`BrokerError::Io`].
pub fn fsync_dir(dir: &Path) -> Result<(), BrokerError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BrokerError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = TopicConfig::default();
        let mut config = defaults.clone();
        config.set("retention.ms", "1234").unwrap();
        write_topic(dir.path(), "orders", 6, "retention.ms=1234\n").unwrap();
        write_topic(dir.path(), "payments", 1, "").unwrap();
        let topics = load_topics(dir.path(), &defaults).unwrap();
        assert_eq!(topics.len(), 2);
        assert_eq!(
            topics[0],
            StoredTopic {
                name: "orders".into(),
                partition_count: 6,
                config
            }
        );
        assert_eq!(topics[1].partition_count, 1);
        remove_topic(dir.path(), "orders").unwrap();
        assert_eq!(load_topics(dir.path(), &defaults).unwrap().len(), 1);
    }

    #[test]
    fn a_damaged_topic_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(topic_file(dir.path(), "orders"), "partitions=zero\n").unwrap();
        let err = load_topics(dir.path(), &TopicConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("orders.topic"), "{err}");
        fs::write(
            topic_file(dir.path(), "orders"),
            "partitions=2\nno.such.key=1\n",
        )
        .unwrap();
        let err = load_topics(dir.path(), &TopicConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("orders.topic") && err.contains("no.such.key"),
            "{err}"
        );
    }

    #[test]
    fn every_file_name_of_a_249_character_topic_fits_name_max() {
        let dir = tempfile::tempdir().unwrap();
        let name = "n".repeat(crate::MAX_TOPIC_NAME_CHARS);
        write_topic(dir.path(), &name, 1024, "").unwrap();
        let topics = load_topics(dir.path(), &TopicConfig::default()).unwrap();
        assert_eq!(topics[0].name, name);
        assert_eq!(topics[0].partition_count, 1024);
        let tmp = topic_tmp_file(dir.path(), &name);
        assert_eq!(tmp.file_name().unwrap().len(), 27);
        // The last partition's directory is the longest name: 249 + "-1023" = 254 bytes.
        let last = partition_dir(dir.path(), &name, MAX_PARTITIONS_PER_TOPIC - 1);
        assert_eq!(last.file_name().unwrap().len(), 254);
        fs::create_dir(&last).unwrap();
    }

    #[test]
    fn temporary_names_differ_between_topics_and_never_end_in_topic() {
        let dir = Path::new("/data");
        let a = topic_tmp_file(dir, "orders");
        assert_ne!(a, topic_tmp_file(dir, "payments"));
        assert_eq!(a, topic_tmp_file(dir, "orders"));
        assert!(!a.to_str().unwrap().ends_with(TOPIC_FILE_SUFFIX));
    }

    #[test]
    fn partition_directory_names_parse_only_as_the_broker_writes_them() {
        assert_eq!(parse_partition_dir("orders-0"), Some(("orders", 0)));
        assert_eq!(parse_partition_dir("a-1-1023"), Some(("a-1", 1023)));
        for other in [
            "orders",
            "orders-",
            "-0",
            "orders-01",
            "orders-1024",
            "orders-+1",
            "lost+found",
            "a b-0",
            "orders-x",
        ] {
            assert_eq!(parse_partition_dir(other), None, "{other}");
        }
    }

    #[test]
    fn leftovers_go_and_committed_topics_and_foreign_entries_stay() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = TopicConfig::default();
        write_topic(dir.path(), "orders", 2, "").unwrap();
        for kept in [
            "orders-0",
            "orders-1",
            "lost+found",
            "backup-01",
            "notes-2024",
        ] {
            fs::create_dir(dir.path().join(kept)).unwrap();
            fs::write(dir.path().join(kept).join("data"), "acknowledged").unwrap();
        }
        for gone in ["orders-2", "ghost-0", "ghost-7"] {
            fs::create_dir(dir.path().join(gone)).unwrap();
            fs::write(dir.path().join(gone).join("00000000000000000000.log"), "x").unwrap();
        }
        fs::write(topic_tmp_file(dir.path(), "ghost"), "partial").unwrap();
        // An orphan another process's log holds open (its create is under way) stays.
        fs::create_dir(dir.path().join("busy-0")).unwrap();
        let log = cairn_log::Log::open(&dir.path().join("busy-0"), Default::default(), 0).unwrap();
        fs::write(dir.path().join("producer-ids.tmp"), "partial").unwrap();
        // A file with a partition-like name is not a partition: left alone.
        fs::write(dir.path().join("ghost-1"), "not a directory").unwrap();
        let topics = load_topics(dir.path(), &defaults).unwrap();
        assert_eq!(remove_leftovers(dir.path(), &topics).unwrap(), 5);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "backup-01",
                "busy-0",
                "ghost-1",
                "lost+found",
                "notes-2024",
                "orders-0",
                "orders-1",
                "orders.topic"
            ]
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("orders-1/data")).unwrap(),
            "acknowledged"
        );
        assert_eq!(remove_leftovers(dir.path(), &topics).unwrap(), 0);
        drop(log);
        assert_eq!(
            remove_leftovers(dir.path(), &topics).unwrap(),
            1,
            "busy-0, now closed"
        );
    }
}
