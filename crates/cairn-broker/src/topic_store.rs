//! Where a topic's own metadata lives on disk: `DATA/<topic>.topic`, holding its partition count
//! and the configs that differ from the broker's defaults, as `key=value` lines (the
//! [`TopicConfig`] file format plus a `partitions=N` line). Its partitions' logs are
//! `DATA/<topic>-<partition>/`, Kafka's layout.
//!
//! Files are written atomically (temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves the old file or the new one. A topic whose file is unreadable stops the broker's
//! start with an error naming the file; nothing is deleted because of it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::BrokerError;
use crate::topic_config::{MAX_CONFIG_FILE_BYTES, TopicConfig};
use crate::topic_name::validate_topic_name;

const TOPIC_FILE_SUFFIX: &str = ".topic";
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
    let tmp = data_dir.join(format!("{name}{TOPIC_FILE_SUFFIX}.tmp"));
    let text = format!("# cairn topic\n{PARTITIONS_KEY}{partition_count}\n{overrides}");
    let mut file =
        fs::File::create(&tmp).map_err(|e| BrokerError::io("create topic file", &tmp, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| BrokerError::io("write topic file", &tmp, e))?;
    file.sync_all()
        .map_err(|e| BrokerError::io("fsync topic file", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| BrokerError::io("rename topic file", &path, e))?;
    fsync_dir(data_dir)
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
}
