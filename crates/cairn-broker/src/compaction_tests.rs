//! An idempotent producer on a compacted topic keeps its sequence across a clean and a restart:
//! the broker rebuilds the producer's last sequence from `baseSequence + lastOffsetDelta`,
//! which a cleaned batch keeps although it lost records.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;

use bytes::Bytes;
use cairn_log::SystemClock;
use cairn_log::batch::{Compression, ProducerFields};

use crate::{
    AckLevel, Broker, BrokerConfig, DEFAULT_OFFSETS_TOPIC_PARTITIONS, ProducePayload,
    ProduceRecord, ProduceRequest, TopicConfig,
};

async fn open(dir: &std::path::Path) -> Broker {
    let cfg = BrokerConfig {
        data_dir: dir.to_path_buf(),
        cluster: crate::ClusterSpec::default(),
        advertised_address: "127.0.0.1:7070".to_string(),
        topic_defaults: TopicConfig::default(),
        offsets_topic_partitions: DEFAULT_OFFSETS_TOPIC_PARTITIONS,
        max_partitions: crate::DEFAULT_MAX_PARTITIONS,
        producer_id_expiration: Default::default(),
    };
    Broker::open(cfg, Arc::new(SystemClock)).await.unwrap()
}

fn request(keys: &[&str], producer_id: i64, base_sequence: i32) -> ProduceRequest {
    ProduceRequest {
        topic: "accounts".into(),
        partition: Some(0),
        acks: AckLevel::All,
        payload: ProducePayload::Records {
            records: keys
                .iter()
                .map(|k| ProduceRecord {
                    key: Some(Bytes::from(k.to_string())),
                    value: Some(Bytes::from_static(b"balance")),
                    ..Default::default()
                })
                .collect(),
            compression: Compression::None,
        },
        producer: Some(ProducerFields {
            producer_id,
            producer_epoch: 0,
            base_sequence,
        }),
    }
}

#[tokio::test]
async fn a_cleaned_last_batch_keeps_the_producers_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let producer_id = {
        let broker = open(dir.path()).await;
        let configs = [("cleanup.policy".to_string(), "compact".to_string())];
        broker
            .create_topic("accounts", 1, 1, &configs)
            .await
            .unwrap();
        let (producer_id, _) = broker.init_producer_id().await.unwrap();
        broker
            .produce(request(&["a", "b"], producer_id, 0))
            .await
            .unwrap();
        // The producer's last batch: the clean keeps only its second record.
        broker
            .produce(request(&["c", "c"], producer_id, 2))
            .await
            .unwrap();
        let partition = broker.topic("accounts").unwrap().partition(0).unwrap();
        let outcome = partition
            .local_for_test()
            .unwrap()
            .writer()
            .with_log(|log, now| {
                log.roll(now)?;
                log.clean(now)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome.records_removed, 1, "{outcome:?}");
        broker.shutdown().await;
        producer_id
    };
    let broker = open(dir.path()).await;
    let produced = broker
        .produce(request(&["d"], producer_id, 4))
        .await
        .unwrap();
    assert!(
        produced.partitions[0].error.is_none(),
        "{:?}",
        produced.partitions[0].error
    );
}
