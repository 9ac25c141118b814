//! Opening a `Broker` over a test directory: one node, the default topic config and limits.
//! Tests that need another limit or clock start from [`config`] and change one field.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is a failed test"
)]

pub mod three_nodes;

use std::path::Path;
use std::sync::Arc;

use cairn_broker::{Broker, BrokerConfig, TopicConfig};
use cairn_log::{Clock, SystemClock};

/// Node 1 over `dir` with the default topic config, offsets topic size and partition limit.
pub fn config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        cluster: cairn_broker::ClusterSpec::default(),
        advertised_address: "127.0.0.1:7070".to_string(),
        topic_defaults: TopicConfig::default(),
        offsets_topic_partitions: cairn_broker::DEFAULT_OFFSETS_TOPIC_PARTITIONS,
        max_partitions: cairn_broker::DEFAULT_MAX_PARTITIONS,
        producer_id_expiration: Default::default(),
    }
}

/// A broker with `cfg` reading time from `clock`; opening must succeed.
pub async fn open_with(cfg: BrokerConfig, clock: Arc<dyn Clock>) -> Broker {
    Broker::open(cfg, clock).await.unwrap()
}

/// A broker over `dir` with [`config`] and the system clock.
pub async fn open(dir: &Path) -> Broker {
    open_with(config(dir), Arc::new(SystemClock)).await
}
