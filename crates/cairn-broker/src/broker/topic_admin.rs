//! The topic operations that change what this node holds: create, delete, add partitions and
//! alter configs, with the limits and refusals they check first. Each runs under the broker's
//! admin lock and does its file work on blocking threads.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Broker, TopicInfo, blocking, check_partition_count, refuse_internal};
use crate::cluster_spec::ClusterSpecError;
use crate::disk_space::check_room_for_partitions;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::topic_config::TopicConfig;
use crate::topic_name::validate_topic_name;
use crate::topic_open::{
    OnOpenError, close_partitions, disk_full_or, open_partitions, open_topic, remove_failed_create,
};
use crate::topic_store::{self, write_topic};

impl Broker {
    /// Creates a topic with `partitions` partitions and the given config overrides.
    /// `replication_factor` 0 means the cluster's default; any other value must be from 1 to
    /// the node count.
    ///
    /// # Errors
    /// [`BrokerError::InvalidTopicName`], [`BrokerError::TopicExists`],
    /// [`BrokerError::InvalidPartitions`], [`BrokerError::InvalidReplicationFactor`], config
    /// errors naming the key, I/O errors.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i64,
        replication_factor: i64,
        configs: &[(String, String)],
    ) -> Result<TopicInfo, BrokerError> {
        refuse_internal(name)?;
        if let Some(runtime) = self.runtime() {
            return self
                .create_replicated_topic(runtime, name, partitions, replication_factor, configs)
                .await;
        }
        self.cfg
            .cluster
            .replication_factor(replication_factor)
            .map_err(|err| match err {
                ClusterSpecError::InvalidReplicationFactor {
                    requested,
                    node_count,
                } => BrokerError::InvalidReplicationFactor {
                    requested,
                    node_count,
                },
                other => BrokerError::InvalidRequest(other.to_string()),
            })?;
        self.create_topic_unchecked(name, partitions, configs).await
    }

    /// Creates a topic, internal ones included.
    pub(crate) async fn create_topic_unchecked(
        &self,
        name: &str,
        partitions: i64,
        configs: &[(String, String)],
    ) -> Result<TopicInfo, BrokerError> {
        validate_topic_name(name)?;
        let partition_count = check_partition_count(name, partitions)?;
        let mut config = self.cfg.topic_defaults.clone();
        config.set_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let _admin = self.admin.lock().await;
        self.check_open()?;
        if self.topic(name).is_ok() {
            return Err(BrokerError::TopicExists {
                name: name.to_string(),
            });
        }
        self.check_partition_limit(partition_count)?;
        let overrides = overrides_text(&config, &self.cfg.topic_defaults);
        let configs_logged = overrides.trim_end().replace('\n', ",");
        let (data_dir, name_owned, clock) = (
            self.cfg.data_dir.clone(),
            name.to_string(),
            Arc::clone(&self.clock),
        );
        let local_options = self.cfg.local_options();
        let topic = blocking(move || {
            check_room_for_partitions(&data_dir, partition_count)?;
            // Logs first, then the topic file: a crash in between leaves directories that no
            // topic owns (removed at the next start), never a topic without its logs.
            let created = open_topic(
                &data_dir,
                &name_owned,
                partition_count,
                config,
                &clock,
                local_options,
                OnOpenError::Fail,
            )
            .and_then(|topic| {
                match write_topic(&data_dir, &name_owned, partition_count, &overrides) {
                    Ok(()) => Ok(topic),
                    Err(err) => {
                        close_partitions(
                            &topic
                                .partitions
                                .into_inner()
                                .unwrap_or_else(|e| e.into_inner()),
                        );
                        Err(err)
                    }
                }
            });
            created.map_err(|err| {
                remove_failed_create(&data_dir, &name_owned, 0..partition_count, true);
                disk_full_or(err)
            })
        })
        .await?;
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(topic));
        tracing::info!(
            topic = name,
            partitions = partition_count,
            configs = %configs_logged,
            "topic created"
        );
        self.describe_topic(name)
    }

    /// Deletes a topic: its writers are closed, then its logs and file removed.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], I/O errors.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        refuse_internal(name)?;
        if let Some(runtime) = self.runtime()
            && self.topic(name).is_ok_and(|t| t.topic_id.is_some())
        {
            return self.delete_replicated_topic(runtime, name).await;
        }
        let _admin = self.admin.lock().await;
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let topic = topic.ok_or_else(|| BrokerError::UnknownTopic {
            topic: name.to_string(),
        })?;
        let partitions: Vec<Arc<Partition>> = topic.partitions_now();
        for partition in &partitions {
            if let Err(err) = partition.close().await {
                tracing::warn!(topic = name, partition = partition.index(), %err, "closing a deleted topic's partition");
            }
        }
        let (data_dir, name_owned) = (self.cfg.data_dir.clone(), name.to_string());
        let dirs: Vec<PathBuf> = partitions.iter().map(|p| p.dir().to_path_buf()).collect();
        // The closed logs' last snapshots map every segment: let them go first, so the deleter
        // does not find the files mapped and hold each one open until they do.
        drop(partitions);
        drop(topic);
        blocking(move || {
            // The topic file goes first: a crash then leaves orphan directories, never a topic
            // whose logs are half gone.
            topic_store::remove_topic(&data_dir, &name_owned)?;
            for dir in dirs {
                // Renamed away at once; the files are freed in the background, paced, so that a
                // large topic's deletion does not stall every fsync on the disk.
                cairn_log::remove_log_dir(&dir)?;
            }
            topic_store::fsync_dir(&data_dir)
        })
        .await?;
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Raises a topic's partition count to `total` (never lowers it, as in Kafka).
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::InvalidPartitions`], I/O errors.
    pub async fn add_partitions(&self, name: &str, total: i64) -> Result<TopicInfo, BrokerError> {
        refuse_internal(name)?;
        self.refuse_replicated(name, "adding partitions")?;
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        let current = topic.partition_count().get();
        let total = check_partition_count(name, total)?;
        if total <= current {
            return Err(BrokerError::InvalidPartitions {
                topic: name.to_string(),
                requested: i64::from(total),
                reason: "a topic's partition count can only grow",
            });
        }
        let config = topic
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let overrides = overrides_text(&config, &self.cfg.topic_defaults);
        let (data_dir, name_owned, clock) = (
            self.cfg.data_dir.clone(),
            name.to_string(),
            Arc::clone(&self.clock),
        );
        let local_options = self.cfg.local_options();
        self.check_partition_limit(total - current)?;
        let added = blocking(move || {
            check_room_for_partitions(&data_dir, total - current)?;
            let log_config = config.to_log_config();
            let added = open_partitions(
                &data_dir,
                &name_owned,
                current..total,
                &log_config,
                &clock,
                local_options,
                OnOpenError::Fail,
            )
            .and_then(|added| {
                match write_topic(&data_dir, &name_owned, total, &overrides) {
                    Ok(()) => Ok(added),
                    Err(err) => {
                        close_partitions(&added);
                        Err(err)
                    }
                }
            });
            // Only the new partitions' directories go; the topic file keeps the old count.
            added.map_err(|err| {
                remove_failed_create(&data_dir, &name_owned, current..total, false);
                disk_full_or(err)
            })
        })
        .await?;
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(added);
        tracing::info!(
            topic = name,
            partitions = total,
            previous_partitions = current,
            "partitions added"
        );
        self.describe_topic(name)
    }

    /// Sets and removes topic configs; the new values take effect at once on every partition.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], config errors naming the key (nothing changes then),
    /// I/O errors.
    pub async fn alter_configs(
        &self,
        name: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<TopicInfo, BrokerError> {
        // A retention policy on the offsets topic would delete acknowledged commits.
        refuse_internal(name)?;
        // Kafka refuses a key given twice; here "set" then "delete" would quietly keep the set
        // value, which a caller meaning to delete would not see.
        if let Some((key, _)) = set.iter().find(|(key, _)| delete.contains(key)) {
            return Err(BrokerError::InvalidRequest(format!(
                "config {key:?} is both set and deleted in one request: give it once"
            )));
        }
        self.refuse_replicated(name, "altering configs")?;
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        let mut config = topic
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let before = config.entries();
        let defaults = self.cfg.topic_defaults.entries();
        for key in delete {
            let default = defaults
                .iter()
                .find(|(k, _)| k == key)
                .ok_or_else(|| BrokerError::UnknownConfig { key: key.clone() })?;
            config.set(key, &default.1)?;
        }
        config.set_all(set.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let overrides = overrides_text(&config, &self.cfg.topic_defaults);
        let partition_count = topic.partition_count().get();
        let (data_dir, name_owned) = (self.cfg.data_dir.clone(), name.to_string());
        blocking(move || write_topic(&data_dir, &name_owned, partition_count, &overrides)).await?;
        let log_config = config.to_log_config();
        *topic.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        let partitions: Vec<Arc<Partition>> = topic.partitions_now();
        for partition in partitions {
            // A stopped partition takes the new configs when it opens again (from the file).
            partition.set_config(log_config.clone()).await?;
        }
        let after = topic
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries();
        tracing::info!(topic = name, changes = %config_changes(&before, &after), "topic config changed");
        self.describe_topic(name)
    }

    /// Refuses `operation` on a replicated topic (one the cluster metadata owns), which would
    /// otherwise change this node's copy alone.
    fn refuse_replicated(&self, name: &str, operation: &'static str) -> Result<(), BrokerError> {
        if self.topic(name).is_ok_and(|t| t.topic_id.is_some()) {
            return Err(BrokerError::NotYetReplicated {
                operation,
                topic: name.to_string(),
            });
        }
        Ok(())
    }

    /// Partitions held now, over all topics.
    fn partition_total(&self) -> u64 {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .values()
            .map(|topic| u64::from(topic.partition_count().get()))
            .sum()
    }

    /// Refuses `adding` more partitions past [`BrokerConfig::max_partitions`]. Called under the
    /// admin lock, so the count cannot change before the partitions are added.
    fn check_partition_limit(&self, adding: u32) -> Result<(), BrokerError> {
        let existing = self.partition_total();
        if existing + u64::from(adding) > u64::from(self.cfg.max_partitions) {
            return Err(BrokerError::TooManyPartitions {
                requested: adding,
                existing,
                limit: self.cfg.max_partitions,
            });
        }
        Ok(())
    }
}

/// `key: old -> new` for every config whose value differs, comma-separated; `none` when no
/// value changed (an alter that set the values already in force).
fn config_changes(before: &[(&'static str, String)], after: &[(&'static str, String)]) -> String {
    let changes: Vec<String> = after
        .iter()
        .filter_map(|(key, new)| {
            let old = before.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            (old != Some(new)).then(|| format!("{key}: {} -> {new}", old.map_or("unset", |v| v)))
        })
        .collect();
    if changes.is_empty() {
        "none".to_string()
    } else {
        changes.join(", ")
    }
}

/// The `key=value` lines of the configs that differ from the defaults.
fn overrides_text(config: &TopicConfig, defaults: &TopicConfig) -> String {
    let defaults = defaults.entries();
    config
        .entries()
        .into_iter()
        .filter(|(key, value)| !defaults.iter().any(|(k, v)| k == key && v == value))
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_name_old_and_new_values() {
        let before = [
            ("retention.ms", "1".to_string()),
            ("segment.bytes", "9".to_string()),
        ];
        let after = [
            ("retention.ms", "2".to_string()),
            ("segment.bytes", "9".to_string()),
        ];
        assert_eq!(config_changes(&before, &after), "retention.ms: 1 -> 2");
        assert_eq!(config_changes(&after, &after), "none");
    }
}
