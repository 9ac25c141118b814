//! `cairn bench produce --producers-held N`: before the measured run, N other idempotent
//! producers each write one record to every partition of the topic, so that each partition
//! holds N producers' state, as a long-lived topic's partitions do (every restart of a client
//! is a new producer id, remembered until it expires).
//!
//! Why a bench needs it: an append's cost may grow with the producers a partition remembers.
//! Until 2026-12-07 it did, linearly (every group commit copied the whole producer state: 50 µs
//! per append with 1,000 producers held, 530 µs with 10,000), and a run with one producer on a
//! fresh topic could not show it.

use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use cairn_client::{OutgoingRecord, Producer, ProducerConfig};
use tokio::task::JoinSet;

/// Most producers `--producers-held` registers: each is a connection, an `InitProducerId` and
/// a request per partition, so a hundred thousand already takes minutes.
pub const MAX_PRODUCERS_HELD: u64 = 100_000;

/// Producers registering at once: enough to keep the broker busy, few enough connections.
const AT_ONCE: usize = 16;

/// Makes `count` idempotent producers each write one small record to every one of
/// `partitions` partitions of `topic` through `brokers`, `AT_ONCE` at a time, and says on
/// stderr how long it took.
///
/// # Errors
/// The first producer that could not connect or whose record was not acknowledged.
pub async fn register(
    brokers: &str,
    config: ProducerConfig,
    topic: &str,
    partitions: i32,
    count: u64,
) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    eprintln!("registering {count} other producers on each of {partitions} partitions of {topic}");
    let started = Instant::now();
    let mut running = JoinSet::new();
    let mut next = 0_u64;
    let mut registered = 0_u64;
    while registered < count {
        while next < count && running.len() < AT_ONCE {
            let (brokers, config, topic) = (brokers.to_string(), config.clone(), topic.to_string());
            running.spawn(async move { register_one(&brokers, config, &topic, partitions).await });
            next += 1;
        }
        match running.join_next().await {
            Some(joined) => {
                joined.context("a registering producer's task failed")??;
                registered += 1;
            }
            None => break,
        }
    }
    eprintln!(
        "registered {registered} producers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One producer: a record to each partition, every one acknowledged, then closed.
async fn register_one(
    brokers: &str,
    config: ProducerConfig,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let producer = Producer::connect(brokers, config).await?;
    let mut deliveries = Vec::with_capacity(usize::try_from(partitions).unwrap_or(0));
    for partition in 0..partitions {
        let record = OutgoingRecord {
            partition: Some(partition),
            value: Some(Bytes::from_static(b"held")),
            ..OutgoingRecord::default()
        };
        deliveries.push(producer.send(topic, record).await?);
    }
    for delivery in deliveries {
        delivery
            .await
            .context("a registering producer's record was not acknowledged")?;
    }
    producer.close().await?;
    Ok(())
}
