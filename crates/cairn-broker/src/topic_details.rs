//! What `describe` tells an operator beyond a topic's offsets: where each config's value comes
//! from (the topic itself, the broker's topic defaults, or Cairn's built-in default), and how
//! many bytes each partition's segment files take on disk.
//!
//! Both are read on demand, never cached: the sizes from each partition's log (which keeps its
//! segment sizes, so no I/O), the sources by comparing the topic's config with the broker's
//! defaults, the same comparison that decides what the topic file stores.

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::topic_config::TopicConfig;

/// Where a topic config's effective value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (at create or by alter), differing from the broker's default.
    Topic,
    /// The broker's topic default (`serve --topic-default`), differing from the built-in one.
    BrokerDefault,
    /// Cairn's built-in default.
    Default,
}

impl ConfigSource {
    /// The name the API and the CLI use: `topic`, `broker` or `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigSource::Topic => "topic",
            ConfigSource::BrokerDefault => "broker",
            ConfigSource::Default => "default",
        }
    }
}

/// The source of each of `config`'s entries, in [`TopicConfig::entries`] order. A topic value
/// equal to the broker's default counts as the broker's: the topic file does not store it
/// either, so it follows the broker's default after a restart with another one.
pub fn config_sources(
    config: &TopicConfig,
    broker_defaults: &TopicConfig,
) -> Vec<(&'static str, ConfigSource)> {
    let broker = broker_defaults.entries();
    let built_in = TopicConfig::default().entries();
    let value_in = |entries: &[(&'static str, String)], key: &str| {
        entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    config
        .entries()
        .into_iter()
        .map(|(key, value)| {
            let broker_value = value_in(&broker, key);
            let source = if broker_value.as_deref() != Some(value.as_str()) {
                ConfigSource::Topic
            } else if broker_value != value_in(&built_in, key) {
                ConfigSource::BrokerDefault
            } else {
                ConfigSource::Default
            };
            (key, source)
        })
        .collect()
}

impl Broker {
    /// Where each of topic `name`'s configs comes from, in [`TopicConfig::entries`] order.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`].
    pub fn config_sources(
        &self,
        name: &str,
    ) -> Result<Vec<(&'static str, ConfigSource)>, BrokerError> {
        let topic = self.topic(name)?;
        let config = topic.config.read().unwrap_or_else(|e| e.into_inner());
        Ok(config_sources(&config, &self.cfg.topic_defaults))
    }

    /// Bytes of record batches each partition holds, in partition order: as
    /// [`Broker::partition_size_bytes`] (the `.log` files up to the high watermark, indexes
    /// excluded; what `/metrics` reports too), 0 for a stopped partition. No I/O: the log keeps
    /// its segment sizes.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`].
    pub fn partition_sizes(&self, name: &str) -> Result<Vec<u64>, BrokerError> {
        let topic = self.topic(name)?;
        let partitions = topic.partitions.read().unwrap_or_else(|e| e.into_inner());
        Ok(partitions
            .iter()
            .map(|p| p.size_bytes().unwrap_or(0))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> TopicConfig {
        let mut config = TopicConfig::default();
        for (k, v) in pairs {
            config.set(k, v).unwrap();
        }
        config
    }

    fn source_of(sources: &[(&str, ConfigSource)], key: &str) -> ConfigSource {
        sources.iter().find(|(k, _)| *k == key).unwrap().1
    }

    #[test]
    fn each_config_names_the_level_its_value_comes_from() {
        let broker = config(&[("retention.ms", "3600000")]);
        let topic = config(&[("retention.ms", "3600000"), ("segment.bytes", "1048576")]);
        let sources = config_sources(&topic, &broker);
        assert_eq!(source_of(&sources, "segment.bytes"), ConfigSource::Topic);
        assert_eq!(
            source_of(&sources, "retention.ms"),
            ConfigSource::BrokerDefault
        );
        assert_eq!(source_of(&sources, "cleanup.policy"), ConfigSource::Default);
        assert_eq!(sources.len(), topic.entries().len());
    }

    #[test]
    fn a_topic_value_that_overrides_the_broker_default_is_the_topics() {
        let broker = config(&[("retention.ms", "3600000")]);
        let topic = config(&[("retention.ms", "604800000")]);
        let sources = config_sources(&topic, &broker);
        assert_eq!(source_of(&sources, "retention.ms"), ConfigSource::Topic);
    }
}
